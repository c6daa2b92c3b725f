from looper_engine.agent.context import ContextWindow
from looper_engine.chat import Message
from looper_engine.context_view import HEAD, render_context


def count(m: Message) -> int:
    return len(m.content) // 4 + 4


def _window(budget: int, keep: int = 2, pruning: bool = True) -> ContextWindow:
    w = ContextWindow(count, budget, keep, pruning)
    w.reset([Message(role="system", content="S" * 40), Message(role="user", content="T" * 40)])
    return w


def _turn(w: ContextWindow, i: int, size: int = 400) -> None:
    w.append(Message(role="assistant", content=f"call {i}"))
    w.append(Message(role="user", content=f"out{i} " + "x" * size))


def test_under_budget_the_model_sees_the_whole_history():
    w = _window(10_000)
    for i in range(3):
        _turn(w, i)
    msgs, info = w.build()
    assert msgs == w.history
    assert info.pruned_turns == 0 and info.tokens <= info.budget


def test_old_observations_are_elided_first_and_system_task_and_last_turns_kept():
    w = _window(budget=400, keep=2)
    for i in range(6):
        _turn(w, i)
    msgs, info = w.build()
    assert info.tokens <= 400
    assert msgs[0].content == "S" * 40 and msgs[1].content == "T" * 40
    # the last two turns untouched
    assert msgs[-4:] == w.history[-4:]
    # older observations replaced by a marker that says how much was elided
    elided = [m.content for m in msgs if m.content.startswith("[output elided")]
    assert elided and all("characters]" in e for e in elided)
    assert info.pruned_turns >= 1


def test_when_eliding_is_not_enough_old_turns_are_dropped_behind_one_marker():
    w = _window(budget=300, keep=1)
    for i in range(40):
        _turn(w, i, size=40)
    msgs, info = w.build()
    assert info.tokens <= 300
    assert msgs[HEAD].content.startswith("[") and "earlier messages elided" in msgs[HEAD].content
    assert msgs[-2:] == w.history[-2:]
    assert render_context(w.history, info.dropped_upto, info.elided_upto) == msgs


def test_pruning_off_sends_everything_even_over_budget():
    w = _window(budget=300, pruning=False)
    for i in range(10):
        _turn(w, i)
    msgs, info = w.build()
    assert msgs == w.history and info.tokens > 300 and info.pruned_turns == 0


def test_token_count_tracks_the_rendered_context_exactly():
    w = _window(budget=500, keep=1)
    for i in range(30):
        _turn(w, i, size=100)
        msgs, info = w.build()
        assert info.tokens == sum(count(m) for m in msgs)
