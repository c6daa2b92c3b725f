"""Serving adapters: vLLM flags, the `openai:MODEL@URL#ADAPTER` spec against a local
OpenAI-compatible server that answers only for the models it serves, and Ollama Modelfiles."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from looper_engine.cli import main
from looper_engine.errors import BadModelSpec
from looper_engine.models.registry import create_backend
from looper_engine.models.spec import checked_spec, parse_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from model_servers import FakeModel, FakeOpenAI  # noqa: E402

BASE = "Qwen/Qwen2.5-Coder-7B-Instruct"


def test_the_adapter_spec_parses_round_trips_and_is_checked_by_the_one_validator() -> None:
    spec = parse_spec("openai:Qwen/Qwen2.5-Coder-7B@http://gpu:8000/v1#koans-c3")
    assert (spec.name, spec.extra, spec.adapter) == ("Qwen/Qwen2.5-Coder-7B", "http://gpu:8000/v1", "koans-c3")
    assert str(spec) == "openai:Qwen/Qwen2.5-Coder-7B@http://gpu:8000/v1#koans-c3"
    assert parse_spec("openai:m@http://h/v1").adapter is None

    from looper_engine.evaluation.experiment import ArmSpec

    arm = ArmSpec(name="on-vllm", model="openai:m@http://gpu:8000/v1#koans-c3")
    assert arm.model == "openai:m@http://gpu:8000/v1#koans-c3"
    with pytest.raises(ValidationError, match="adapter name 'bad name'"):
        ArmSpec(name="on-vllm", model="openai:m@http://h/v1#bad name")
    with pytest.raises(BadModelSpec):
        parse_spec("openai:m@http://h/v1#")


async def test_an_arm_with_an_adapter_asks_the_server_for_the_adapter_by_name() -> None:
    from looper_engine.models.base import GenOptions

    models = {BASE: FakeModel(reply="base reply"), "koans-c3": FakeModel(reply="<done>adapter</done>")}
    with FakeOpenAI(models) as server:
        backend = create_backend(f"openai:{BASE}@{server.api_url}#koans-c3", backoff_s=0.01)
        await backend.check()
        stream = backend.stream([], GenOptions())  # type: ignore[attr-defined]
        text = "".join([d async for d in stream])
        assert text == "<done>adapter</done>"
        assert server.bodies("/v1/chat/completions")[-1]["model"] == "koans-c3"
        assert backend.spec.endswith("#koans-c3")
        # A name the server does not serve is refused by the server, and by check() up front.
        missing = create_backend(f"openai:{BASE}@{server.api_url}#koans-c9", backoff_s=0.01, retries=0)
        with pytest.raises(Exception, match="koans-c9"):
            await missing.check()
        await backend.aclose()
        await missing.aclose()


def test_headless_run_on_the_adapter_records_its_spec(tmp_path: Path) -> None:
    import sqlite3

    models = {BASE: FakeModel(reply="<done>base</done>"), "koans-c3": FakeModel(reply="<done>from the adapter</done>")}
    with FakeOpenAI(models) as server:
        spec = f"openai:{BASE}@{server.api_url}#koans-c3"
        db = tmp_path / "l.db"
        assert main(["run", "--tasks", "off_by_one/paginate", "--model", spec, "--db", str(db), "--quiet"]) == 0
        assert {b["model"] for b in server.bodies("/v1/chat/completions")} == {"koans-c3"}
    (model,) = sqlite3.connect(db).execute("SELECT model FROM episodes").fetchone()
    assert model == spec


@pytest.fixture(scope="module")
def adapters_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mlx")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "consolidation"))
    from cl_helpers import lora_config, lora_weights

    from looper_engine.consolidation.adapter_files import write_adapter_atomically

    root = tmp_path_factory.mktemp("adapters")
    for i, name in enumerate(("a-koans-1", "a-koans-2")):
        cfg = lora_config(rank=4).model_copy(update={"model": "/models/tiny"})
        write_adapter_atomically(root / name, lora_weights(i), cfg)
    return root


def test_serve_config_prints_vllm_flags_for_peft_exports(
    adapters_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exports"
    code = main(["adapters", "serve-config", "a-koans-1", "a-koans-2", "--adapters", str(adapters_dir),
                 "--out", str(out), "--base", BASE])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    argv = shlex.split(lines[0])
    assert argv[:3] == ["vllm", "serve", BASE]
    assert "--enable-lora" in argv and argv[argv.index("--max-lora-rank") + 1] == "8"
    modules = argv[argv.index("--lora-modules") + 1:]
    assert [m.split("=")[0] for m in modules] == ["a-koans-1", "a-koans-2"]
    for m in modules:
        folder = Path(m.split("=", 1)[1])
        cfg = json.loads((folder / "adapter_config.json").read_text())
        assert cfg["peft_type"] == "LORA" and cfg["base_model_name_or_path"] == BASE
        assert (folder / "adapter_model.safetensors").is_file()
    assert lines[1] == f"# run an arm on it: --model openai:{BASE}@http://HOST:8000/v1#a-koans-1"
    # Each printed spec is one the spec validator accepts.
    checked_spec(lines[1].split("--model ")[1].replace("HOST", "gpu"))


def test_serve_config_refuses_adapters_of_different_bases(
    adapters_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path = adapters_dir / "a-koans-2" / "adapter_config.json"
    original = cfg_path.read_text()
    cfg_path.write_text(json.dumps({**json.loads(original), "model": "/models/other"}))
    try:
        code = main(["adapters", "serve-config", "a-koans-1", "a-koans-2", "--adapters", str(adapters_dir),
                     "--out", str(tmp_path)])
    finally:
        cfg_path.write_text(original)
    assert code == 2
    assert "different base models" in capsys.readouterr().err


def test_ollama_export_writes_a_modelfile_and_the_commands(
    adapters_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ollama"
    code = main(["adapters", "export", "a-koans-1", str(out), "--format", "ollama", "--adapters", str(adapters_dir),
                 "--base", "/models/tiny-hf", "--name", "koans-1"])
    assert code == 0
    text = (out / "Modelfile").read_text()
    assert text == f"FROM /models/tiny-hf\nADAPTER {(out / 'adapter').resolve()}\n"
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["peft_type"] == "LORA"
    printed = capsys.readouterr().out
    assert f"ollama create koans-1 -f {out / 'Modelfile'}" in printed
    assert "ollama run koans-1" in printed
    assert main(["adapters", "export", "a-koans-1", str(out), "--format", "ollama",
                 "--adapters", str(adapters_dir)]) == 2
    assert "already holds a Modelfile" in capsys.readouterr().err
