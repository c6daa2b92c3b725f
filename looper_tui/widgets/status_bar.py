"""The live view's status: what the episode is doing (and whether a pause is on its way),
the step, the clock, the speed, the task and the model (a scripted policy said as such)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from looper_engine.episode_view import EpisodeView
from looper_tui.format import STATUS_GLYPH, STATUS_STYLE, fmt_clock
from looper_tui.tcss import beside


def state_words(ep: EpisodeView, control_state: str | None) -> tuple[str, str]:
    """What the episode is doing, in words, and the style to say it in."""
    status = ep.status
    if ep.finished is not None:
        return f"{STATUS_GLYPH.get(status, '?')} {status}", STATUS_STYLE.get(status, "")
    if control_state == "cancelled":
        return "⊘ cancelling…", "$warning bold"
    if ep.paused_at is not None:
        if ep.paused_at == 0:
            return "‖ paused before step 1", "$warning bold"
        return f"‖ paused at step {ep.paused_at}", "$warning bold"
    if control_state == "pausing":
        if ep.current_step == 0:
            return "‖ pausing before step 1…", "$warning"
        return "‖ pausing after this step…", "$warning"
    if status == "waiting":
        return "· waiting for a free slot", "$text-muted"
    return "● running", "$primary bold"


class EpisodeStatusBar(Static):
    DEFAULT_CSS = beside(__file__)

    def show(self, ep: EpisodeView, control_state: str | None, now: float, title: str = "") -> None:
        words, style = state_words(ep, control_state)
        step = ep.current_step
        of = f"/{ep.max_steps}" if ep.max_steps else ""
        rate = ep.tokens_per_second()
        rate_text = f"{rate:,.0f} tok/s" if rate is not None else "— tok/s"
        model_style = "$looper-scripted bold" if ep.scripted else "bold"
        sep = (" · ", "$text-muted")
        line1 = Content.assemble(
            (words, style),
            sep,
            f"step {step}{of}",
            sep,
            fmt_clock(ep.elapsed(now)),
            sep,
            rate_text,
        )
        parts: list[str | tuple[str, str]] = [
            (ep.task_id, "bold"),
            sep,
            (ep.model_label or ep.model or "?", model_style),
        ]
        if ep.unsandboxed:
            parts += [sep, (" UNSANDBOXED ", "$error bold reverse")]
        if ep.parent_id:
            parts += [sep, (f"fork of {ep.parent_id} at step {ep.fork_step}", "$text-muted")]
        elif title:
            parts += [sep, (title, "$text-muted")]
        self.update(Content("\n").join([line1, Content.assemble(*parts)]))
