import pytest

from manifest import ManifestError, describe_error, load_manifest


def test_valid_manifest(tmp_path):
    path = tmp_path / "deploy.json"
    path.write_text('{"name": "api", "version": "1.2", "services": []}')
    assert load_manifest(path)["name"] == "api"


def test_missing_keys(tmp_path):
    path = tmp_path / "deploy.json"
    path.write_text('{"name": "api"}')
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert describe_error(info.value) == "deploy.json: missing version, services"


def test_syntax_error_names_position(tmp_path):
    path = tmp_path / "deploy.json"
    path.write_text('{"name": "api",\n "version": }')
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = describe_error(info.value)
    assert message.startswith("cannot read manifest deploy.json: JSONDecodeError:")
    assert "line 2" in message


def test_missing_file_names_cause(tmp_path):
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "deploy.json")
    assert "FileNotFoundError" in describe_error(info.value)
