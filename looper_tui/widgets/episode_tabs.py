"""The episodes of a run, one tab each with its status: switching tabs switches the live
view to that episode's buffer (its stream kept while it was hidden)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Tab, Tabs

from looper_engine.episode_view import EpisodeView
from looper_tui.format import STATUS_GLYPH, STATUS_STYLE, short_task
from looper_tui.tcss import beside


def tab_id(episode_id: str) -> str:
    return "tab-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in episode_id)


def tab_label(ep: EpisodeView) -> Content:
    status = ep.status
    glyph = STATUS_GLYPH.get(status, "?")
    alarm = Content(" ⚠").stylize("$looper-alarm bold") if ep.alarms else Content("")
    return Content.assemble((glyph + " ", STATUS_STYLE.get(status, "")), short_task(ep.task_id)) + alarm


class EpisodeTabs(Tabs):
    DEFAULT_CSS = beside(__file__)

    def __init__(self, episodes: list[EpisodeView], active: str | None, id: str | None = None) -> None:  # noqa: A002 - Textual names it id
        self._ids = {tab_id(ep.id): ep.id for ep in episodes}
        self._labels: dict[str, str] = {ep.id: tab_label(ep).plain for ep in episodes}
        self._wanted = tab_id(active) if active else None
        tabs = [Tab(tab_label(ep), id=tab_id(ep.id)) for ep in episodes]
        super().__init__(*tabs, id=id)

    def on_mount(self) -> None:
        if self._wanted is not None:
            self.call_after_refresh(self._activate_wanted)

    def _activate_wanted(self) -> None:
        if self._wanted is not None and self._tab(self._wanted) is not None:
            self.active = self._wanted

    def _tab(self, tid: str) -> Tab | None:
        found = self.query(f"#{tid}")
        return found.first(Tab) if found else None

    def episode_of(self, tab: Tab | None) -> str | None:
        if tab is None or tab.id is None:
            return None
        return self._ids.get(tab.id)

    def show_episode(self, episode_id: str) -> None:
        self._wanted = tab_id(episode_id)
        if self.is_mounted:
            self._activate_wanted()

    def update_episode(self, ep: EpisodeView) -> None:
        tab = self._tab(tab_id(ep.id))
        label = tab_label(ep)
        if tab is not None and self._labels.get(ep.id) != label.plain:
            self._labels[ep.id] = label.plain
            tab.label = label
