"""The results screen, mounted in a small App over a database this test fills: the accuracy
matrix as a coloured heatmap, the summary with intervals, the flip table, the gate verdicts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TabbedContent

from looper_engine.store.db import Store
from looper_engine.store.experiments import (
    CandidateRow,
    CellRow,
    NightRow,
    claim_experiment,
    record_candidate,
    record_cell,
    record_night,
)
from looper_tui.screens.results import RAMP, ResultsScreen, heat_colour

CHUNKS = [["fam_a/one", "fam_a/two"], ["fam_b/three", "fam_b/four"]]
HELD = "fam_c/five"
SPEC = {
    "name": "demo",
    "model": "mlx:models/demo",
    "seeds": [0],
    "arms": [{"name": "base", "kind": "base"}, {"name": "adapter", "kind": "adapter", "strategy": "naive"}],
}
#: (arm, cycle) -> resolved task ids. Zero-shot solves one task; the adapter learns chunk 1,
#: keeps it, and solves one task of chunk 2 after learning it.
SOLVED = {
    ("zero-shot", 0): {"fam_a/one"},
    ("base", 0): {"fam_a/one"},
    ("base", 1): {"fam_a/one"},
    ("adapter", 0): {"fam_a/one", "fam_a/two", HELD},
    ("adapter", 1): {"fam_a/one", "fam_a/two", "fam_b/three", HELD},
}


async def fill(db: Path) -> None:
    store = await Store.open(db)
    await claim_experiment(store, "demo", "hash", SPEC, "demo.toml")
    n = 0
    for (arm, cycle), solved in SOLVED.items():
        measured = CHUNKS[0] + CHUNKS[1]
        for task in [*measured, HELD]:
            n += 1
            chunk = -1 if task == HELD else (0 if task in CHUNKS[0] else 1)
            await record_cell(store, CellRow(
                exp_id="demo", arm=arm, seed=0, cycle=cycle, phase="eval", chunk=chunk, task_id=task,
                episode_id=f"ep-{n:03d}", resolved=task in solved, fingerprint=f"fp-{n}", status="failed",
                steps=4, tokens=1000, tool_calls=3, created_at=float(n),
            ))
    curve = [{"job": "main", "iteration": i, "train_loss": 3.0 - i * 0.2, "val_loss": None} for i in range(1, 6)]
    for cycle, adopted in ((0, True), (1, False)):
        await record_candidate(store, CandidateRow(
            exp_id="demo", arm="adapter", seed=0, cycle=cycle, state={"adapter": f"a{cycle}"},
            curve=curve, data_stats={"samples": 4}, notes=["trained"], seconds=1.0,
        ))
        verdict = (
            {"adopted": True, "reason": "adopted: same outcome on all 2 frozen tasks", "n": 2, "b": 0, "c": 0,
             "p_value": 1.0, "base_rate": 1.0, "candidate_rate": 1.0}
            if adopted else
            {"adopted": False, "reason": "rejected: worse on the frozen set (3 tasks lost, 0 gained)", "n": 4,
             "b": 3, "c": 0, "p_value": 0.125, "base_rate": 0.75, "candidate_rate": 0.0}
        )
        await record_night(store, NightRow(exp_id="demo", arm="adapter", seed=0, cycle=cycle, adopted=adopted,
                                           verdict=verdict, state={}))
    await store.close()


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    db = tmp_path / "lab.db"
    asyncio.run(fill(db))
    return db


class ResultsApp(App[None]):
    def __init__(self, db: Path) -> None:
        super().__init__()
        self.db = db

    def on_mount(self) -> None:
        self.push_screen(ResultsScreen(self.db, "demo"))


async def loaded(pilot: Pilot) -> None:
    for _ in range(200):
        await pilot.pause(0.05)
        screen = pilot.app.screen
        if isinstance(screen, ResultsScreen) and screen.results is not None and screen.query(".results-gate"):
            break
    await pilot.pause(0.1)


def text_of(static: Static) -> str:
    console = Console(record=True, width=140, color_system=None)
    console.print(static.content)
    return console.export_text()


async def test_the_screen_shows_the_heatmap_summary_flips_and_verdicts(lab: Path) -> None:
    app = ResultsApp(lab)
    async with app.run_test(size=(130, 45)) as pilot:
        await loaded(pilot)
        screen = app.screen
        assert isinstance(screen, ResultsScreen)
        summary = screen.query_one("#results-summary", DataTable)
        assert [summary.get_row_at(i)[0] for i in range(summary.row_count)] == ["base", "adapter"]
        adapter_row = summary.get_row_at(1)
        assert adapter_row[1].startswith("80% [")  # final stage: 3 of 4 stream tasks + the held-out one
        assert adapter_row[2] == "5 tasks x 1 seed"  # n is tasks, with the seeds beside it
        # ACC, without an interval: at 2 tasks a chunk none covers (the † says so in the title).
        assert adapter_row[3] == "+0.75†"
        assert "too few tasks per chunk for an interval" in str(
            screen.query_one("#results-summary-title", Static).content
        )

        tabs = screen.query_one("#results-arms", TabbedContent)
        tabs.active = "arm-adapter"
        await pilot.pause()
        pane = screen.query_one("#arm-adapter")
        heat = text_of(pane.query_one(".results-heatmap", Static))
        assert "100% 2/2" in heat and "50% 1/2" in heat and "z" in heat
        comparison = " ".join(text_of(pane.query_one(".results-comparison", Static)).split())
        # stream: base solves 1 of 4 tasks, the adapter 3 of 4; 2 tasks better, none worse:
        # exact two-sided p = 2 * 0.5**2.
        assert "stream (4 tasks x 1 seed): base 25% [" in comparison
        assert "tasks better/worse 2/0, sign-flip p=0.5, detectable none at this size" in comparison
        flips = pane.query_one(".results-flips", DataTable)
        changes = {str(flips.get_row_at(i)[0]): str(flips.get_row_at(i)[4]) for i in range(flips.row_count)}
        assert changes == {
            "fam_a/one": "same (solved)",
            "fam_a/two": "fixed",
            "fam_b/three": "fixed",
            "fam_b/four": "same (unsolved)",
            HELD: "fixed",
        }
        gate = pane.query_one(".results-gate", DataTable)
        rows = [[str(c) for c in gate.get_row_at(i)] for i in range(gate.row_count)]
        # Night 1 had 2 frozen tasks: nothing could have been rejected, and the screen says so.
        assert [r[2] for r in rows] == ["yes (untested)", "no"]
        assert rows[1][6:9] == ["3", "0", "0.125"] and rows[1][9].startswith("rejected")


def test_heat_colours_run_from_the_first_to_the_last_of_the_ramp() -> None:
    assert heat_colour(0.0) == RAMP[0] and heat_colour(1.0) == RAMP[-1]
    assert heat_colour(0.5) not in (RAMP[0], RAMP[-1])


def test_results_screen_snapshot(lab: Path, snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(lab.parent)
    app = ResultsApp(Path("lab.db"))
    app.animation_level = "none"
    assert snap_compare(app, terminal_size=(120, 42), run_before=loaded)


async def test_a_missing_experiment_is_shown_not_raised(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    store = await Store.open(db)
    await store.close()

    class Empty(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ResultsScreen(db, "nope"))

    app = Empty()
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if "no experiments" in str(app.screen.query_one("#results-status", Static).content):
                break
        assert "no experiments in" in str(app.screen.query_one("#results-status", Static).content)
