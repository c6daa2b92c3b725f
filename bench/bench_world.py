"""The task world at scale: every template generated and verified many times (tasks/s, and the
share of draws the generator rejected), the variety of what it makes (distinct files and
statements per template), the length of a compact oracle episode, and the time to score one
task with the light runner beside a pytest run of the same workspace, in the same process.

    python bench/bench_world.py [--per-template N] [--score-sample N]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from looper_engine.agent.episode import Episode
from looper_engine.config import AgentConfig
from looper_engine.events import EventBus
from looper_engine.models.scripted import ScriptedBackend
from looper_engine.tasks import world
from looper_engine.tasks.model import Task
from looper_engine.tasks.scoring import apply_gold, score_workspace

PYTEST = ["{python}", "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]


async def score_times(tasks: list[Task], scratch: Path) -> tuple[list[float], list[float], int]:
    light: list[float] = []
    pytest_s: list[float] = []
    right = 0
    for n, task in enumerate(tasks):
        root = scratch / f"ws{n}"
        shutil.copytree(task.source_dir, root)
        t0 = time.perf_counter()
        before = await score_workspace(task, root, timeout_s=60)
        light.append(time.perf_counter() - t0)
        baseline = task.model_copy(update={"test_command": PYTEST})
        t0 = time.perf_counter()
        before_pytest = await score_workspace(baseline, root, timeout_s=60)
        pytest_s.append(time.perf_counter() - t0)
        apply_gold(task, root)
        after = await score_workspace(task, root, timeout_s=60)
        after_pytest = await score_workspace(baseline, root, timeout_s=60)
        right += (not before.resolved and after.resolved and not before_pytest.resolved and after_pytest.resolved)
    return light, pytest_s, right


async def episode_tokens(tasks: list[Task], scratch: Path) -> tuple[list[int], int]:
    config = AgentConfig(prompt_profile="compact")
    tokens: list[int] = []
    resolved = 0
    for task in tasks:
        backend = ScriptedBackend("oracle")
        episode = Episode(task, backend, config, EventBus(), workspace_parent=scratch)
        result = await episode.run()
        resolved += result.resolved
        tokens.append(backend.count_tokens(episode.window.history))
    return tokens, resolved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-template", type=int, default=20, help="instances of every template (default 20)")
    parser.add_argument("--score-sample", type=int, default=40, help="tasks scored both ways (default 40)")
    args = parser.parse_args()
    templates = world.templates()
    with tempfile.TemporaryDirectory() as d:
        scratch = Path(d)
        t0 = time.perf_counter()
        made = world.instances(seed=0, per_template=args.per_template)
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        tasks = [world.to_task(i, scratch / "cache") for i in made]
        t_write = time.perf_counter() - t0
        print(f"task world v{world.VERSION}: {len(world.families())} families, {len(templates)} templates "
              f"({len(world.heldout_templates())} held out)")
        print(f"  generated and verified  {len(made):6d} tasks in {t_gen:6.2f} s   {len(made) / t_gen:8.0f} tasks/s")
        print(f"  materialized            {len(tasks):6d} tasks in {t_write:6.2f} s   {len(tasks) / t_write:8.0f} tasks/s")
        rejected = sum(i.rejected for i in made)
        print(f"  draws rejected          {rejected:6d} of {rejected + len(made)}")

        by_template: dict[str, list[world.Instance]] = {}
        for inst in made:
            by_template.setdefault(inst.template.key, []).append(inst)
        variety = sorted(
            (len({i.buggy for i in group}) / len(group), len({i.statement for i in group}) / len(group), key)
            for key, group in by_template.items()
        )
        print(f"  distinct files per template      median {statistics.median(v[0] for v in variety):.0%}, "
              f"least {variety[0][0]:.0%} ({variety[0][2]})")
        print(f"  distinct statements per template median {statistics.median(v[1] for v in variety):.0%}, "
              f"least {min(v[1] for v in variety):.0%}")

        per_template = {}
        for task in tasks:
            per_template.setdefault(task.id.rsplit("/", 1)[1], task)
        one_each = list(per_template.values())
        tokens, resolved = asyncio.run(episode_tokens(one_each, scratch))
        print(f"  compact oracle episode  resolved {resolved}/{len(one_each)}, tokens median "
              f"{statistics.median(tokens):.0f}, max {max(tokens)} (estimator of the engine)")

        step = max(1, len(tasks) // args.score_sample)
        sample = tasks[::step][: args.score_sample]
        light, pytest_s, right = asyncio.run(score_times(sample, scratch / "score"))
        print(f"  scoring, light runner   median {statistics.median(light) * 1000:6.1f} ms per task")
        print(f"  scoring, pytest (baseline) median {statistics.median(pytest_s) * 1000:6.1f} ms per task   "
              f"{statistics.median(pytest_s) / statistics.median(light):.1f}x slower")
        print(f"  both runners agree: fail as generated, pass with gold  {right}/{len(sample)}")


if __name__ == "__main__":
    main()
