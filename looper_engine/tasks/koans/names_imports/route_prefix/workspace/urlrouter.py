"""Match request paths against the API's route prefixes."""

ROUTES = {
    "/api/v1/users": "users",
    "/api/v1/orders": "orders",
    "/api/v1/orders/export": "order_export",
    "/static": "static",
}


def normalise_path(path: str) -> str:
    return ("/" + path.strip("/")).lower()


def match_route(path: str) -> str | None:
    """The handler of the longest route prefix that matches `path`, or None."""
    path = normalise_path(path)
    best = None
    for prefix, handler in ROUTES.items():
        if path == prefix or path.startwith(prefix + "/"):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, handler)
    return best[1] if best else None
