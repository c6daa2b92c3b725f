"""`looper show`: replay a stored episode step by step in the terminal."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from looper_engine.cli.tables import print_table
from looper_engine.sandbox import recorded_kind, sandbox_note
from looper_engine.store.db import Store
from looper_engine.store.replay import trajectory_from_events


def _sandbox_label(config: dict) -> str:
    kind = recorded_kind(config)
    return "[bold red]UNSANDBOXED[/]" if kind == "none" else f"sandbox {kind}"


async def show(db_path: Path, episode_id: str | None, *, list_only: bool = False, with_context: bool = False) -> int:
    console = Console()
    store = await Store.open(db_path, create=False)
    try:
        if list_only:
            table = Table(header_style="bold")
            for col in ("episode", "task", "model", "status", "steps", "alarms", "sandbox"):
                table.add_column(col)
            episodes = await store.episodes(limit=50)
            for ep in episodes:
                kind = recorded_kind(ep.config)
                table.add_row(
                    ep.id, ep.task_id, ep.model_label, ep.status, str(ep.steps), str(ep.loop_alarms),
                    "UNSANDBOXED" if kind == "none" else kind,
                )
            print_table(console, table)
            note = sandbox_note([recorded_kind(ep.config) for ep in episodes])
            if note:
                console.print(note)
            return 0
        if episode_id is None:
            newest = await store.episodes(limit=1)
            if not newest:
                console.print(f"no episodes in {db_path}")
                return 0
            episode_id = newest[0].id
        ep = await store.require_episode(episode_id)
        traj = trajectory_from_events(await store.events(ep.id))
    finally:
        await store.close()
    console.print(
        Panel(
            f"[bold]{ep.task_id}[/]  model {ep.model_label}  status [bold]{ep.status}[/]  "
            f"steps {ep.steps}  tokens {ep.prompt_tokens + ep.completion_tokens}  {_sandbox_label(ep.config)}\n{ep.reason}",
            title=ep.id,
        )
    )
    for s in traj.steps:
        head = Text(f"step {s.step}  ", style="bold")
        head.append(f"{s.tool or '?'} {s.target}", style="cyan")
        if s.result is not None and s.result.exit_code is not None:
            head.append(f"  exit {s.result.exit_code}")
        head.append(f"  ctx {s.context_tokens}/{s.budget} tok")
        console.print(head)
        if with_context:
            for m in traj.context(s.step):
                console.print(Text(f"  [{m.role}] ", style="magenta") + Text(m.content[:400]))
        console.print(Text("  model: ", style="dim") + Text(s.output.strip()[:600]))
        if s.problem:
            console.print(Text("  problem: ", style="red") + Text(s.problem))
        if s.observation is not None:
            console.print(Text("  observation: ", style="dim") + Text(s.observation.strip()[:600]))
        for a in s.alarms:
            console.print(Text(f"  LOOP ALARM ({a.loop}): {a.detail}", style="bold yellow"))
    if traj.finished:
        f = traj.finished
        console.print(
            f"[bold]{f.status}[/]: {f.reason} (tests passed {f.tests_passed}, failed {f.tests_failed})"
        )
    return 0
