"""`looper model pretrain` on a tiny recipe: a small llama from random weights learns one
world family from a few hundred oracle episodes, through the whole pipeline (episodes in
the real agent loop, `synthesize` with one sample per episode, a fitted tokenizer, mlx-lm's
trainer), and the result runs as `mlx:PATH` in the ordinary agent loop."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from looper_engine.consolidation.minilab_eval import score_tasks
from looper_engine.consolidation.pretrain import (
    RECIPE_FILE,
    PretrainRecipe,
    chat_pieces,
    encode_row,
    pretrain,
    training_tasks,
)
from looper_engine.tasks import world
from looper_engine.tasks.world.curriculum import BASE_FAMILIES, STREAM_FAMILIES

FAMILY = "negation"
# Small enough for the test budget with mlx's reference BLAS: a few hundred episodes, a
# narrow two-layer model, ~150 steps.
RECIPE = PretrainRecipe(
    families=[FAMILY],
    world_seed=5,
    per_template=50,
    vocab_size=512,
    hidden_size=64,
    num_layers=2,
    num_heads=2,
    intermediate_size=128,
    iters=300,
    batch_size=16,
    learning_rate=3e-3,
    warmup=10,
    steps_per_report=25,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("pretrain")
    seen: list[str] = []
    result = pretrain(tmp / "minilab", RECIPE, on_progress=lambda p: seen.append(p.phase))
    return {"tmp": tmp, "result": result, "phases": seen}


def _new_instances(n: int) -> list[Any]:
    seen = training_tasks(RECIPE)
    fresh = world.generate(seed=77, per_template=n // 6 + 3, families=[FAMILY], split="train")
    return world.exclude_seen(fresh, seen)[:n]


def test_the_base_and_stream_families_split_the_world() -> None:
    assert set(BASE_FAMILIES).isdisjoint(STREAM_FAMILIES)
    assert set(BASE_FAMILIES) | set(STREAM_FAMILIES) == set(world.families())


def test_training_uses_training_templates_only(built: dict[str, Any]) -> None:
    tasks = training_tasks(RECIPE)
    assert tasks and all(not world.is_heldout(t.id) and t.family == FAMILY for t in tasks)
    assert built["result"].episodes == len(tasks)


def test_a_small_model_learns_a_family_it_could_not_solve(built: dict[str, Any]) -> None:
    from looper_engine.models.tiny import build_tiny_model

    path = built["result"].path
    tasks = _new_instances(12)
    assert len(tasks) == 12
    # Before training: a random-weight model of the same family of architecture solves none.
    untrained = build_tiny_model(built["tmp"] / "untrained")
    before = asyncio.run(score_tasks(untrained, tasks))
    after = asyncio.run(score_tasks(path, tasks))
    assert sum(before.values()) == 0
    assert sum(after.values()) >= 6, after
    curve = built["result"].curve
    assert curve[-1]["train_loss"] < curve[0]["train_loss"] / 3


def test_the_folder_is_a_model_mlx_lm_loads_with_its_recipe(built: dict[str, Any]) -> None:
    path = built["result"].path
    recorded = json.loads((path / RECIPE_FILE).read_text())
    assert recorded["recipe"] == RECIPE.model_dump() and recorded["recipe_key"] == RECIPE.key()
    assert recorded["data_hash"] == built["result"].data_hash
    config = json.loads((path / "config.json").read_text())
    # the embedding is sized from the vocabulary the tokenizer reached, not the request
    assert config["vocab_size"] == built["result"].vocab_size <= RECIPE.vocab_size + 32
    assert {"episodes", "train"} <= set(built["phases"])


def test_a_second_call_with_the_same_recipe_returns_at_once(built: dict[str, Any]) -> None:
    path = built["result"].path
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    t0 = time.perf_counter()
    again = pretrain(path, RECIPE)
    assert time.perf_counter() - t0 < 1.0
    assert again.cached and again.data_hash == built["result"].data_hash
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    other = RECIPE.model_copy(update={"iters": RECIPE.iters + 1})
    assert other.key() != RECIPE.key()


def test_a_folder_holding_something_else_is_refused(tmp_path: Path) -> None:
    from looper_engine.errors import UserError

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds something else"):
        pretrain(tmp_path / "m", RECIPE)


def test_training_tokens_are_the_chat_template_and_only_replies_carry_loss(built: dict[str, Any]) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(built["result"].path))
    messages = [
        {"role": "system", "content": "Fix the bug."},
        {"role": "user", "content": "In mod.py: f(1) returned 2."},
        {"role": "assistant", "content": "<read>mod.py</read>"},
        {"role": "user", "content": "1 def f(x):\n2     return x + 1"},
        {"role": "assistant", "content": '<edit path="mod.py"><old> + 1</old><new></new></edit>'},
    ]
    ids, mask = encode_row(tok.backend_tokenizer, messages)
    templated = tok.apply_chat_template(messages)
    assert ids == list(templated["input_ids"] if hasattr(templated, "keys") else templated)
    target = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert target == "<read>mod.py</read><|end|>" + messages[-1]["content"] + "<|end|>"
    assert "".join(p for p, _ in chat_pieces(messages)) == tok.apply_chat_template(messages, tokenize=False)


def test_a_family_weight_scales_its_instances_per_template() -> None:
    from looper_engine.consolidation.pretrain import training_tasks

    plain = RECIPE.model_copy(update={"families": ["negation", "comparison"], "per_template": 4, "family_weight": {}})
    weighted = plain.model_copy(update={"family_weight": {"comparison": 2.0}})
    count = lambda tasks, fam: sum(1 for t in tasks if t.family == fam)  # noqa: E731
    a, b = training_tasks(plain), training_tasks(weighted)
    assert count(b, "negation") == count(a, "negation")
    assert count(b, "comparison") == 2 * count(a, "comparison") > 0
    assert plain.key() != weighted.key()


def test_evaluation_draws_until_it_has_the_new_instances_asked_for(built: dict[str, Any]) -> None:
    from looper_engine.consolidation.minilab_eval import evaluation_tasks

    # The training seed itself: its first 50 instances per template are all training files.
    groups = evaluation_tasks(built["tmp"] / "minilab", n_base=40, n_other=0, seed=RECIPE.world_seed)
    (fam, group, tasks) = groups[0]
    assert (fam, group) == (FAMILY, "base")
    seen = {t.id for t in training_tasks(RECIPE)}
    assert len(tasks) == 40 and not seen & {t.id for t in tasks}
    assert len(world.exclude_seen(tasks, training_tasks(RECIPE))) == 40


def test_the_committed_model_is_the_default_recipes_so_make_run_starts_at_once() -> None:
    from looper_engine.consolidation.pretrain import DEFAULT_PATH, cached_result

    repo = Path(__file__).resolve().parents[2]
    assert cached_result(repo / DEFAULT_PATH, PretrainRecipe()) is not None, (
        "models/minilab was not made by the default recipe: rebuild it with `looper model pretrain --force`"
    )
