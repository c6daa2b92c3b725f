"""The mini-lab's lessons: what the oracle teaches on and what each round task then runs with,
under the routing lesson (an adapter per taught family) and the naive one (one model)."""

from collections import Counter
from types import SimpleNamespace

import pytest

from looper_engine.errors import UserError
from looper_engine.evaluation import minilab
from looper_engine.evaluation.minilab import MiniLabSettings

FAMILIES = ["negation", "comparison", "bool_op"]


def settings(strategy: str) -> MiniLabSettings:
    return MiniLabSettings(
        model="mlx:models/minilab",
        families=FAMILIES,
        per_family=2,
        teach_per_family=5,
        replay_per_family=2,
        teach_strategy=strategy,
    )


def lesson(path: str, routes: dict[str, str] | None = None) -> SimpleNamespace:
    """An AdapterRecord's two fields the lesson bookkeeping reads."""
    return SimpleNamespace(path=path, metrics={"routes": routes or {}})


def test_a_routing_lesson_holds_only_the_taught_family_and_a_naive_one_replays_the_rest():
    routing = Counter(t.family for t in minilab.teaching_tasks(settings("routing"), "bool_op"))
    naive = Counter(t.family for t in minilab.teaching_tasks(settings("naive"), "bool_op"))
    assert routing == {"bool_op": 5}
    assert naive == {"bool_op": 5, "negation": 2, "comparison": 2}


def test_a_routed_round_runs_taught_families_on_their_adapters_and_the_rest_on_the_base_model():
    s = settings("routing")
    tasks = minilab.round_tasks(s)
    assert minilab.round_groups(s, tasks, {}) == [("mlx:models/minilab", tasks)]

    routes = minilab.routes_after(s, {}, "bool_op", lesson("adapters/a1", {"bool_op": "adapters/a1/bool_op"}))
    routes = minilab.routes_after(s, routes, "negation", lesson("adapters/a2", {"negation": "adapters/a2/negation"}))
    assert routes == {"bool_op": "adapters/a1/bool_op", "negation": "adapters/a2/negation"}
    groups = dict(minilab.round_groups(s, tasks, routes))
    assert list(groups)[0] == "mlx:models/minilab"  # the base model's group runs first
    assert {spec: sorted({t.family for t in ts}) for spec, ts in groups.items()} == {
        "mlx:models/minilab": ["comparison"],
        "mlx:models/minilab@adapters/a1/bool_op": ["bool_op"],
        "mlx:models/minilab@adapters/a2/negation": ["negation"],
    }
    assert sorted(t.id for ts in groups.values() for t in ts) == sorted(t.id for t in tasks)


def test_a_naive_round_runs_every_family_on_the_newest_lesson():
    s = settings("naive")
    tasks = minilab.round_tasks(s)
    routes = minilab.routes_after(s, {}, "bool_op", lesson("adapters/a1"))
    routes = minilab.routes_after(s, routes, "negation", lesson("adapters/a2"))
    assert minilab.round_groups(s, tasks, routes) == [("mlx:models/minilab@adapters/a2", tasks)]


def test_a_routing_lesson_without_the_taught_familys_adapter_is_an_error_not_a_silent_base_run():
    with pytest.raises(UserError, match="no adapter for bool_op"):
        minilab.routes_after(settings("routing"), {}, "bool_op", lesson("adapters/a1", {"negation": "x"}))
