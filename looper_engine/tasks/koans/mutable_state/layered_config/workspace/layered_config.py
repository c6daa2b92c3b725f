"""Per-environment configuration layered over shared defaults."""

DEFAULTS = {
    "database": {"host": "localhost", "port": 5432, "pool": {"min": 1, "max": 5}},
    "logging": {"level": "INFO", "handlers": ["console"]},
}


def merge(base: dict, overrides: dict) -> dict:
    """Recursively merge `overrides` into a copy of `base`; `base` is left untouched."""
    result = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def config_for(environment: str, overrides: dict | None = None) -> dict:
    config = merge(DEFAULTS, overrides or {})
    config["environment"] = environment
    if environment == "production":
        config["logging"]["handlers"].append("syslog")
        config["database"]["pool"]["max"] = 50
    return config
