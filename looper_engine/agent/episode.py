"""One episode: task -> workspace -> prompt -> model stream -> parser -> tool -> observation
... -> <done> or a limit -> the task's tests. Everything that happens is an event on the bus;
the episode itself keeps only what the next step needs."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from pydantic import BaseModel

from looper_engine.agent.context import ContextWindow
from looper_engine.agent.control import Cancelled, EpisodeControl
from looper_engine.agent.loops import LoopDetector, alarm_text
from looper_engine.agent.prompts import build_system_prompt, build_task_prompt
from looper_engine.chat import Message
from looper_engine.config import AgentConfig
from looper_engine.errors import BackendError
from looper_engine.events import (
    BudgetUpdate,
    CallOpened,
    CallParsed,
    ContextBuilt,
    EpisodeFinished,
    EpisodeStarted,
    EpisodeStatus,
    EventBus,
    LoopAlarm,
    ModelDelta,
    ModelOutput,
    Observation,
    ParseProblem,
    Paused,
    PromptEdited,
    Resumed,
    ToolResult,
)
from looper_engine.models.base import Backend, GenOptions
from looper_engine.protocol.calls import DoneCall, ReadCall
from looper_engine.protocol.parser import StreamParser, TagOpened
from looper_engine.sandbox import Sandbox, SandboxSettings, SandboxUnavailable, open_sandbox, resolve_mode
from looper_engine.tasks.model import Score, Task
from looper_engine.tasks.scoring import score_workspace
from looper_engine.tools.runner import ToolOutcome, execute
from looper_engine.tools.workspace import Workspace


async def _workspace_patch(source: Path, workspace: Path) -> str | None:
    from looper_engine.interop.patch import workspace_diff

    try:
        return await asyncio.to_thread(workspace_diff, source, workspace)
    except OSError:
        return None


def new_episode_id() -> str:
    return "ep-" + time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


class EpisodeResult(BaseModel):
    episode_id: str
    task_id: str
    status: EpisodeStatus
    resolved: bool
    reason: str
    steps: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_s: float = 0.0
    loop_alarms: int = 0


_RESULT_FIELDS = set(EpisodeResult.model_fields) - {"episode_id", "task_id"}


def observation_text(outcome: ToolOutcome, notes: list[str]) -> str:
    parts = [outcome.output.rstrip("\n"), *notes]
    return "\n".join(p for p in parts if p)


class Episode:
    """Run one task with one backend. Construct, then `await run()`."""

    def __init__(
        self,
        task: Task,
        backend: Backend,
        config: AgentConfig,
        bus: EventBus,
        *,
        run_id: str | None = None,
        episode_id: str | None = None,
        control: EpisodeControl | None = None,
        system_prompt: str | None = None,
        prefix: list[Message] | None = None,
        replay_calls: list[dict] | None = None,
        parent_episode_id: str | None = None,
        fork_step: int | None = None,
        workspace_parent: Path | None = None,
    ) -> None:
        self.task = task
        self.backend = backend.for_task(task)
        self.config = config
        self.bus = bus
        self.run_id = run_id
        self.id = episode_id or new_episode_id()
        self.control = control or EpisodeControl()
        self.system_prompt = system_prompt if system_prompt is not None else build_system_prompt(config)
        self.task_prompt = build_task_prompt(task, config)
        self._prefix = prefix  # a forked episode's history after the task message
        self._replay_calls = replay_calls or []
        self.parent_episode_id = parent_episode_id
        self.fork_step = fork_step
        self.workspace_parent = workspace_parent
        self.window = ContextWindow(
            lambda m: self.backend.count_tokens([m]),
            config.token_budget,
            config.keep_last_turns,
            pruning=config.pruning,
        )
        self.loops = LoopDetector(config)
        self._sandbox: Sandbox | None = None
        self.step = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.alarms = 0
        self.control.attach(self._snapshot)
        self.control.on_pause = lambda step, reason: self._emit(Paused(step=step, reason=reason))
        self.control.on_resume = lambda step, stepping: self._emit(Resumed(step=step, stepping=stepping))

    def _emit(self, event):  # noqa: ANN001, ANN202 - any event type
        event.episode_id = self.id
        event.run_id = self.run_id
        return self.bus.publish(event)

    def _snapshot(self) -> tuple[str, list[Message]]:
        return self.window.system_prompt, list(self.window.history[1:])

    def _apply_edit(self) -> None:
        edit = self.control.take_edit()
        if edit is None:
            return
        system_prompt, messages = edit
        sys_text = system_prompt if system_prompt is not None else self.window.system_prompt
        rest = messages if messages is not None else list(self.window.history[1:])
        self.window.reset([Message(role="system", content=sys_text), *rest])
        self._emit(
            PromptEdited(
                step=self.step,
                system_prompt=sys_text,
                messages=[m.as_dict() for m in self.window.history],
            )
        )

    async def run(self) -> EpisodeResult:
        started = time.monotonic()
        # Before anything is recorded: a sandbox that cannot start is the user's to fix (exit 2).
        sandbox_kind = resolve_mode(self.config.sandbox)
        self._emit(
            EpisodeStarted(
                task_id=self.task.id,
                suite=self.task.suite,
                family=self.task.family,
                model=self.backend.spec,
                model_label=self.backend.label,
                scripted=self.backend.scripted,
                system_prompt=self.system_prompt,
                task_prompt=self.task_prompt,
                max_steps=self.config.max_steps,
                token_budget=self.config.token_budget,
                # what actually confined the episode ("none": nothing), not the setting "auto"
                config={**self.config.model_dump(), "sandbox": sandbox_kind},
                parent_episode_id=self.parent_episode_id,
                fork_step=self.fork_step,
            )
        )
        status: EpisodeStatus = "failed"
        reason = ""
        score: Score | None = None
        patch: str | None = None
        ws: Workspace | None = None
        sandbox: Sandbox | None = None
        starting: asyncio.Future[None] | None = None
        try:
            ws = await Workspace.create(self.task.source_dir, self.workspace_parent)
            sandbox = open_sandbox(
                ws.root, SandboxSettings(mode=sandbox_kind, network=self.config.network)
            )
            # The sandbox starts while the model writes its first turn; the first command waits for it.
            starting = asyncio.ensure_future(sandbox.start())
            self._sandbox = sandbox
            self.window.reset(
                [
                    Message(role="system", content=self.system_prompt),
                    Message(role="user", content=self.task_prompt),
                    *(self._prefix or []),
                ]
            )
            for call in self._replay_calls:
                await self._replay(call, ws)
            self.step = self.fork_step or 0
            if hasattr(self.backend, "advance"):
                self.backend.advance(self.step)
            reason = await self._loop(ws)
            patch = await _workspace_patch(self.task.source_dir, ws.root)
            score = await score_workspace(self.task, ws.root, self.config.test_timeout_s, sandbox=sandbox)
            status = "resolved" if score.resolved else "failed"
            if not score.resolved and reason == "done":
                reason = "done, but the tests still fail"
        except Cancelled:
            status, reason = "cancelled", "cancelled by the user"
        except BackendError as exc:
            status, reason = "errored", f"model backend: {exc}"
        except SandboxUnavailable as exc:
            status, reason = "errored", str(exc)
        finally:
            self.control.finish()
            if sandbox is not None:
                if starting is not None and starting.done() and not starting.cancelled():
                    starting.exception()  # seen: a failed start is reported by the command that waited
                await sandbox.close()
            if ws is not None:
                ws.cleanup()
        finished = EpisodeFinished(
            status=status,
            resolved=status == "resolved",
            reason=reason,
            steps=self.step,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            duration_s=time.monotonic() - started,
            loop_alarms=self.alarms,
            tests_passed=score.tests_passed if score else 0,
            tests_failed=score.tests_failed if score else 0,
            test_output=score.output if score else "",
            error_signature=score.error_signature if score else "",
            patch=patch,
        )
        self._emit(finished)
        return EpisodeResult(episode_id=self.id, task_id=self.task.id, **finished.model_dump(include=_RESULT_FIELDS))

    async def _replay(self, call_data: dict, ws: Workspace) -> None:
        """Re-execute a recorded call so a forked episode's workspace matches its parent's."""
        from pydantic import TypeAdapter

        from looper_engine.protocol.calls import ToolCall

        call = TypeAdapter(ToolCall).validate_python(call_data)
        if not isinstance(call, DoneCall):
            await execute(call, ws, self.config.tool_settings(), self._sandbox)

    async def _loop(self, ws: Workspace) -> str:
        cfg = self.config
        settings = cfg.tool_settings()
        options = GenOptions(
            temperature=cfg.temperature, max_tokens=cfg.max_tokens_per_turn, seed=cfg.seed
        )
        while True:
            await self.control.checkpoint(self.step)
            self._apply_edit()
            if self.step >= cfg.max_steps:
                return f"step limit ({cfg.max_steps}) reached"
            self.step += 1
            step = self.step
            messages, info = self.window.build()
            self._emit(
                ContextBuilt(
                    step=step,
                    n_messages=info.n_messages,
                    dropped_upto=info.dropped_upto,
                    elided_upto=info.elided_upto,
                    context_tokens=info.tokens,
                    budget=info.budget,
                )
            )
            text, duration = await self._generate(step, messages, options, info.tokens)
            parser_result = self._last_parse
            self.window.append(Message(role="assistant", content=text))
            self._emit(
                ModelOutput(
                    step=step,
                    text=text,
                    prompt_tokens=self._last_usage[0],
                    completion_tokens=self._last_usage[1],
                    duration_s=duration,
                )
            )
            call = parser_result.call
            if call is None:
                message = "\n".join(parser_result.notes) or "No tool call found."
                self._emit(ParseProblem(step=step, message=message))
                self._observe(step, message)
                self.control.tool_call_done()
                continue
            self._emit(
                CallParsed(
                    step=step,
                    tool=call.tool,
                    target=call.target(),
                    call=call.model_dump(),
                    extra_calls=parser_result.extra_calls,
                )
            )
            if isinstance(call, DoneCall):
                return "done"
            outcome = await execute(call, ws, settings, self._sandbox)
            self._emit(
                ToolResult(
                    step=step,
                    tool=call.tool,
                    target=call.target(),
                    ok=outcome.ok,
                    exit_code=outcome.exit_code,
                    output=outcome.output,
                    truncated=outcome.truncated,
                    duration_s=outcome.duration_s,
                )
            )
            notes = list(parser_result.notes)
            if cfg.loop_detection:
                # Progress is a file changed by write or edit; hashing the workspace after
                # every bash call would cost O(repository) per step.
                changed = bool(outcome.changed_files)
                alarms = self.loops.observe(
                    call.tool,
                    call.model_dump_json(),
                    call.path if isinstance(call, ReadCall) else None,
                    changed,
                )
                for alarm in alarms:
                    self.alarms += 1
                    self._emit(LoopAlarm(step=step, loop=alarm.loop, detail=alarm.detail))
                if alarms:
                    notes.append(alarm_text(alarms))
            self._observe(step, observation_text(outcome, notes))
            self.control.tool_call_done()

    def _observe(self, step: int, text: str) -> None:
        self.window.append(Message(role="user", content=text))
        self._emit(Observation(step=step, text=text))
        self._emit(
            BudgetUpdate(
                step=step,
                context_tokens=self.window.tokens(),
                budget=self.window.budget,
                pruned_turns=self.window.pruned_turns(),
                prompt_tokens_total=self.prompt_tokens,
                completion_tokens_total=self.completion_tokens,
            )
        )

    async def _generate(
        self, step: int, messages: list[Message], options: GenOptions, context_tokens: int
    ) -> tuple[str, float]:
        cfg = self.config
        parser = StreamParser(strip_fences=cfg.strip_fences, line_range_reads=cfg.line_range_reads)
        chunks: list[str] = []
        t0 = time.monotonic()
        stream = self.backend.stream(messages, options)
        iterator = aiter(stream)
        while True:
            try:
                delta = await anext(iterator)
            except StopAsyncIteration:
                break
            except BackendError:
                raise
            except Exception as exc:  # noqa: BLE001 - a client failure ends the episode as errored
                raise BackendError(f"{type(exc).__name__}: {exc}") from exc
            if not delta:
                continue
            chunks.append(delta)
            self._emit(ModelDelta(step=step, text=delta))
            for ev in parser.feed(delta):
                if isinstance(ev, TagOpened):
                    self._emit(CallOpened(step=step, tool=ev.tool))
            if self.control.cancelled:
                await stream.aclose()
                raise Cancelled()
        parser.close()
        self._last_parse = parser.result()
        usage = stream.usage
        text = "".join(chunks)
        if usage is not None:
            p, c = usage.prompt_tokens, usage.completion_tokens
        else:
            p = context_tokens
            c = self.backend.count_tokens([Message(role="assistant", content=text)])
        self._last_usage = (p, c)
        self.prompt_tokens += p
        self.completion_tokens += c
        return text, time.monotonic() - t0
