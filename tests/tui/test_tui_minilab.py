"""Watch a model learn: the welcome screen offers the mini-lab; a round runs a real mlx-lm
model on task-world episodes through the engine, `t` teaches it a family (the oracle's
lesson, synthesized and trained with mlx-lm, registered), and the next round runs with the
adapter: before and after, family by family."""

from pathlib import Path

import pytest
from textual.widgets import Button, DataTable, Static
from tui_helpers import make_app, wait_until

pytest.importorskip("mlx_lm")

from looper_engine.consolidation.adapter_files import read_adapter_config  # noqa: E402
from looper_engine.consolidation.registry import list_adapters  # noqa: E402
from looper_engine.consolidation.train import TrainConfig  # noqa: E402
from looper_engine.evaluation.minilab import MiniLabSettings  # noqa: E402
from looper_engine.models.tiny import build_tiny_model  # noqa: E402
from looper_tui.screens.home import HomeScreen  # noqa: E402
from looper_tui.screens.minilab import MiniLabScreen  # noqa: E402


def text_of(widget: Static) -> str:
    content = widget.content
    return getattr(content, "plain", str(content))


def settings_for(model: Path) -> MiniLabSettings:
    # A random-weight model: it fails every family, and two steps of training cannot change
    # that; what is checked here is the flow, with real parts. The learning itself is
    # measured in the mini-lab experiments.
    return MiniLabSettings(
        model=f"mlx:{model}",
        families=["negation", "comparison"],
        per_family=1,
        teach_per_family=3,
        replay_per_family=1,
        max_steps=2,
        max_tokens_per_turn=24,
        train=TrainConfig(fine_tune_type="full", iters=2, batch_size=2, steps_per_eval=2, save_every=2),
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("minilab") / "minilab")


async def test_the_welcome_screen_says_how_to_get_the_mini_lab_when_its_model_is_missing(tmp_path):
    app = make_app(tmp_path, minilab=MiniLabSettings(model=f"mlx:{tmp_path}/no-model"))
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, HomeScreen)
                and app.screen._loaded_once
                and app.screen.has_class("-empty")
            ),
        )
        text = text_of(app.screen.query_one("#welcome-text", Static))
        assert "Watch a model learn" in text and "looper model pretrain" in text
        assert app.focused is app.screen.query_one("#demo", Button)
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)  # a notification, not a broken screen


async def test_a_model_learns_a_family_it_fails_before_and_after(tmp_path, tiny):
    app = make_app(tmp_path, minilab=settings_for(tiny), adapters_dir=tmp_path / "adapters")
    async with app.run_test(size=(120, 34)) as pilot:
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, HomeScreen)
                and app.screen._loaded_once
                and app.screen.has_class("-empty")
            ),
        )
        assert "Ready: press m" in text_of(app.screen.query_one("#welcome-text", Static))
        assert app.focused is app.screen.query_one("#minilab", Button)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MiniLabScreen))
        screen = app.screen
        await wait_until(pilot, lambda: len(screen.family_of) == 2)
        status = screen.query_one("#minilab-status", Static)
        assert "Press r to run the round" in text_of(status)

        await pilot.press("r")
        await wait_until(pilot, lambda: bool(screen.before), timeout=60)
        assert {f: (s.resolved, s.total) for f, s in screen.before.items()} == {
            "negation": (0, 1),
            "comparison": (0, 1),
        }
        assert "tok/s" in text_of(screen.query_one("#stream-rate", Static))
        assert screen.query_one("#stream-task", Static).content  # the episode it streamed
        assert "Press t to teach it negation" in text_of(status)
        round_one = [r for r in await app.lab.store.runs() if "round 1" in r.name]
        assert len(round_one) == 1 and round_one[0].suite == "world"

        await pilot.press("t")
        await wait_until(pilot, lambda: screen.adapter is not None or not screen.busy, timeout=90)
        assert screen.adapter is not None, text_of(status)
        (record,) = await list_adapters(app.lab.store)
        assert record.id == screen.adapter.id and Path(record.path).parent == tmp_path / "adapters"
        assert record.strategy == "routing"
        negation_adapter = Path(screen.routes["negation"])
        assert negation_adapter.parent == Path(record.path)
        assert read_adapter_config(negation_adapter).fine_tune_type == "full"
        lesson = [r for r in await app.lab.store.runs() if r.name == "mini-lab lesson: negation"]
        assert lesson and lesson[0].resolved == lesson[0].total == 3  # negation only: nothing replayed
        assert "Press r to rerun the same round: negation on its adapter, the rest on the base model" in text_of(
            status
        )

        await pilot.press("r")
        await wait_until(pilot, lambda: bool(screen.after), timeout=60)
        assert "negation: 0/1 before" in text_of(status)
        table = screen.query_one("#scores", DataTable)
        assert str(table.get_row("negation")[0]) == "negation ★"
        after = {r.name: r for r in await app.lab.store.runs() if "round 2 (after)" in r.name}
        # The taught family ran on its adapter, the untaught one on the base model.
        assert after["mini-lab round 2 (after) · negation"].model.endswith(f"@{negation_adapter}")
        assert "@" not in after["mini-lab round 2 (after) · comparison"].model

        # A second lesson adds the next family's adapter and keeps the first.
        await pilot.press("t")
        await wait_until(pilot, lambda: screen.adapter.id != record.id and not screen.busy, timeout=90)
        assert screen.taught == ["negation", "comparison"]
        assert set(screen.routes) == {"negation", "comparison"}
        assert Path(screen.routes["negation"]) == negation_adapter


def test_mini_lab_screen_snapshot(tmp_path, snap_compare, tiny, monkeypatch):
    monkeypatch.chdir(tiny.parent)
    app = make_app(tmp_path, minilab=settings_for(Path("minilab")))
    app.animation_level = "none"

    async def open_it(pilot):
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        app.open_minilab()
        await wait_until(
            pilot, lambda: isinstance(app.screen, MiniLabScreen) and len(app.screen.family_of) == 2
        )
        await pilot.pause()

    assert snap_compare(app, run_before=open_it, terminal_size=(110, 24))


def test_home_offers_the_mini_lab_snapshot(tmp_path, snap_compare, tiny, monkeypatch):
    monkeypatch.chdir(tiny.parent)
    app = make_app(tmp_path, Path("looper.db"), minilab=settings_for(Path("minilab")))
    app.animation_level = "none"
    assert snap_compare(app, terminal_size=(100, 34))
