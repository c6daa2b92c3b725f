"""`synthesize(per_episode=True)`: one sample per whole episode, every assistant turn a
target and format-checked, the same turns and contexts as the per-step samples."""

from __future__ import annotations

import asyncio
from pathlib import Path

from looper_engine.consolidation.pretrain import record_oracle_episodes
from looper_engine.consolidation.synth import synthesize
from looper_engine.store.db import Store
from looper_engine.tasks import world


def _both(db: Path) -> tuple:
    async def go() -> tuple:
        store = await Store.open(db, create=False)
        try:
            return await synthesize(store), await synthesize(store, per_episode=True)
        finally:
            await store.close()

    return asyncio.run(go())


def test_one_sample_per_episode_holds_every_step_sample(tmp_path: Path) -> None:
    tasks = world.generate(seed=11, per_template=1, families=["comparison", "negation"], split="train",
                           cache_dir=tmp_path / "world")
    asyncio.run(record_oracle_episodes(tasks, tmp_path / "e.db"))
    steps, whole = _both(tmp_path / "e.db")
    assert whole.stats.format_ok and steps.stats.format_ok
    assert len(whole.train) + len(whole.valid) == len(tasks)
    per_step = steps.train + steps.valid
    for sample in whole.train + whole.valid:
        assert sample.all_turns and sample.row_with_meta()["meta"]["all_turns"] is True
        turns = [i for i, m in enumerate(sample.messages) if m["role"] == "assistant"]
        assert len(turns) == 3  # read, edit, done
        # every per-step sample of this episode is a prefix of the whole-episode sample
        mine = [s for s in per_step if s.episode_id == sample.episode_id]
        assert mine and all(sample.messages[: len(s.messages)] == s.messages for s in mine)
    assert whole.stats.tokens < steps.stats.tokens / 1.5
    assert whole.data_hash != steps.data_hash


def test_a_broken_turn_fails_the_format_check(tmp_path: Path) -> None:
    from looper_engine.consolidation.synth import check_turn

    assert check_turn("<read>a.py</read>", {"tool": "read", "path": "a.py", "start": None, "end": None}) is None
    assert check_turn("<read>a.py", {"tool": "read", "path": "a.py"}) is not None
    assert "b.py" in (check_turn("<read>b.py</read>", {"tool": "read", "path": "a.py"}) or "")
