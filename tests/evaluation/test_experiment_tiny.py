"""A whole koan experiment on the real mlx-lm stack: the tiny random-weight model, two arms,
three cycles. Every night trains a LoRA adapter (from a scripted teacher's resolved
trajectories: the tiny model's own output is noise), the next evaluations run with it, and the
report shows every section with the training curves."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from looper_engine.evaluation.cycle import ExperimentRunner
from looper_engine.evaluation.experiment import parse_experiment, plan_experiment
from looper_engine.evaluation.report import SECTIONS, write_report
from looper_engine.evaluation.results import load_results
from looper_engine.store.db import Store

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlx_lm") is None, reason="the adapter layer needs mlx-lm (the mlx extra)"
)

SPEC = """
name = "tiny"
model = "mlx:{model}"
chunk_size = 2
[stream]
families = ["off_by_one", "wrong_operator", "string_format"]
per_family = 2
[agent]
few_shot = false
no_pip_rule = false
skip_verification_rule = false
[limits]
max_steps = 2
max_tokens_per_turn = 32
concurrency = 2
[train]
iters = 4
batch_size = 1
steps_per_report = 1
steps_per_eval = 4
val_batches = 1
save_every = 4
[[arms]]
name = "base"
[[arms]]
name = "adapter"
kind = "adapter"
strategy = "naive"
teacher = "scripted:oracle"
"""


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from looper_engine.models.tiny import build_tiny_model

    tmp = tmp_path_factory.mktemp("tiny-exp")
    model = build_tiny_model(tmp / "tiny")
    db = tmp / "lab.db"
    plan = plan_experiment(parse_experiment(SPEC.format(model=model), "tiny.toml"), "tiny.toml")

    async def go() -> Any:
        outcome = await ExperimentRunner(plan, db, adapters_dir=tmp / "adapters").run()
        store = await Store.open(db, create=False)
        try:
            return outcome, await load_results(store, "tiny", resamples=200)
        finally:
            await store.close()

    outcome, results = asyncio.run(go())
    return {"tmp": tmp, "db": db, "outcome": outcome, "results": results}


def test_every_night_trains_an_adapter_the_next_evaluations_use(done: dict[str, Any]) -> None:
    assert done["outcome"].status == "finished" and done["outcome"].trained == 3
    adapter = done["results"].arm("adapter")
    assert adapter.complete
    assert [n.cycle for n in adapter.nights] == [0, 1, 2]
    for night in adapter.nights:
        losses = [p["train_loss"] for p in night.curve if p.get("train_loss") is not None]
        assert len(losses) == 4, night
    con = sqlite3.connect(done["db"])
    rows = con.execute("SELECT id, path, strategy, curve FROM adapters ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["tiny.adapter.s0.c0", "tiny.adapter.s0.c1", "tiny.adapter.s0.c2"]
    for _, path, strategy, curve in rows:
        assert (Path(path) / "adapters.safetensors").is_file() and strategy == "naive" and json.loads(curve)
    # After night i the adapter arm ran with night i's adapter (the candidate's evaluation on the
    # frozen set is the adopted arm's a[i][j]; the next chunk's is measured on top).
    for cycle in range(3):
        models = {
            m for (m,) in con.execute(
                "SELECT e.model FROM exp_cells c JOIN episodes e ON e.id = c.episode_id "
                "WHERE c.arm='adapter' AND c.phase IN ('candidate', 'eval') AND c.cycle=? AND c.reused=0",
                (cycle,),
            )
        }
        assert models and all(m.endswith(f"/c{cycle}") for m in models), (cycle, models)
    # The base arm never saw an adapter.
    (n,) = con.execute(
        "SELECT count(*) FROM exp_cells c JOIN episodes e ON e.id = c.episode_id "
        "WHERE c.arm IN ('base', 'zero-shot') AND e.model LIKE '%@%'"
    ).fetchone()
    assert n == 0


def test_the_report_has_every_section_with_training_curves(done: dict[str, Any]) -> None:
    out = done["tmp"] / "report"
    text = write_report(done["results"], out).read_text()
    for section in SECTIONS:
        assert f"## {section}" in text, section
    assert (out / "curves-adapter.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "matrix-adapter.png").is_file() and (out / "matrix-base.png").is_file()
    assert "![training curves of adapter](curves-adapter.png)" in text
    gate = text.split("## Regression gate", 1)[1]
    assert len(re.findall(r"^\| adapter \| 0 \| [123] \| (?:yes|yes \(untested\)|no) \|", gate, re.M)) == 3
