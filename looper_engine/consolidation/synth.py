"""Trajectories -> training data, in exactly the format the agent used at inference.

Each kept step becomes one chat sample: the context the model was sent at that step (the
same prompt builder, the same roles, the same pruning, replayed from the store) followed by
the model's own output. Before anything trains, every sample's assistant turn is parsed with
the agent's parser and must yield the call that was executed: format mismatch cannot slip
through. Near duplicates are removed, failed and looping steps dropped unless asked for, and
the split never puts one task in both train and valid.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from looper_engine.errors import UserError
from looper_engine.messages import Message
from looper_engine.protocol.parser import parse_response
from looper_engine.store.db import EpisodeRow, Store
from looper_engine.store.replay import StepRecord, Trajectory, trajectory_from_events


class Selection(BaseModel):
    """Which episodes to learn from."""

    resolved_only: bool = True
    run_ids: list[str] = Field(default_factory=list)
    suites: list[str] = Field(default_factory=list)
    families: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    task_ids: list[str] = Field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    keep_failed_steps: bool = False
    keep_looping_steps: bool = False
    include_scripted: bool = True
    episode_ids: list[str] = Field(default_factory=list)

    def admits(self, ep: EpisodeRow) -> bool:
        if ep.status in ("running",):
            return False
        if self.resolved_only and not ep.resolved:
            return False
        if self.episode_ids and ep.id not in self.episode_ids:
            return False
        if self.run_ids and ep.run_id not in self.run_ids:
            return False
        if self.suites and ep.suite not in self.suites:
            return False
        if self.families and ep.family not in self.families:
            return False
        if self.models and ep.model not in self.models:
            return False
        if self.task_ids and ep.task_id not in self.task_ids:
            return False
        if not self.include_scripted and ep.scripted:
            return False
        if self.since and ep.started_at < self.since.timestamp():
            return False
        return not (self.until and ep.started_at > self.until.timestamp())


class Sample(BaseModel):
    messages: list[dict[str, str]]
    task_id: str
    family: str
    episode_id: str
    step: int
    resolved: bool
    #: True for a whole-episode sample: every assistant turn is a target, not only the last.
    all_turns: bool = False

    def row(self) -> dict[str, Any]:
        """What mlx-lm reads: only the messages."""
        return {"messages": self.messages}

    def row_with_meta(self) -> dict[str, Any]:
        """The row strategies take: `meta` never reaches mlx-lm."""
        meta: dict[str, Any] = {"family": self.family, "task_id": self.task_id}
        if self.all_turns:
            meta["all_turns"] = True
        return {"messages": self.messages, "meta": meta}


class FormatProblem(BaseModel):
    episode_id: str
    step: int
    reason: str


class DataStats(BaseModel):
    samples: int
    train_samples: int
    valid_samples: int
    tokens: int
    tasks: int
    families: dict[str, int]
    episodes: int
    resolved_share: float
    longest_sample_tokens: int
    dropped_failed_steps: int
    dropped_looping_steps: int
    dropped_duplicates: int
    format_ok: bool
    format_problems: list[FormatProblem] = Field(default_factory=list)

    def lines(self) -> list[str]:
        fams = ", ".join(f"{k} {v}" for k, v in sorted(self.families.items()))
        out = [
            f"samples {self.samples} (train {self.train_samples}, valid {self.valid_samples})",
            f"tokens {self.tokens}, longest sample {self.longest_sample_tokens} tokens",
            f"episodes {self.episodes}, tasks {self.tasks}, resolved share {self.resolved_share:.0%}",
            f"families: {fams}",
            f"dropped: {self.dropped_failed_steps} failed steps, {self.dropped_looping_steps} looping steps, "
            f"{self.dropped_duplicates} near duplicates",
            "format check: " + ("every assistant turn parses into its executed call"
                                if self.format_ok else f"{len(self.format_problems)} problems"),
        ]
        out.extend(f"  {p.episode_id} step {p.step}: {p.reason}" for p in self.format_problems[:10])
        return out


class Dataset(BaseModel):
    train: list[Sample]
    valid: list[Sample]
    stats: DataStats
    data_hash: str

    def write(self, out_dir: Path) -> None:
        """DIR/train.jsonl and DIR/valid.jsonl, as `mlx_lm.lora --data DIR` reads them, plus
        DIR/stats.json. DIR/NAME.meta.jsonl holds each line's family and task (for
        per-family routing); mlx-lm ignores it."""
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, samples in (("train", self.train), ("valid", self.valid)):
            for suffix, rows in (
                ("jsonl", [s.row() for s in samples]),
                ("meta.jsonl", [{"family": s.family, "task_id": s.task_id} for s in samples]),
            ):
                tmp = out_dir / f".{name}.{suffix}.tmp"
                with tmp.open("w", encoding="utf-8") as f:
                    for row in rows:
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                tmp.replace(out_dir / f"{name}.{suffix}")
        (out_dir / "stats.json").write_text(self.stats.model_dump_json(indent=2))


def check_sample(sample: Sample, executed_call: dict[str, Any] | None, strip_fences: bool = True) -> str | None:
    """None when the last assistant turn parses, with the agent's own parser, into exactly
    the call that was executed; otherwise the reason."""
    if not sample.messages or sample.messages[-1]["role"] != "assistant":
        return "the sample does not end with an assistant turn"
    return check_turn(sample.messages[-1]["content"], executed_call, strip_fences)


def check_turn(content: str, executed_call: dict[str, Any] | None, strip_fences: bool = True) -> str | None:
    """None when one assistant turn parses into exactly the call that was executed."""
    result = parse_response(content, strip_fences=strip_fences)
    if result.call is None:
        note = result.notes[0] if result.notes else "no tool call"
        return f"the assistant turn does not parse: {note}"
    if executed_call is None:
        return "no executed call was recorded for this step"
    parsed = result.call.model_dump()
    if parsed != executed_call:
        return f"parses to {parsed} but {executed_call} was executed"
    return None


_WS = re.compile(r"\s+")
_NUM = re.compile(r"\d+")


def _near_key(sample: Sample) -> str:
    """Samples that differ only in whitespace, numbers (line numbers, timings) or the task
    id are near duplicates."""
    last_user = next((m["content"] for m in reversed(sample.messages[:-1]) if m["role"] == "user"), "")
    text = sample.messages[-1]["content"] + "\x00" + last_user[-400:]
    if sample.all_turns:  # a whole episode: every turn and observation counts
        text = "\x00".join(m["content"] for m in sample.messages)
    return hashlib.sha1(_NUM.sub("0", _WS.sub(" ", text)).encode()).hexdigest()


def samples_from_trajectory(
    traj: Trajectory, ep: EpisodeRow, selection: Selection
) -> tuple[list[tuple[Sample, dict[str, Any] | None]], int, int]:
    out: list[tuple[Sample, dict[str, Any] | None]] = []
    dropped_failed = dropped_looping = 0
    for rec in traj.steps:
        if not rec.output:
            continue
        if _is_failed(rec) and not selection.keep_failed_steps:
            dropped_failed += 1
            continue
        if rec.alarms and not selection.keep_looping_steps:
            dropped_looping += 1
            continue
        context = traj.context(rec.step)
        messages = [m.as_dict() for m in context] + [
            Message(role="assistant", content=rec.output).as_dict()
        ]
        sample = Sample(
            messages=messages,
            task_id=ep.task_id,
            family=ep.family,
            episode_id=ep.id,
            step=rec.step,
            resolved=ep.resolved,
        )
        out.append((sample, rec.call))
    return out, dropped_failed, dropped_looping


def episode_sample(
    traj: Trajectory, ep: EpisodeRow, selection: Selection
) -> tuple[Sample, list[dict[str, Any] | None]] | None:
    """The whole episode as one sample whose every assistant turn is a target, with the
    call executed at each turn; None when it cannot be one: a step would be dropped
    (failed or looping), or some step's context is not the previous one extended by its
    reply and observation (pruning rewrote it), so the turns were not all seen as here."""
    steps = [rec for rec in traj.steps if rec.output]
    if not steps:
        return None
    for rec in steps:
        if (_is_failed(rec) and not selection.keep_failed_steps) or (rec.alarms and not selection.keep_looping_steps):
            return None
    last = steps[-1]
    messages = [m.as_dict() for m in traj.context(last.step)] + [
        Message(role="assistant", content=last.output).as_dict()
    ]
    assistant_at = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if len(assistant_at) != len(steps):
        return None
    for rec, at in zip(steps, assistant_at, strict=True):
        if messages[at]["content"] != rec.output:
            return None
        if [m.as_dict() for m in traj.context(rec.step)] != messages[:at]:
            return None
    sample = Sample(
        messages=messages,
        task_id=ep.task_id,
        family=ep.family,
        episode_id=ep.id,
        step=last.step,
        resolved=ep.resolved,
        all_turns=True,
    )
    return sample, [rec.call for rec in steps]


def _is_failed(rec: StepRecord) -> bool:
    if rec.problem is not None or rec.call is None:
        return True
    return rec.result is not None and not rec.result.ok and rec.tool in ("edit", "write", "read")


def split_by_task(
    samples: list[Sample], valid_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    tasks = sorted({s.task_id for s in samples})
    if len(tasks) < 2:
        raise UserError(
            f"the selection has {len(tasks)} task(s); a train/valid split needs at least 2 tasks "
            "(widen the selection: more runs, families or --include-failed)"
        )
    rng = random.Random(seed)
    rng.shuffle(tasks)
    n_valid = min(len(tasks) - 1, max(1, round(len(tasks) * valid_fraction)))
    valid_tasks = set(tasks[:n_valid])
    train = [s for s in samples if s.task_id not in valid_tasks]
    valid = [s for s in samples if s.task_id in valid_tasks]
    return train, valid


async def synthesize(
    store: Store,
    selection: Selection | None = None,
    *,
    valid_fraction: float = 0.2,
    seed: int = 0,
    count_tokens: Callable[[list[dict[str, str]]], int] | None = None,
    per_episode: bool = False,
) -> Dataset:
    """Build the dataset. UserError (one line) when there is nothing to train on.

    With `per_episode`, an episode whose steps were all kept and never pruned is one sample
    with the loss on every assistant turn: the same supervision as one sample per step (the
    contexts are identical) in far fewer tokens. The format check then covers every turn.
    Other episodes still give one sample per step."""
    selection = selection or Selection()
    count = count_tokens or (lambda msgs: sum(len(m["content"]) // 4 + 4 for m in msgs))
    episodes = [e for e in await store.episodes(limit=10_000_000) if selection.admits(e)]
    if not episodes:
        what = "resolved episodes" if selection.resolved_only else "finished episodes"
        raise UserError(f"no {what} in {store.path} match the selection; nothing to train on")
    pairs: list[tuple[Sample, dict[str, Any] | None]] = []
    whole: list[tuple[Sample, list[dict[str, Any] | None]]] = []
    dropped_failed = dropped_looping = 0
    for ep in sorted(episodes, key=lambda e: (e.started_at, e.id)):
        traj = trajectory_from_events(await store.events(ep.id))
        one = episode_sample(traj, ep, selection) if per_episode else None
        if one is not None:
            whole.append(one)
            pairs.append((one[0], None))
            continue
        got, f, lo = samples_from_trajectory(traj, ep, selection)
        pairs.extend(got)
        dropped_failed += f
        dropped_looping += lo
    problems: list[FormatProblem] = []
    for sample, call in pairs:
        if sample.all_turns:
            continue
        reason = check_sample(sample, call)
        if reason is not None:
            problems.append(FormatProblem(episode_id=sample.episode_id, step=sample.step, reason=reason))
    for sample, calls in whole:
        turns = [m["content"] for m in sample.messages if m["role"] == "assistant"]
        for n, (content, call) in enumerate(zip(turns, calls, strict=True), 1):
            reason = check_turn(content, call)
            if reason is not None:
                problems.append(
                    FormatProblem(episode_id=sample.episode_id, step=n, reason=f"turn {n}: {reason}")
                )
    seen: set[str] = set()
    unique: list[Sample] = []
    for sample, _ in pairs:
        key = _near_key(sample)
        if key in seen:
            continue
        seen.add(key)
        unique.append(sample)
    if not unique:
        raise UserError("the selected episodes have no usable steps; nothing to train on")
    train, valid = split_by_task(unique, valid_fraction, seed)
    lengths = [count(s.messages) for s in unique]
    families: dict[str, int] = {}
    for s in unique:
        families[s.family] = families.get(s.family, 0) + 1
    stats = DataStats(
        samples=len(unique),
        train_samples=len(train),
        valid_samples=len(valid),
        tokens=sum(lengths),
        tasks=len({s.task_id for s in unique}),
        families=families,
        episodes=len(episodes),
        resolved_share=sum(e.resolved for e in episodes) / len(episodes),
        longest_sample_tokens=max(lengths),
        dropped_failed_steps=dropped_failed,
        dropped_looping_steps=dropped_looping,
        dropped_duplicates=len(pairs) - len(unique),
        format_ok=not problems,
        format_problems=problems,
    )
    digest = hashlib.sha256()
    for s in train + valid:
        digest.update(json.dumps(s.messages, sort_keys=True).encode())
        if s.all_turns:
            digest.update(b"\x00all_turns")
    return Dataset(train=train, valid=valid, stats=stats, data_hash=digest.hexdigest()[:16])
