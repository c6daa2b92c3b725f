"""Export of stored episodes: JSONL, one episode a line, with its steps and its full message
history (the record, not a training format: consolidation builds that); mini-swe-agent
trajectories, one file an episode; SWE-bench predictions, one line a SWE-Bench-CL episode."""

from __future__ import annotations

import json
from typing import TextIO

from pydantic import BaseModel

from looper_engine.events import EpisodeFinished
from looper_engine.store.db import EpisodeRow, Store
from looper_engine.store.replay import trajectory_from_events


async def export_jsonl(
    store: Store, out: TextIO, *, run_id: str | None = None, resolved_only: bool = False
) -> int:
    n = 0
    for ep in await store.episodes(run_id=run_id, limit=1_000_000):
        if resolved_only and not ep.resolved:
            continue
        traj = trajectory_from_events(await store.events(ep.id))
        last = len(traj.steps)
        record = {
            "episode": ep.model_dump(),
            "messages": [m.as_dict() for m in traj.history_after(last)],
            "steps": [
                {
                    "step": s.step,
                    "output": s.output,
                    "call": s.call,
                    "problem": s.problem,
                    "ok": s.result.ok if s.result else None,
                    "exit_code": s.result.exit_code if s.result else None,
                    "observation": s.observation,
                    "alarms": [a.loop for a in s.alarms],
                    "prompt_tokens": s.prompt_tokens,
                    "completion_tokens": s.completion_tokens,
                }
                for s in traj.steps
            ],
            "score": await store.score(ep.id),
        }
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        n += 1
    return n


async def selected_episodes(store: Store, run_id: str | None, resolved_only: bool) -> list[EpisodeRow]:
    episodes = [
        ep for ep in await store.episodes(run_id=run_id, limit=1_000_000) if ep.resolved or not resolved_only
    ]
    return sorted(episodes, key=lambda ep: ep.started_at)


SWEBENCH_SUITE = "swe-bench-cl"


class SwebenchExport(BaseModel):
    written: int = 0
    without_patch: list[str] = []
    repeated: list[str] = []


async def export_swebench(
    store: Store, out: TextIO, *, run_id: str | None = None, resolved_only: bool = False
) -> SwebenchExport:
    """SWE-bench predictions, one JSON line per SWE-Bench-CL episode, oldest first (the
    harness keeps the last line of an instance, so the newest episode wins)."""
    result = SwebenchExport()
    seen: set[str] = set()
    for ep in await selected_episodes(store, run_id, resolved_only):
        if ep.suite != SWEBENCH_SUITE:
            continue
        finished = next(
            (e for e in await store.events(ep.id, kinds=["episode_finished"]) if isinstance(e, EpisodeFinished)),
            None,
        )
        patch = finished.patch if finished is not None else None
        instance_id = ep.task_id.removeprefix(f"{SWEBENCH_SUITE}/")
        if patch is None:
            result.without_patch.append(ep.id)
            continue
        if instance_id in seen:
            result.repeated.append(instance_id)
        seen.add(instance_id)
        line = {"instance_id": instance_id, "model_name_or_path": ep.model, "model_patch": patch}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        result.written += 1
    return result
