"""`looper experiment power FILE`: the design simulated before any compute is spent, on the
shipped file whose MLX model is not on this machine (the command loads no model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from looper_engine.cli import main
from looper_engine.evaluation.experiment import load_experiment, plan_experiment
from looper_engine.evaluation.power import comparison_designs, design_power, simulated_min_detectable

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "experiments"
WEIGHTS = EXAMPLES / "weights_vs_prompt.toml"


def rows(out: str) -> dict[tuple[str, str], list[str]]:
    """The table's rows by (arm, scope); each cell stripped."""
    found = {}
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) >= 5 and cells[1] in ("stream", "held-out"):
            found[(cells[0], cells[1])] = cells
    return found


def test_the_power_of_weights_vs_prompt_without_its_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert not (Path.cwd() / "models" / "Qwen2.5-Coder-1.5B-Instruct-4bit").exists()
    assert main(["experiment", "power", str(WEIGHTS), "--effect", "0.2"]) == 0
    out = capsys.readouterr().out
    table = rows(out)
    # Every comparison the report makes: 3 arms, each on the stream and the held-out set.
    assert set(table) == {(a, s) for a in ("base", "adapter", "prompt-skill") for s in ("stream", "held-out")}
    for (_arm, scope), cells in table.items():
        assert cells[2] == ("24 tasks x 3 seeds" if scope == "stream" else "6 tasks x 3 seeds")
        assert float(cells[3]) <= 0.065  # the false-positive rate at alpha 0.05
    # The learning arms are independent lines per seed: 24 tasks detect about a third.
    adapter = table[("adapter", "stream")]
    assert 0.2 < float(adapter[4]) < 0.5
    # The base arm at temperature 0 repeats itself across seeds: less information, a larger figure.
    assert float(table[("base", "stream")][4]) > float(adapter[4])
    # 6 held-out tasks cannot detect any difference with 80% power.
    assert table[("adapter", "held-out")][4] == "none"
    assert "this design detects differences of" in out
    # +0.20 is out of reach everywhere, and one line says so.
    lines = [line for line in out.splitlines() if "cannot detect a difference of +0.20" in line]
    assert len(lines) == 1 and "in 6 of its 6 comparisons" in lines[0]


def test_a_large_enough_effect_is_detected_on_the_stream(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "power", str(WEIGHTS), "--effect", "0.5"]) == 0
    out = capsys.readouterr().out
    table = rows(out)
    assert int(table[("adapter", "stream")][5].rstrip("%")) >= 80
    assert int(table[("adapter", "held-out")][5].rstrip("%")) < 80
    assert "in 3 of its 6 comparisons" in out  # the three held-out comparisons


def test_a_bad_effect_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "power", str(WEIGHTS), "--effect", "1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--effect" in err[0]


def test_power_grows_with_the_effect_and_the_null_holds_its_level() -> None:
    spec = load_experiment(WEIGHTS)
    plan = plan_experiment(spec, WEIGHTS)
    designs = [d for d in comparison_designs(spec, sum(map(len, plan.chunks)), len(plan.heldout))
               if d.arm == "adapter" and d.scope == "stream"]
    small = design_power(designs, effect=0.15).comparisons[0]
    large = design_power(designs, effect=0.4).comparisons[0]
    assert small.power_at_effect is not None and large.power_at_effect is not None
    assert small.power_at_effect < 0.8 <= large.power_at_effect
    assert small.false_positive_rate <= 0.05
    mde = simulated_min_detectable(24, 3, 3, True, False)
    assert mde is not None and small.min_detectable == pytest.approx(mde, abs=0.02)
