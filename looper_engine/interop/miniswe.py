"""mini-swe-agent trajectories, out and in.

Out: one `.traj.json` per episode in mini-swe-agent's v2 format (`trajectory_format:
"mini-swe-agent-1.1"`): `info` (`exit_status`, `submission` = the episode's final diff,
`model_stats`, `config`) and `messages` in chat form. Each assistant message carries the
step's bash command under `extra.actions` (where the step ran one) and all of Looper's step
data under `extra.looper`; each observation carries the tool's raw output and return code
under `extra`, as mini-swe-agent's own observations do. An `exit` message ends it.

In: a mini-swe-agent trajectory becomes a Looper episode. Each bash action is a `<bash>`
step: the assistant's prose followed by `<bash>COMMAND</bash>`, parsed by Looper's own
parser, so the recorded call is exactly the call that text gives back (the format check
that synthesis runs before training). Observations keep mini-swe-agent's text, which is
what that model saw. The episode is labelled with its origin (suite `mini-swe-agent`,
`config.origin`) and is unresolved unless the caller names it resolved (for example from the
SWE-bench harness's report), since Looper did not score it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from looper_engine.errors import UserError
from looper_engine.events import (
    CallParsed,
    ContextBuilt,
    EpisodeFinished,
    EpisodeStarted,
    EventBase,
    ModelOutput,
    Observation,
    ParseProblem,
    RunFinished,
    RunStarted,
    ToolResult,
)
from looper_engine.store.db import EpisodeRow, Store
from looper_engine.store.export import selected_episodes
from looper_engine.store.replay import Trajectory, trajectory_from_events

TRAJECTORY_FORMAT = "mini-swe-agent-1.1"
SUITE = "mini-swe-agent"

# --- out ----------------------------------------------------------------------------------


def exit_status(ep: EpisodeRow) -> str:
    """mini-swe-agent's words for how the episode ended."""
    if ep.reason.startswith("done"):
        return "Submitted"
    if ep.reason.startswith("step limit"):
        return "LimitsExceeded"
    return {"cancelled": "Cancelled", "errored": "BackendError", "interrupted": "Interrupted"}.get(
        ep.status, ep.status.capitalize() or "Unknown"
    )


def to_trajectory(ep: EpisodeRow, traj: Trajectory, score: dict[str, Any] | None) -> dict[str, Any]:
    patch = traj.finished.patch if traj.finished is not None else None
    status = exit_status(ep)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": traj.started.system_prompt, "extra": {}},
        {"role": "user", "content": traj.started.task_prompt, "extra": {}},
    ]
    for s in traj.steps:
        looper = {
            "step": s.step,
            "tool": s.tool,
            "target": s.target,
            "call": s.call,
            "problem": s.problem,
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "model_s": s.model_s,
            "context_tokens": s.context_tokens,
            "budget": s.budget,
            "pruned_turns": s.pruned_turns,
            "alarms": [{"loop": a.loop, "detail": a.detail} for a in s.alarms],
        }
        extra: dict[str, Any] = {"looper": looper}
        if s.call is not None and s.call.get("tool") == "bash":
            extra["actions"] = [{"command": s.call.get("command", "")}]
        messages.append({"role": "assistant", "content": s.output, "extra": extra})
        if s.observation is not None:
            obs_extra: dict[str, Any] = {}
            if s.result is not None:
                obs_extra = {
                    "raw_output": s.result.output,
                    "returncode": s.result.exit_code,
                    "looper": {"ok": s.result.ok, "truncated": s.result.truncated, "tool_s": s.result.duration_s},
                }
            elif s.problem is not None:
                obs_extra = {"interrupt_type": "FormatError", "looper": {"problem": s.problem}}
            messages.append({"role": "user", "content": s.observation, "extra": obs_extra})
    messages.append(
        {"role": "exit", "content": status, "extra": {"exit_status": status, "submission": patch or ""}}
    )
    origin = ep.config.get("origin") if isinstance(ep.config.get("origin"), dict) else None
    # mini-swe-agent's SWE-bench runs name the instance at the top level, as here.
    instance = {"instance_id": ep.task_id.removeprefix("swe-bench-cl/")} if ep.suite == "swe-bench-cl" else {}
    return {
        **instance,
        "info": {
            "model_stats": {"instance_cost": 0.0, "api_calls": len(traj.steps)},
            "config": {
                "agent": ep.config,
                "agent_type": "looper_engine.agent.episode.Episode",
                "model": {"model_name": ep.model, "label": ep.model_label, "scripted": ep.scripted},
                "model_type": f"looper:{ep.model.partition(':')[0]}",
                "environment": {"task_id": ep.task_id, "suite": ep.suite, "family": ep.family},
                "environment_type": "looper_engine.tools.workspace.Workspace",
            },
            "exit_status": status,
            "submission": patch or "",
            "looper": {
                "episode_id": ep.id,
                "run_id": ep.run_id,
                "status": ep.status,
                "resolved": ep.resolved,
                "reason": ep.reason,
                "steps": ep.steps,
                "duration_s": ep.duration_s,
                "prompt_tokens": ep.prompt_tokens,
                "completion_tokens": ep.completion_tokens,
                "loop_alarms": ep.loop_alarms,
                "patch_recorded": patch is not None,
                "score": score,
                "origin": origin,
            },
        },
        "messages": messages,
        "trajectory_format": TRAJECTORY_FORMAT,
    }


def trajectory_filename(ep: EpisodeRow) -> str:
    task = re.sub(r"[^A-Za-z0-9._-]+", "__", ep.task_id).strip("_") or "task"
    return f"{task}.{ep.id}.traj.json"


# --- in -----------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:[A-Za-z_]*bash[A-Za-z_]*|sh|shell)?[ \t]*\n(.*?)\n?```", re.DOTALL)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("text"))
    return ""


def _actions(message: dict[str, Any]) -> list[str]:
    """The bash commands of an assistant message, however its model wrote them."""
    extra = message.get("extra") or {}
    commands = [str(a["command"]) for a in extra.get("actions") or () if isinstance(a, dict) and "command" in a]
    if commands:
        return commands
    for tc in message.get("tool_calls") or ():
        fn = tc.get("function") or {} if isinstance(tc, dict) else {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except (TypeError, ValueError):
            continue
        if isinstance(args, dict) and "command" in args:
            commands.append(str(args["command"]))
    if commands:
        return commands
    return [m.strip() for m in _FENCE.findall(_text(message.get("content")))][:1]


def _prose(message: dict[str, Any]) -> str:
    text = _text(message.get("content"))
    return _FENCE.sub("", text).strip()


class Imported:
    """The events of one imported trajectory, ready for the store writer."""

    def __init__(self, events: list[EventBase], episode_id: str, steps: int) -> None:
        self.events = events
        self.episode_id = episode_id
        self.steps = steps


def read_trajectory(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if isinstance(data, list):  # mini-swe-agent v1 saved the bare message list
        data = {"messages": data, "info": {}}
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise UserError(f"{path} is not a mini-swe-agent trajectory (no messages list)")
    msgs = data["messages"]
    if len(msgs) < 2 or not all(isinstance(m, dict) and "role" in m for m in msgs):
        raise UserError(f"{path} is not a mini-swe-agent trajectory (needs a system and a task message)")
    return data


def trajectory_events(
    data: dict[str, Any], *, source: str, run_id: str, episode_id: str, resolved: bool, now: float | None = None
) -> Imported:
    from looper_engine.protocol.calls import BashCall
    from looper_engine.protocol.parser import parse_response, render_call

    info = data.get("info") or {}
    config = info.get("config") or {}
    model_cfg = config.get("model") or {}
    model_name = str(model_cfg.get("model_name") or "unknown")
    messages: list[dict[str, Any]] = data["messages"]
    system = next((m for m in messages if m.get("role") == "system"), messages[0])
    first_user = next((m for m in messages if m.get("role") == "user"), messages[1])
    instance = str(data.get("instance_id") or info.get("instance_id") or Path(source).name.split(".")[0])
    ts = now if now is not None else time.time()
    seq = 0

    def ev(cls: type[EventBase], **kw: Any) -> EventBase:
        nonlocal seq
        seq += 1
        return cls(episode_id=episode_id, run_id=run_id, seq=seq, ts=ts, **kw)

    exit_status = str(info.get("exit_status") or "")
    events: list[EventBase] = [
        ev(
            EpisodeStarted,
            task_id=instance,
            suite=SUITE,
            family=str((config.get("environment") or {}).get("repo") or instance.rsplit("-", 1)[0]),
            model=f"mini-swe-agent:{model_name}",
            model_label=f"mini-swe-agent: {model_name}",
            system_prompt=_text(system.get("content")),
            task_prompt=_text(first_user.get("content")),
            max_steps=int((config.get("agent") or {}).get("step_limit") or 0),
            token_budget=0,
            config={
                "origin": {
                    "format": "mini-swe-agent",
                    "trajectory_format": data.get("trajectory_format", "mini-swe-agent-1"),
                    "mini_version": info.get("mini_version"),
                    "source": source,
                    "exit_status": exit_status,
                    "model_stats": info.get("model_stats") or {},
                }
            },
        )
    ]
    n_history = 2
    step = 0
    pending: list[int] = []  # steps whose observation has not come yet, in order
    rest = messages[messages.index(first_user) + 1:]
    for m in rest:
        role = m.get("role")
        extra = m.get("extra") or {}
        if role == "assistant":
            commands = _actions(m)
            prose = _prose(m)
            if not commands:
                step += 1
                text = _text(m.get("content"))
                events.append(ev(ContextBuilt, step=step, n_messages=n_history, context_tokens=0, budget=0))
                events.append(ev(ModelOutput, step=step, text=text))
                events.append(ev(ParseProblem, step=step, message="no bash action in this reply"))
                n_history += 1
                pending.append(-step)
                continue
            for i, command in enumerate(commands):
                step += 1
                text = "\n".join(p for p in (prose if i == 0 else "", render_call(BashCall(command=command))) if p)
                parsed = parse_response(text)
                events.append(ev(ContextBuilt, step=step, n_messages=n_history, context_tokens=0, budget=0))
                events.append(ev(ModelOutput, step=step, text=text))
                n_history += 1
                if parsed.call is None:
                    events.append(ev(ParseProblem, step=step, message="; ".join(parsed.notes) or "unparsable"))
                    pending.append(-step)
                    continue
                call = parsed.call
                events.append(ev(CallParsed, step=step, tool=call.tool, target=call.target(), call=call.model_dump()))
                pending.append(step)
        elif role in ("user", "tool") and (pending or extra.get("interrupt_type") == "FormatError"):
            if not pending:
                # A format error: mini-swe-agent records the reply that failed under extra.
                step += 1
                events.append(ev(ContextBuilt, step=step, n_messages=n_history, context_tokens=0, budget=0))
                events.append(ev(ModelOutput, step=step, text=str(extra.get("model_response") or "")))
                events.append(ev(ParseProblem, step=step, message=_text(m.get("content"))[:500]))
                n_history += 1
                pending.append(-step)
            at = pending.pop(0)
            text = _text(m.get("content"))
            if at > 0:
                code = extra.get("returncode")
                events.append(
                    ev(
                        ToolResult,
                        step=at,
                        tool="bash",
                        ok=code == 0,
                        exit_code=code if isinstance(code, int) else None,
                        output=str(extra.get("raw_output", text)),
                    )
                )
            events.append(ev(Observation, step=abs(at), text=text))
            n_history += 1
        # exit messages and anything else carry no step
    submission = info.get("submission")
    events.append(
        ev(
            EpisodeFinished,
            status="resolved" if resolved else "failed",
            resolved=resolved,
            reason=f"imported from mini-swe-agent (exit status {exit_status or 'unknown'}); "
            + ("resolved by the caller's report" if resolved else "not scored by Looper"),
            steps=step,
            patch=submission if isinstance(submission, str) else None,
        )
    )
    return Imported(events, episode_id, step)


def run_events(run_id: str, task_ids: list[str], source: str, resolved: int, start: float) -> tuple[EventBase, EventBase]:
    started = RunStarted(
        run_id=run_id, seq=0, ts=start, suite=SUITE, model="mini-swe-agent", model_label="mini-swe-agent import",
        task_ids=task_ids, config={"origin": {"format": "mini-swe-agent", "source": source}},
        name=f"import of {source}",
    )
    finished = RunFinished(run_id=run_id, seq=0, ts=time.time(), resolved=resolved, total=len(task_ids))
    return started, finished


def trajectory_files(folder: Path) -> list[Path]:
    """`*.traj.json` (and v1's `*.traj`) under `folder`, or `folder` itself when it is a file."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise UserError(f"{folder} does not exist")
    files = sorted({*folder.rglob("*.traj.json"), *folder.rglob("*.traj")})
    if not files:
        raise UserError(f"{folder} holds no mini-swe-agent trajectories (*.traj.json)")
    return files


async def import_trajectories(
    store: Any, folder: Path, *, resolved_ids: set[str] | None = None, all_resolved: bool = False
) -> tuple[str, list[Imported]]:
    """Record every trajectory under `folder` as an episode of one new run; (run id, episodes).
    Every file is read and converted before anything is written, so a bad file writes nothing."""
    from looper_engine.agent.episode import new_episode_id
    from looper_engine.agent.runner import new_run_id
    from looper_engine.events import EventBus
    from looper_engine.store.writer import StoreWriter

    files = trajectory_files(folder)
    run_id = new_run_id()
    start = time.time()
    imported: list[Imported] = []
    for i, path in enumerate(files):
        data = read_trajectory(path)
        instance = str(data.get("instance_id") or (data.get("info") or {}).get("instance_id") or path.name.split(".")[0])
        resolved = all_resolved or instance in (resolved_ids or set())
        episode_id = f"{new_episode_id()}-{i:04d}"
        imported.append(
            trajectory_events(data, source=str(path), run_id=run_id, episode_id=episode_id, resolved=resolved, now=start)
        )
    task_ids = [str(next(iter(im.events)).task_id) for im in imported]  # type: ignore[attr-defined]
    run_started, run_finished = run_events(
        run_id, task_ids, str(folder), sum(isinstance(e, EpisodeFinished) and e.resolved
                                          for im in imported for e in im.events), start
    )
    writer = StoreWriter(store, EventBus())
    await writer.write_batch([run_started])
    for im in imported:
        await writer.write_batch(im.events)
    await writer.write_batch([run_finished])
    writer.sub.close()
    return run_id, imported


async def export_mini_swe_agent(
    store: Store, out_dir: Path, *, run_id: str | None = None, resolved_only: bool = False
) -> list[Path]:
    """One `.traj.json` per episode in mini-swe-agent's v2 format; the files written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file; mini-swe-agent trajectories go in a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ep in await selected_episodes(store, run_id, resolved_only):
        traj = trajectory_from_events(await store.events(ep.id))
        data = to_trajectory(ep, traj, await store.score(ep.id))
        path = out_dir / trajectory_filename(ep)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
