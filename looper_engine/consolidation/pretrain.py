"""`looper model pretrain`: the mini-lab base model, trained from random weights.

A small llama (hidden 128, 4 layers, float32, ~1M parameters) learns the base families of
the task world (tasks/world/curriculum.py) from the engine's own oracle episodes:

1. training-template instances of the base families are generated (never a held-out
   template), and `scripted:oracle` runs each one through the real agent loop with the
   compact prompt profile, every event recorded in a scratch store;
2. `synthesize` (the `looper synth` path) turns the episodes into samples, one per episode
   with the loss on every assistant turn, each turn format-checked with the agent's parser:
   the training format is the inference format by construction;
3. a byte-level BPE is fitted to that text (chat markers and tool tags are single tokens)
   and the embedding is sized from the vocabulary it reached;
4. mlx-lm's trainer runs full fine-tuning (AdamW, warmup then cosine), batches padded to a
   few length buckets so few shapes compile;
5. the folder (mlx-lm's layout, so `mlx:PATH` loads it) is written whole or not at all, with
   `recipe.json`: the recipe, its hash, the data hash, the curve and the speed.

A second call with the same recipe finds `recipe.json` and returns at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from looper_engine.errors import UserError
from looper_engine.models.tiny import (
    ASSISTANT_TOKEN,
    CHAT_TEMPLATE,
    END_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    SYSTEM_TOKEN,
    TOOL_TAGS,
    USER_TOKEN,
    init_weights,
)
from looper_engine.tasks.world.curriculum import BASE_FAMILIES

DEFAULT_PATH = Path("models/minilab")
#: Per-family instance weights of the default recipe: arith_op's operator spans are the hardest
#: base family to tell apart (a third of its edits picked another family's span at weight 1).
FAMILY_WEIGHT: dict[str, float] = {"arith_op": 2.0}
RECIPE_FILE = "recipe.json"
#: Bump when the pipeline changes in a way the recipe does not show.
PRETRAIN_FORMAT = 1
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


class PretrainRecipe(BaseModel):
    """Everything that decides the model a pretraining run makes."""

    model_config = ConfigDict(extra="forbid")

    families: list[str] = Field(default_factory=lambda: list(BASE_FAMILIES))
    world_seed: int = Field(1000, description="world seed of the training instances")
    per_template: int = Field(200, ge=1, description="training instances of every training template")
    family_weight: dict[str, float] = Field(
        default_factory=lambda: dict(FAMILY_WEIGHT),
        description="families given more (or fewer) instances per template: per_template times this",
    )
    vocab_size: int = Field(1024, ge=300, description="requested BPE size (it may stop below)")
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    iters: int = Field(1000, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    warmup: int = Field(30, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    buckets: list[int] = Field(default_factory=lambda: [128, 160, 192, 224, 256, 320, 384])
    seed: int = 0
    steps_per_report: int = Field(10, ge=1)

    def key(self) -> str:
        """The cache key: the recipe, the pipeline's format and the world's version."""
        from looper_engine.tasks.world import VERSION
        from looper_engine.tasks.world.index import source_hash

        recipe = self.model_dump()
        if not recipe["family_weight"]:
            del recipe["family_weight"]  # recipes from before the field keep their key
        text = json.dumps(
            {"recipe": recipe, "format": PRETRAIN_FORMAT, "world": [VERSION, source_hash()]},
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class PretrainProgress(BaseModel):
    phase: str  # "episodes", "data", "train", "save"
    done: int = 0
    total: int = 0
    loss: float | None = None
    tokens_per_second: float | None = None
    message: str = ""


class PretrainResult(BaseModel):
    path: Path
    cached: bool
    recipe_key: str
    data_hash: str
    episodes: int = 0
    samples: int = 0
    parameters: int = 0
    vocab_size: int = 0
    seconds: float = 0.0
    train_seconds: float = 0.0
    tokens: int = 0
    tokens_per_second: float | None = None
    final_loss: float | None = None
    curve: list[dict[str, float]] = Field(default_factory=list)
    blas: str = ""


def read_recipe(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(path) / RECIPE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cached_result(path: Path, recipe: PretrainRecipe) -> PretrainResult | None:
    """The recorded result when `path` holds a whole model made by this very recipe."""
    data = read_recipe(path)
    if data is None or data.get("recipe_key") != recipe.key():
        return None
    if not all((Path(path) / name).is_file() for name in MODEL_FILES):
        return None
    try:
        return PretrainResult.model_validate({**data.get("result", {}), "path": Path(path), "cached": True})
    except ValueError:
        return None


# --- 1. episodes --------------------------------------------------------------------------


def training_tasks(recipe: PretrainRecipe, cache_dir: Path | None = None) -> list[Any]:
    from looper_engine.tasks import world

    for fam in recipe.families:
        if fam not in world.families():
            raise UserError(f"unknown world family {fam!r} (known: {', '.join(world.families())})")
    for fam, weight in recipe.family_weight.items():
        if weight <= 0:
            raise UserError(f"family_weight {fam}={weight}: a weight must be positive")
    counts: dict[int, list[str]] = {}
    for fam in recipe.families:
        count = max(1, round(recipe.per_template * recipe.family_weight.get(fam, 1.0)))
        counts.setdefault(count, []).append(fam)
    tasks = []
    for per_template, families in sorted(counts.items()):
        tasks += world.generate(
            seed=recipe.world_seed, per_template=per_template, families=families, split="train",
            cache_dir=cache_dir,
        )
    return world.training_tasks(sorted(tasks, key=lambda t: t.id))


async def record_oracle_episodes(
    tasks: list[Any], db: Path, on_done: Callable[[int], None] | None = None, concurrency: int = 4
) -> None:
    """Run `scripted:oracle` on every task through the real agent loop (compact profile),
    every event recorded in `db`."""
    from looper_engine.agent.runner import Runner
    from looper_engine.events import EventBus
    from looper_engine.models.registry import create_backend
    from looper_engine.store.db import Store
    from looper_engine.store.writer import StoreWriter

    store = await Store.open(db)
    bus = EventBus()
    writer = StoreWriter(store, bus).start()
    backend = create_backend("scripted:oracle", rate=0)
    sub = bus.subscribe(kinds=("episode_finished",), max_pending=1_000_000)
    try:
        runner = Runner(tasks, backend, minilab_agent_config(), bus, suite="world", concurrency=concurrency)
        run = asyncio.create_task(runner.run())
        finished = 0
        while not run.done():
            await asyncio.wait([run], timeout=0.2)
            finished += len(sub.drain())
            if on_done is not None:
                on_done(finished)
        run.result()
    finally:
        sub.close()
        await writer.close()
        await store.close()
        await backend.aclose()


def minilab_agent_config(**overrides: Any) -> Any:
    """The agent settings the mini-lab model is trained and evaluated with."""
    from looper_engine.config import AgentConfig

    settings: dict[str, Any] = {
        "prompt_profile": "compact",
        "few_shot": False,
        "no_pip_rule": False,
        "skip_verification_rule": False,
        "max_steps": 4,
        "max_tokens_per_turn": 64,
        "temperature": 0.0,
    }
    settings.update(overrides)
    return AgentConfig(**settings)


async def synthesize_rows(db: Path, seed: int) -> tuple[list[dict[str, Any]], str, Any]:
    """Whole-episode samples from the recorded store: (rows, data hash, stats)."""
    from looper_engine.consolidation.synth import synthesize
    from looper_engine.store.db import Store

    store = await Store.open(db, create=False)
    try:
        data = await synthesize(store, per_episode=True, valid_fraction=0.02, seed=seed)
    finally:
        await store.close()
    if not data.stats.format_ok:
        first = data.stats.format_problems[0]
        raise UserError(f"the oracle episodes fail the format check ({first.episode_id}: {first.reason})")
    # Episodes finish in whatever order the run's concurrency gave; the task order does not
    # depend on it, so the rows, their hash and the batches are the same on every rebuild.
    samples = sorted(data.train + data.valid, key=lambda s: (s.task_id, s.episode_id))
    rows = [s.row_with_meta() for s in samples]
    digest = hashlib.sha256()
    for s in samples:
        digest.update(json.dumps(s.messages, sort_keys=True).encode())
    return rows, digest.hexdigest()[:16], data.stats


# --- 2. tokenizer -------------------------------------------------------------------------


def chat_pieces(messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """The chat template's text cut into (piece, is_target) pieces: each assistant reply
    and its end token are targets; markers, prompts and observations are not. Joined, the
    pieces are exactly the template's rendering."""
    out: list[tuple[str, bool]] = []
    for m in messages:
        role = m["role"]
        if role == "assistant":
            out += [(f"<|{role}|>\n", False), (m["content"] + END_TOKEN, True), ("\n", False)]
        else:
            out.append((f"<|{role}|>\n{m['content']}{END_TOKEN}\n", False))
    return out


def fit_tokenizer(rows: list[dict[str, Any]], vocab_size: int) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def texts() -> Iterator[str]:
        for row in rows:
            for m in row["messages"]:
                yield m["content"]

    tok.train_from_iterator(texts(), trainer=trainer)
    tok.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in TOOL_TAGS])
    return tok


def encode_row(tok: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids of the rendered chat and a 0/1 loss mask of the same length."""
    ids: list[int] = []
    mask: list[int] = []
    for text, target in chat_pieces(messages):
        piece = tok.encode(text, add_special_tokens=False).ids
        ids += piece
        mask += [int(target)] * len(piece)
    return ids, mask


# --- 3. batches ---------------------------------------------------------------------------


def bucket_batches(lengths: list[int], buckets: list[int], batch_size: int, seed: int, epoch: int) -> list[tuple[int, list[int]]]:
    """(width, row indices) batches: rows grouped by the smallest bucket that holds them,
    shuffled within their bucket per epoch, cut into full batches (a short last batch is
    topped up from the same bucket), the batch order shuffled."""
    import numpy as np

    rng = np.random.default_rng([seed, epoch])
    by_bucket: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        width = next((b for b in buckets if n <= b), None)
        if width is not None:
            by_bucket.setdefault(width, []).append(i)
    batches: list[tuple[int, list[int]]] = []
    for width in sorted(by_bucket):
        idx = [by_bucket[width][j] for j in rng.permutation(len(by_bucket[width]))]
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            if len(chunk) < batch_size:
                if len(idx) < batch_size:
                    continue  # too few rows of this width for one batch: they wait for a later epoch
                chunk = idx[-batch_size:]
            batches.append((width, chunk))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


# --- 4. the model -------------------------------------------------------------------------


def model_config(recipe: PretrainRecipe, vocab_size: int, end_id: int, pad_id: int) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": recipe.hidden_size,
        "num_hidden_layers": recipe.num_layers,
        "intermediate_size": recipe.intermediate_size,
        "num_attention_heads": recipe.num_heads,
        "num_key_value_heads": recipe.num_heads,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "max_position_embeddings": 2048,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "bos_token_id": None,
        "eos_token_id": end_id,
        "pad_token_id": pad_id,
        "looper_minilab": True,
    }


def _write_tokenizer(folder: Path, tok: Any) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[SYSTEM_TOKEN, USER_TOKEN, ASSISTANT_TOKEN],
        chat_template=CHAT_TEMPLATE,
    )
    fast.model_max_length = 2048
    fast.save_pretrained(str(folder))
    tc_path = folder / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["chat_template"] = CHAT_TEMPLATE
    tc_path.write_text(json.dumps(tc, indent=2) + "\n")
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)


def train_model(
    recipe: PretrainRecipe,
    encoded: list[tuple[list[int], list[int]]],
    config: dict[str, Any],
    on_progress: Callable[[PretrainProgress], None] | None = None,
) -> tuple[Any, list[dict[str, float]], int, float]:
    """Full training with mlx-lm's trainer: (model, curve, target tokens, train seconds)."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    import numpy as np
    from mlx.utils import tree_flatten
    from mlx_lm.models.llama import Model, ModelArgs
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.trainer import TrainingArgs, train

    from looper_engine.consolidation.train import silenced_mlx_console

    mx.random.seed(recipe.seed)
    model = Model(ModelArgs.from_dict(config))
    shapes = {name: tuple(p.shape) for name, p in tree_flatten(model.parameters())}
    model.load_weights(list(init_weights(shapes, recipe.seed).items()))
    mx.eval(model.parameters())

    lengths = [len(ids) for ids, _ in encoded]
    schedule = optim.join_schedules(
        [
            optim.linear_schedule(recipe.learning_rate * 0.01, recipe.learning_rate, max(recipe.warmup, 1)),
            optim.cosine_decay(
                recipe.learning_rate, max(recipe.iters - recipe.warmup, 1), recipe.learning_rate * recipe.min_lr_ratio
            ),
        ],
        [max(recipe.warmup, 1)],
    )
    optimizer = optim.AdamW(learning_rate=schedule, weight_decay=recipe.weight_decay)

    def loss(model: Any, inputs: Any, targets: Any, mask: Any) -> tuple[Any, Any]:
        logits = model(inputs)
        ce = nn.losses.cross_entropy(logits, targets) * mask
        ntoks = mask.sum()
        return ce.astype(mx.float32).sum() / ntoks, ntoks

    def batches(**_: Any) -> Iterator[tuple[Any, Any, Any]]:
        epoch = 0
        while True:
            plan = bucket_batches(lengths, recipe.buckets, recipe.batch_size, recipe.seed, epoch)
            if not plan:
                raise UserError("no training sample fits the length buckets")
            for width, idx in plan:
                ids = np.full((len(idx), width + 1), config["pad_token_id"], np.int32)
                msk = np.zeros((len(idx), width), np.float32)
                for row, i in enumerate(idx):
                    toks, m = encoded[i]
                    ids[row, : len(toks)] = toks
                    # mask[t] weighs the prediction of token t+1
                    msk[row, : len(toks) - 1] = m[1:]
                yield mx.array(ids[:, :-1]), mx.array(ids[:, 1:]), mx.array(msk)
            epoch += 1

    curve: list[dict[str, float]] = []
    totals = {"tokens": 0, "seconds": 0.0}

    class Reporter(TrainingCallback):
        def on_train_loss_report(self, info: dict[str, Any]) -> None:
            curve.append({"iteration": float(info["iteration"]), "train_loss": float(info["train_loss"])})
            totals["tokens"] = int(info["trained_tokens"])
            if on_progress is not None:
                on_progress(
                    PretrainProgress(
                        phase="train",
                        done=int(info["iteration"]),
                        total=recipe.iters,
                        loss=float(info["train_loss"]),
                        tokens_per_second=float(info["tokens_per_second"]),
                    )
                )

    scratch = Path(tempfile.mkdtemp(prefix="looper-pretrain-"))
    args = TrainingArgs(
        batch_size=recipe.batch_size,
        iters=recipe.iters,
        val_batches=0,
        steps_per_report=recipe.steps_per_report,
        steps_per_eval=recipe.iters + 1,
        steps_per_save=recipe.iters + 1,
        adapter_file=str(scratch / "weights.safetensors"),
        max_seq_length=max(recipe.buckets) + 1,
    )
    model.train()
    t0 = time.perf_counter()
    try:
        with silenced_mlx_console():
            train(
                model=model,
                optimizer=optimizer,
                train_dataset=encoded,
                val_dataset=None,
                args=args,
                loss=loss,
                iterate_batches=batches,
                training_callback=Reporter(),
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    totals["seconds"] = time.perf_counter() - t0
    model.eval()
    return model, curve, totals["tokens"], totals["seconds"]


# --- the whole pipeline -------------------------------------------------------------------


def pretrain(
    path: Path = DEFAULT_PATH,
    recipe: PretrainRecipe | None = None,
    *,
    force: bool = False,
    on_progress: Callable[[PretrainProgress], None] | None = None,
    world_cache: Path | None = None,
) -> PretrainResult:
    """Build the mini-lab model at `path` (or return the one there, made by this recipe).
    Blocking: minutes of CPU. The folder is replaced only once a whole new one exists."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from looper_engine.runtime.blas import blas_info

    recipe = recipe or PretrainRecipe()
    path = Path(path)
    if not force:
        hit = cached_result(path, recipe)
        if hit is not None:
            return hit
    if path.exists() and not path.is_dir():
        raise UserError(f"cannot build the model at {path}: it is a file")
    if path.is_dir() and any(path.iterdir()) and read_recipe(path) is None:
        raise UserError(f"cannot build the model at {path}: the folder holds something else")

    def say(p: PretrainProgress) -> None:
        if on_progress is not None:
            on_progress(p)

    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.building-", dir=path.parent))
    work = Path(tempfile.mkdtemp(prefix="looper-pretrain-episodes-"))
    try:
        tasks = training_tasks(recipe, world_cache)
        say(PretrainProgress(phase="episodes", done=0, total=len(tasks)))
        asyncio.run(
            record_oracle_episodes(
                tasks, work / "episodes.db",
                on_done=lambda n: say(PretrainProgress(phase="episodes", done=n, total=len(tasks))),
            )
        )
        say(PretrainProgress(phase="data", message="synthesizing and fitting the tokenizer"))
        rows, data_hash, stats = asyncio.run(synthesize_rows(work / "episodes.db", recipe.seed))
        tok = fit_tokenizer(rows, recipe.vocab_size)
        encoded = [encode_row(tok, r["messages"]) for r in rows]
        vocab = tok.get_vocab_size()
        config = model_config(recipe, vocab, tok.token_to_id(END_TOKEN), tok.token_to_id(PAD_TOKEN))
        model, curve, tokens, train_s = train_model(recipe, encoded, config, on_progress)
        say(PretrainProgress(phase="save", message="writing the model"))
        os.chmod(tmp, 0o755)
        weights = dict(tree_flatten(model.parameters()))
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        _write_tokenizer(tmp, tok)
        n_params = sum(int(v.size) for v in weights.values())
        result = PretrainResult(
            path=path,
            cached=False,
            recipe_key=recipe.key(),
            data_hash=data_hash,
            episodes=len(tasks),
            samples=len(rows),
            parameters=n_params,
            vocab_size=vocab,
            seconds=time.perf_counter() - started,
            train_seconds=train_s,
            tokens=tokens,
            tokens_per_second=tokens / train_s if train_s > 0 else None,
            final_loss=curve[-1]["train_loss"] if curve else None,
            curve=curve,
            blas=blas_info().summary(),
        )
        record = {
            "recipe_key": result.recipe_key,
            "data_hash": data_hash,
            "recipe": recipe.model_dump(),
            "format": PRETRAIN_FORMAT,
            "data": {"episodes": len(tasks), "samples": len(rows), "tokens": stats.tokens,
                     "families": stats.families},
            "result": result.model_dump(mode="json", exclude={"path", "cached"}),
        }
        (tmp / RECIPE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def parameters_label(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.0f}k"


__all__ = [
    "DEFAULT_PATH",
    "PretrainProgress",
    "PretrainRecipe",
    "PretrainResult",
    "cached_result",
    "chat_pieces",
    "encode_row",
    "fit_tokenizer",
    "parameters_label",
    "pretrain",
]
