"""Shared pieces of the TUI tests: a deterministic app, a tiny task that scores in
milliseconds, a recorded episode written through the real store writer, and the events of
an episode in flight (for the screenshots, where real durations would vary)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from looper_engine.events import (
    BudgetUpdate,
    CallOpened,
    CallParsed,
    ContextBuilt,
    EpisodeFinished,
    EpisodeStarted,
    EventBase,
    EventBus,
    LoopAlarm,
    ModelDelta,
    ModelOutput,
    Observation,
    RunFinished,
    RunStarted,
    ToolResult,
)
from looper_engine.store.db import Store
from looper_engine.store.writer import StoreWriter
from looper_engine.tasks.model import GoldEdit, Task
from looper_tui.app import LooperApp

#: The clock every test app reads: 2026-01-01 00:00 UTC.
NOW = 1_767_225_600.0
SYSTEM_PROMPT = "You fix bugs in a small code repository. One tool call per reply, as an XML tag."
TASK_PROMPT = "Task: `add(1, 2)` returns -1; it should return 3.\nThe code is in calc.py."


def make_app(tmp_path: Path, db: Path | None = None, **kwargs: object) -> LooperApp:
    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("blink", False)
    kwargs.setdefault("config_folder", tmp_path / "config")
    kwargs.setdefault("workspace_parent", _workspaces(tmp_path))
    return LooperApp(db or tmp_path / "looper.db", **kwargs)  # type: ignore[arg-type]


def _workspaces(tmp_path: Path) -> Path:
    folder = tmp_path / "workspaces"
    folder.mkdir(exist_ok=True)
    return folder


def tiny_task(tmp_path: Path, name: str = "add") -> Task:
    """A one-file bug whose test is one Python expression: the oracle solves it in four
    steps and scoring takes milliseconds."""
    source = tmp_path / "tasks" / name
    source.mkdir(parents=True, exist_ok=True)
    (source / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    return Task(
        id=f"tiny/{name}",
        suite="tiny",
        family="tiny",
        statement="`add(1, 2)` returns -1; it should return 3.",
        source_dir=source,
        target_files=["calc.py"],
        gold=[GoldEdit(path="calc.py", old="return a - b", new="return a + b")],
        test_command=["{python}", "-c", "import calc; assert calc.add(1, 2) == 3"],
    )


async def wait_until(pilot: Pilot, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until `condition` holds (a guard against hanging, not a timing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the app never reached the expected state")
        await pilot.pause(0.02)


# --- an episode in flight, as events ---------------------------------------------------

CALC_SOURCE = "    1 | def add(a, b):\n    2 |     return a - b"
PYTEST_FAIL = "\n".join(
    [
        "F                                                                        [100%]",
        "=================================== FAILURES ===================================",
        "___________________________________ test_add ___________________________________",
        "    def test_add():",
        ">       assert add(1, 2) == 3",
        "E       assert -1 == 3",
        "E        +  where -1 = add(1, 2)",
        "",
        "test_calc.py:4: AssertionError",
        "=========================== short test summary info ============================",
        "FAILED test_calc.py::test_add - assert -1 == 3",
        "1 failed in 0.03s",
    ]
)

#: (reasoning + call text, tool, target, call dict, ok, exit code, output)
STEPS: list[tuple[str, str, str, dict, bool, int | None, str]] = [
    (
        "Let me read the code the report is about.\n<read>calc.py</read>",
        "read", "calc.py", {"tool": "read", "path": "calc.py", "start": None, "end": None},
        True, None, CALC_SOURCE,
    ),
    (
        "Let me run the tests first.\n<bash>python -m pytest -q</bash>",
        "bash", "python -m pytest -q", {"tool": "bash", "command": "python -m pytest -q"},
        False, 1, PYTEST_FAIL,
    ),
    (
        "Let me look at the file again.\n<read>calc.py</read>",
        "read", "calc.py", {"tool": "read", "path": "calc.py", "start": None, "end": None},
        True, None, CALC_SOURCE,
    ),
    (
        "I see the bug. Fixing it:\n<edit path=\"calc.py\"><old>return a - b</old><new>return a + b</new></edit>",
        "edit", "calc.py", {"tool": "edit", "path": "calc.py", "old": "return a - b", "new": "return a + b"},
        True, None, "edited calc.py (exact match): line 2 replaced",
    ),
]


def episode_events(
    episode_id: str,
    *,
    run_id: str | None = "run-demo",
    task_id: str = "koans/off_by_one/add",
    t0: float = NOW - 42,
    steps: int = 3,
    alarm_at: int | None = 3,
    streaming: str | None = "Now I run the tests once.\n<bash>python -m py",
    finished: str | None = None,
    scripted: bool = True,
) -> list[EventBase]:
    """The events of a koan episode: `steps` whole steps, then (optionally) a step whose
    output is still streaming, or a finish."""
    common = {"episode_id": episode_id, "run_id": run_id}
    t = t0
    events: list[EventBase] = [
        EpisodeStarted(
            **common, ts=t, task_id=task_id, suite="koans", family="off_by_one",
            model="scripted:oracle" if scripted else "ollama:qwen2.5-coder:7b",
            model_label="scripted policy: oracle" if scripted else "qwen2.5-coder:7b", scripted=scripted,
            system_prompt=SYSTEM_PROMPT, task_prompt=TASK_PROMPT, max_steps=30, token_budget=8192,
        )
    ]
    context = 900
    for n in range(1, steps + 1):
        text, tool, target, call, ok, code, output = STEPS[(n - 1) % len(STEPS)]
        t += 1.0
        events.append(ContextBuilt(**common, ts=t, step=n, n_messages=2 * n, context_tokens=context, budget=8192))
        half = len(text) // 2
        events.append(ModelDelta(**common, ts=t + 0.2, step=n, text=text[:half]))
        events.append(CallOpened(**common, ts=t + 0.3, step=n, tool=tool))
        events.append(ModelDelta(**common, ts=t + 0.5, step=n, text=text[half:]))
        tokens = len(text) // 4
        events.append(ModelOutput(**common, ts=t + 0.5, step=n, text=text, prompt_tokens=context,
                                  completion_tokens=tokens, duration_s=0.5))
        events.append(CallParsed(**common, ts=t + 0.5, step=n, tool=tool, target=target, call=call))
        events.append(ToolResult(**common, ts=t + 0.7, step=n, tool=tool, target=target, ok=ok, exit_code=code,
                                 output=output, duration_s=0.2))
        observation = output + (f"\n(exit code {code})" if code is not None else "")
        if alarm_at == n:
            detail = "read calc.py 2 times without an edit in between"
            events.append(LoopAlarm(**common, ts=t + 0.7, step=n, loop="repeated_read", detail=detail))
            observation += "\nYou are repeating yourself."
        events.append(Observation(**common, ts=t + 0.7, step=n, text=observation))
        context += 120 + len(output) // 4
        events.append(BudgetUpdate(**common, ts=t + 0.7, step=n, context_tokens=context, budget=8192,
                                   pruned_turns=1 if n >= 3 else 0))
    if streaming is not None and finished is None:
        n = steps + 1
        t += 1.0
        events.append(ContextBuilt(**common, ts=t, step=n, n_messages=2 * n, context_tokens=context, budget=8192))
        events.append(ModelDelta(**common, ts=t + 0.5, step=n, text=streaming))
    if finished is not None:
        t += 1.0
        events.append(EpisodeFinished(**common, ts=t, status=finished, resolved=finished == "resolved",  # type: ignore[arg-type]
                                      reason="done", steps=steps, prompt_tokens=context * steps,
                                      completion_tokens=40 * steps, duration_s=t - t0, loop_alarms=1 if alarm_at else 0))
    return events


def publish(bus: EventBus, events: list[EventBase]) -> None:
    for ev in events:
        bus.publish(ev)


async def record_lab(db: Path) -> dict[str, str]:
    """A database with two finished runs (three episodes) at fixed times, through the real
    store writer. Returns the ids by name."""
    store = await Store.open(db)
    bus = EventBus()
    writer = StoreWriter(store, bus, linger_s=0).start()
    runs = [
        ("run-20251231-220000-aaaa", NOW - 7200, [("ep-20251231-220000-aaaa01", "koans/off_by_one/date_range", "resolved"),
                                                   ("ep-20251231-220000-aaaa02", "koans/off_by_one/paginate", "failed")]),
        ("run-20251231-233000-bbbb", NOW - 1800, [("ep-20251231-233000-bbbb01", "koans/wrong_operator/leap_year", "resolved")]),
    ]
    for run_id, t0, episodes in runs:
        bus.publish(RunStarted(run_id=run_id, ts=t0, suite="koans", model="scripted:oracle",
                               model_label="scripted policy: oracle", scripted=True,
                               task_ids=[task for _, task, _ in episodes], concurrency=2, name=""))
        for i, (episode_id, task, status) in enumerate(episodes):
            publish(bus, episode_events(episode_id, run_id=run_id, task_id=task, t0=t0 + i, steps=4,
                                        alarm_at=3 if status == "failed" else None, finished=status))
        resolved = sum(s == "resolved" for _, _, s in episodes)
        bus.publish(RunFinished(run_id=run_id, ts=t0 + 30, status="finished", resolved=resolved,
                                total=len(episodes), duration_s=30.0))
    await writer.close()
    await store.close()
    return {"run": runs[1][0], "episode": runs[0][2][1][0], "resolved": runs[0][2][0][0]}


async def record_long_episode(db: Path, steps: int, episode_id: str = "ep-long") -> str:
    """An episode of `steps` steps written straight into a store (no model)."""
    store = await Store.open(db)
    bus = EventBus()
    writer = StoreWriter(store, bus, linger_s=0).start()
    events = episode_events(episode_id, run_id=None, steps=steps, alarm_at=None, streaming=None,
                            finished="failed")
    for i in range(0, len(events), 2000):
        publish(bus, events[i : i + 2000])
        await writer.flush()
    await writer.close()
    await store.close()
    return episode_id
