from layered_config import DEFAULTS, config_for, merge


def test_overrides_are_merged():
    config = config_for("staging", {"database": {"host": "db.staging"}})
    assert config["database"] == {"host": "db.staging", "port": 5432, "pool": {"min": 1, "max": 5}}
    assert config["environment"] == "staging"


def test_merge_leaves_base_untouched():
    base = {"a": {"b": {"c": 1}}, "d": [1]}
    merged = merge(base, {"a": {"x": 2}})
    merged["a"]["b"]["c"] = 99
    merged["d"].append(2)
    assert base == {"a": {"b": {"c": 1}}, "d": [1]}


def test_production_does_not_leak_into_other_environments():
    config_for("production")
    config_for("production")
    staging = config_for("staging")
    assert staging["logging"]["handlers"] == ["console"]
    assert staging["database"]["pool"]["max"] == 5
    assert DEFAULTS["logging"]["handlers"] == ["console"]


def test_production():
    config = config_for("production")
    assert config["logging"]["handlers"] == ["console", "syslog"]
