"""HTTP client options from the user's config file."""

DEFAULTS = {"timeout": 30.0, "retries": 3, "verify_tls": True, "proxy": None}


def client_options(config: dict) -> dict:
    """Options for the HTTP client: the config's values, DEFAULTS for keys it leaves out.

    0 retries and verify_tls = false are legitimate choices; a timeout of None waits forever.
    """
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")
    return {key: config.get(key) or default for key, default in DEFAULTS.items()}


def describe(options: dict) -> str:
    timeout = "none" if options["timeout"] is None else f"{options['timeout']:g}s"
    tls = "on" if options["verify_tls"] else "off"
    return f"timeout {timeout}, {options['retries']} retries, TLS verification {tls}"
