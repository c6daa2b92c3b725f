"""Export of stored episodes to JSONL: one episode a line, with its steps and its full
message history (the record, not a training format: consolidation builds that)."""

from __future__ import annotations

import json
from typing import TextIO

from looper_engine.store.db import Store
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
