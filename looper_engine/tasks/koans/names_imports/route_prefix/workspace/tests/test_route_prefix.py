from urlrouter import match_route


def test_exact_prefix():
    assert match_route("/api/v1/users") == "users"
    assert match_route("API/V1/Orders/") == "orders"


def test_nested_path():
    assert match_route("/api/v1/users/42") == "users"


def test_longest_prefix_wins():
    assert match_route("/api/v1/orders/export/2024") == "order_export"
    assert match_route("/api/v1/orders/17") == "orders"


def test_no_match():
    assert match_route("/api/v1/usersettings") is None
    assert match_route("/") is None
