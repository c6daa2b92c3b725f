"""The results screen is reachable: from an experiment row on the home screen, and from the
command palette."""

import pytest
from textual.widgets import DataTable
from tui_helpers import make_app, record_lab, wait_until

from looper_engine.store.db import Store
from looper_engine.store.experiments import CellRow, claim_experiment, record_cell
from looper_tui.screens.home import HomeScreen
from looper_tui.screens.results import ResultsScreen
from looper_tui.widgets.experiments_pane import ExperimentsPane

SPEC = {"name": "demo", "model": "mlx:models/demo", "seeds": [0], "arms": [{"name": "base", "kind": "base"}]}


@pytest.fixture
async def lab_with_experiment(tmp_path):
    db = tmp_path / "lab.db"
    await record_lab(db)
    store = await Store.open(db)
    await claim_experiment(store, "demo", "hash", SPEC, "demo.toml")
    for n, arm in enumerate(("zero-shot", "base")):
        await record_cell(store, CellRow(
            exp_id="demo", arm=arm, seed=0, cycle=0, phase="eval", chunk=0, task_id="fam_a/one",
            episode_id=f"ep-{n}", resolved=True, fingerprint=f"fp-{n}", status="resolved",
            steps=4, tokens=1000, tool_calls=3, created_at=float(n),
        ))
    await store.close()
    return db


async def test_enter_on_an_experiment_row_opens_its_results(tmp_path, lab_with_experiment):
    app = make_app(tmp_path, lab_with_experiment)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        pane = app.screen.query_one(ExperimentsPane)
        await wait_until(pilot, lambda: pane.display and pane.query_one(DataTable).row_count == 1)
        pane.query_one(DataTable).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        assert app.screen.exp_id == "demo"
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))


async def test_a_lab_without_experiments_shows_no_pane(tmp_path):
    db = tmp_path / "lab.db"
    await record_lab(db)
    app = make_app(tmp_path, db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        await pilot.pause(0.3)
        assert not app.screen.query_one(ExperimentsPane).display


async def test_the_command_palette_opens_the_newest_experiments_results(tmp_path, lab_with_experiment):
    app = make_app(tmp_path, lab_with_experiment)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        await pilot.press("ctrl+p")
        await pilot.press(*"experiment results")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        screen = app.screen
        await wait_until(pilot, lambda: screen.results is not None)
        assert screen.results.exp_id == "demo"
