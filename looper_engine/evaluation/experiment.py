"""Experiment files: a task stream cut into chunks, a held-out set, the arms to compare, and
the limits, as one TOML file validated by pydantic.

    name = "weights-vs-prompt"      # the experiment's id in the database (default: file stem)
    model = "mlx:models/qwen"       # the base model: the zero-shot reference, the arms' default
    seeds = [0, 1]                  # each seed is one independent learning line (an epoch)
    chunk_size = 3
    cycles = 4                      # chunks learned (default: every chunk of the stream)

    [stream]                        # koan families in this order, or SWE-Bench-CL sequences
    source = "koans"
    families = ["off_by_one", "wrong_operator"]
    per_family = 3

    # or the task world: `chunk_size` tasks per chunk, spread over the chunk's families and
    # their training templates, drawn with `world_seed`
    # source = "world"
    # chunks = [["range_bound", "comparison"], ["negation"]]

    [heldout]
    families = ["async"]

    [limits]
    max_steps = 12

    [train]                         # TrainConfig: LoRA rank, iters, learning rate ...
    iters = 50

    [gate]                          # the regression gate after every night
    alpha = 0.05

    [[arms]]
    name = "adapter"
    kind = "adapter"                # base | framework | adapter | prompt-skill | memory, or a
    strategy = "replay"             # combination such as "memory+adapter"
    train = { rank = 64 }           # this arm's own TrainConfig settings (over [train]);
                                    # fine_tune_type = "full" trains the full weights

A bad file is a UserError of one line that names the file and the field:
`exp.toml: arms[1].strategy: unknown strategy 'foo' (known: naive, replay, ...)`.
Problems that need the tasks (a chunk size larger than the stream, a missing dataset) are found
by `plan_experiment`, and models that do not load by `preflight`; all before anything is written.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from looper_engine.config import FRAMEWORK_SWITCHES, AgentConfig
from looper_engine.consolidation.train import TrainConfig
from looper_engine.errors import UserError
from looper_engine.tasks.model import Task

#: The layers an arm can learn in, and the two kinds that learn nothing.
LAYERS: tuple[str, ...] = ("adapter", "prompt-skill", "memory")
ARM_KINDS: tuple[str, ...] = ("base", "framework", *LAYERS)
#: The zero-shot reference is recorded as an arm of this name; no arm may take it.
ZERO_SHOT = "zero-shot"
STRATEGY_NAMES: tuple[str, ...] = ("naive", "replay", "ewc", "routing", "merge", "cumulative", "share")
#: Which templates of the task world a section draws from.
WorldTemplates = Literal["train", "heldout", "all"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def _agent_overrides(v: dict[str, Any]) -> dict[str, Any]:
    """AgentConfig settings given in a file: each must be one AgentConfig accepts; the seed
    is the experiment's to set."""
    if "seed" in v:
        raise ValueError("seed: seeds come from the experiment's `seeds`")
    try:
        AgentConfig(**v)
    except ValidationError as exc:
        raise ValueError(_validation_line(exc)) from None
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamSpec(_Strict):
    """Where the tasks come from, and their order."""

    source: Literal["koans", "swe-bench-cl", "world"] = "koans"
    families: list[str] = Field(default_factory=list, description="koan families, in stream order")
    chunks: list[list[str]] = Field(
        default_factory=list, description="world: the families of each chunk, in stream order"
    )
    world_seed: int = Field(1, description="world: the seed instances are drawn with")
    templates: WorldTemplates = Field("train", description="world: the templates stream tasks come from")
    tasks: list[str] = Field(default_factory=list, description="task id globs (koans) or instance ids")
    per_family: int | None = Field(None, ge=1, description="the first N tasks (by id) of each family")
    curriculum: Path | None = Field(None, description="SWE-Bench-CL curriculum JSON")
    repos: Path | None = Field(None, description="folder of local clones (SWE-Bench-CL)")
    sequences: list[str] = Field(default_factory=list, description="SWE-Bench-CL sequences, in order")
    max_tasks: int | None = Field(None, ge=1, description="cut the stream after this many tasks")

    @model_validator(mode="after")
    def _source_fields(self) -> StreamSpec:
        if self.source == "swe-bench-cl":
            if self.curriculum is None:
                raise ValueError("curriculum: the swe-bench-cl source needs `curriculum = PATH`")
            if self.repos is None:
                raise ValueError("repos: the swe-bench-cl source needs `repos = DIR` (local clones)")
            if self.families or self.per_family:
                raise ValueError("families: koan families do not apply to the swe-bench-cl source")
        elif self.curriculum is not None or self.repos is not None or self.sequences:
            raise ValueError("curriculum: curriculum, repos and sequences need source = \"swe-bench-cl\"")
        if self.source == "world":
            if not self.chunks:
                raise ValueError("chunks: the world source needs `chunks = [[family, ...], ...]`")
            if self.families or self.tasks or self.per_family:
                raise ValueError("families: the world source takes its families from `chunks`")
            for i, chunk in enumerate(self.chunks):
                if not chunk:
                    raise ValueError(f"chunks: chunk {i} names no family")
        elif self.chunks:
            raise ValueError("chunks: chunks of families need source = \"world\"")
        return self


class HeldoutSpec(_Strict):
    """Tasks never learned from, evaluated after every cycle."""

    families: list[str] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=list)
    per_family: int | None = Field(None, ge=1)
    last: int | None = Field(None, ge=1, description="hold out the last N tasks of the stream instead")
    templates: WorldTemplates = Field(
        "all", description="world: the templates held-out tasks come from (heldout = unseen surfaces)"
    )
    world_seed: int | None = Field(None, description="world: default the stream's world_seed + 1")


class LimitsSpec(_Strict):
    max_steps: int = Field(12, ge=1)
    token_budget: int = Field(8192, ge=256)
    max_tokens_per_turn: int = Field(1024, ge=16)
    temperature: float = Field(0.0, ge=0.0)
    concurrency: int = Field(1, ge=1, le=64)
    test_timeout_s: float = Field(120.0, gt=0)

    def agent_overrides(self) -> dict[str, Any]:
        return {
            "max_steps": self.max_steps,
            "token_budget": self.token_budget,
            "max_tokens_per_turn": self.max_tokens_per_turn,
            "temperature": self.temperature,
            "test_timeout_s": self.test_timeout_s,
        }


class GateSpec(_Strict):
    enabled: bool = True
    measure: bool = Field(
        True,
        description="with the gate off: still run the frozen set under both states to record what "
        "it would have said (two runs of the frozen set per night); false skips them",
    )
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    max_tasks: int | None = Field(
        None, ge=1, description="frozen tasks at most (the earliest learned first); default all seen"
    )


class ArmSpec(_Strict):
    name: str
    kind: str = "base"
    model: str | None = Field(None, description="model spec; default: the experiment's model")
    off: list[str] = Field(default_factory=list, description="framework switches turned off")
    on: list[str] = Field(default_factory=list, description="framework switches turned on")
    config: dict[str, Any] = Field(default_factory=dict, description="any other AgentConfig setting")
    strategy: str | None = Field(None, description="adapter arms: the consolidation strategy")
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    teacher: str | None = Field(None, description="also learn from this model's runs of each chunk")
    learn_from: Literal["resolved", "all"] = "resolved"
    rules: int = Field(10, ge=1, le=50, description="prompt-skill: rules kept at most")
    memory_k: int = Field(3, ge=1, le=20, description="memory: similar past episodes in the prompt")
    extractor: Literal["auto", "llm", "deterministic"] = "auto"
    train: dict[str, Any] = Field(
        default_factory=dict, description="adapter arms: TrainConfig settings over the experiment's [train]"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"arm name {v!r} must be letters, digits and . _ + - (it names folders)")
        if v == ZERO_SHOT:
            raise ValueError(f"{ZERO_SHOT!r} is reserved for the zero-shot reference")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        parts = [p.strip() for p in v.split("+")]
        for p in parts:
            if p not in ARM_KINDS:
                raise ValueError(
                    f"unknown arm kind {p!r} (known: {', '.join(ARM_KINDS)}; combine with +, e.g. memory+adapter)"
                )
        if "base" in parts and len(parts) > 1:
            raise ValueError("'base' learns nothing and cannot be combined")
        if len(set(parts)) != len(parts):
            raise ValueError(f"arm kind {v!r} names a layer twice")
        return "+".join(parts)

    @field_validator("off", "on")
    @classmethod
    def _switches(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in FRAMEWORK_SWITCHES:
                raise ValueError(f"unknown framework switch {name!r} (known: {', '.join(FRAMEWORK_SWITCHES)})")
        return v

    @field_validator("config")
    @classmethod
    def _config(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _agent_overrides(v)

    @field_validator("train")
    @classmethod
    def _train(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            TrainConfig(**v)
        except ValidationError as exc:
            raise ValueError(_validation_line(exc)) from None
        return v

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str | None) -> str | None:
        if v is not None and v.strip().lower() not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {v!r} (known: {', '.join(STRATEGY_NAMES)})")
        return v.strip().lower() if v is not None else None

    @field_validator("model", "teacher")
    @classmethod
    def _spec(cls, v: str | None) -> str | None:
        if v is not None:
            from looper_engine.models.spec import checked_spec

            checked_spec(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ArmSpec:
        layers = self.layers
        if self.strategy is not None and "adapter" not in layers:
            raise ValueError("strategy: only adapter arms train with a strategy")
        if self.strategy_options and "adapter" not in layers:
            raise ValueError("strategy_options: only adapter arms train with a strategy")
        if self.train and "adapter" not in layers:
            raise ValueError("train: only adapter arms train")
        if self.train.get("fine_tune_type") == "full" and self.strategy_name() in ("merge", "share"):
            raise ValueError(f"train: the {self.strategy_name()} strategy needs LoRA adapters, not full fine-tuning")
        if "adapter" in layers:
            from looper_engine.consolidation.strategies import get_strategy

            try:
                get_strategy(self.strategy or "naive", **self.strategy_options)
            except UserError as exc:
                raise ValueError(f"strategy_options: {exc}") from None
        both = set(self.off) & set(self.on)
        if both:
            raise ValueError(f"on: {', '.join(sorted(both))} is both turned off and on")
        if "framework" in self.kind.split("+") and not (self.off or self.on or self.config):
            raise ValueError("off: a framework arm needs at least one switch in `off`, `on` or `config`")
        if self.teacher is not None and not layers:
            raise ValueError("teacher: only arms that learn (adapter, prompt-skill, memory) use a teacher")
        return self

    @property
    def layers(self) -> tuple[str, ...]:
        """The learning layers of this arm, in a fixed order."""
        parts = self.kind.split("+")
        return tuple(p for p in LAYERS if p in parts)

    @property
    def learns(self) -> bool:
        return bool(self.layers)

    def agent_config(self, limits: LimitsSpec, seed: int, common: dict[str, Any] | None = None) -> AgentConfig:
        """The arm's AgentConfig: the experiment's limits and common settings, then the arm's
        own `config`, `off` and `on`."""
        values: dict[str, Any] = {**limits.agent_overrides(), **(common or {}), **self.config, "seed": seed}
        values.update({name: False for name in self.off})
        values.update({name: True for name in self.on})
        return AgentConfig(**values)

    def strategy_name(self) -> str:
        return self.strategy or "naive"


class ExperimentSpec(_Strict):
    name: str = ""
    description: str = ""
    model: str = Field(description="the base model spec")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    chunk_size: int = Field(ge=1)
    cycles: int | None = Field(None, ge=1, description="chunks learned; default all")
    stream: StreamSpec = Field(default_factory=StreamSpec)
    heldout: HeldoutSpec = Field(default_factory=HeldoutSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    agent: dict[str, Any] = Field(
        default_factory=dict,
        description="AgentConfig settings for every arm and the zero-shot reference (an arm's own win)",
    )
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(iters=50))
    gate: GateSpec = Field(default_factory=GateSpec)
    arms: list[ArmSpec] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v and not _NAME.match(v):
            raise ValueError(f"name {v!r} must be letters, digits and . _ + - (it names folders)")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        from looper_engine.models.spec import checked_spec

        checked_spec(v)
        return v

    @field_validator("agent")
    @classmethod
    def _agent(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _agent_overrides(v)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @model_validator(mode="after")
    def _arms(self) -> ExperimentSpec:
        seen: set[str] = set()
        for i, arm in enumerate(self.arms):
            if arm.name in seen:
                raise ValueError(f"arms[{i}].name: two arms are called {arm.name!r}")
            seen.add(arm.name)
            if "adapter" in arm.layers:
                if self.arm_train(arm).fine_tune_type == "full" and arm.strategy_name() in ("merge", "share"):
                    raise ValueError(
                        f"arms[{i}].train: the {arm.strategy_name()} strategy needs LoRA adapters, "
                        "not full fine-tuning"
                    )
                model = arm.model or self.model
                if not model.startswith("mlx:"):
                    raise ValueError(
                        f"arms[{i}].model: the adapter layer trains with mlx-lm; use an mlx:PATH model "
                        f"(got {model!r})"
                    )
        return self

    def arm_model(self, arm: ArmSpec) -> str:
        return arm.model or self.model

    def zero_shot_arm(self) -> ArmSpec:
        """The zero-shot reference: the base model, default framework, nothing learned."""
        return ArmSpec.model_construct(
            name=ZERO_SHOT,
            kind="base",
            model=self.model,
            off=[],
            on=[],
            config={},
            strategy=None,
            strategy_options={},
            teacher=None,
            learn_from="resolved",
            rules=10,
            memory_k=3,
            extractor="auto",
            train={},
        )

    def arm_train(self, arm: ArmSpec) -> TrainConfig:
        """The TrainConfig an adapter arm trains with: [train], then the arm's own `train`."""
        if not arm.train:
            return self.train
        return TrainConfig.model_validate({**self.train.model_dump(), **arm.train})

    def spec_hash(self) -> str:
        data = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:16]


# --- loading -------------------------------------------------------------------------------


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-before", "function-wrap")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


_FIELD_IN_MESSAGE = re.compile(r"^((?:[A-Za-z_]\w*(?:\[\d+\])?\.)*[A-Za-z_]\w*(?:\[\d+\])?): (.*)$", re.S)


def _validation_line(exc: ValidationError) -> str:
    """One line for the first problem: `field.path: message`."""
    err = exc.errors()[0]
    where = _loc(tuple(err["loc"]))
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    kind = err["type"]
    if kind == "extra_forbidden":
        msg = "unknown setting"
    elif kind == "missing":
        msg = "missing (required)"
    # A model-level check names its field at the front of its message.
    m = _FIELD_IN_MESSAGE.match(msg)
    if m and kind == "value_error" and " " not in m.group(1):
        sub = m.group(1)
        where = f"{where}.{sub}" if where else sub
        msg = m.group(2)
    msg = " ".join(msg.split())
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"{where}: {msg}{more}" if where else f"{msg}{more}"


def parse_experiment(text: str, where: str = "experiment", stem: str = "experiment") -> ExperimentSpec:
    """An ExperimentSpec from TOML text; UserError `WHERE: field: problem` when it is bad."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML: {exc}") from None
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{where}: {_validation_line(exc)}") from None
    if not spec.name:
        safe = re.sub(r"[^A-Za-z0-9._+-]+", "-", stem).strip("-.") or "experiment"
        spec = spec.model_copy(update={"name": safe})
    return spec


def load_experiment(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment file. Paths inside it are taken relative to its folder."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"experiment file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: cannot read: {exc}") from None
    spec = parse_experiment(text, str(p), p.stem)
    stream = spec.stream
    updates: dict[str, Any] = {}
    if stream.curriculum is not None and not stream.curriculum.is_absolute():
        updates["curriculum"] = (p.parent / stream.curriculum).resolve()
    if stream.repos is not None and not stream.repos.is_absolute():
        updates["repos"] = (p.parent / stream.repos).resolve()
    if updates:
        spec = spec.model_copy(update={"stream": stream.model_copy(update=updates)})
    return spec


# --- the plan: which tasks, in which chunks --------------------------------------------------


class StreamTask(BaseModel):
    """One task of the experiment, as the cycle and the reports see it."""

    id: str
    family: str
    statement: str
    chunk: int = Field(description="its chunk in the stream; -1 for held-out tasks")


class TaskSource:
    """Turns a task id into a Task an episode can run. Koans are ready as they are; a
    SWE-Bench-CL task gets a git worktree at its base commit for the episode's duration."""

    def __init__(self, tasks: dict[str, Task] | None = None, swe: dict[str, Any] | None = None,
                 repos: Path | None = None) -> None:
        self._tasks = tasks or {}
        self._swe = swe or {}
        self._repos = repos

    @asynccontextmanager
    async def materialize(self, task_id: str, scratch: Path) -> Any:
        if task_id in self._tasks:
            yield self._tasks[task_id]
            return
        from looper_engine.tasks.swebench_cl import prepare_swe_workspace, remove_worktree, to_task

        swe_task = self._swe[task_id]
        assert self._repos is not None
        scratch.mkdir(parents=True, exist_ok=True)
        dest = scratch / re.sub(r"[^A-Za-z0-9._-]+", "_", swe_task.instance_id)
        if dest.exists():
            await remove_worktree(dest)
        await prepare_swe_workspace(swe_task, self._repos, dest)
        try:
            yield to_task(swe_task, dest)
        finally:
            await remove_worktree(dest)


class ExperimentPlan(BaseModel):
    """A validated spec with its tasks resolved into chunks."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    spec: ExperimentSpec
    path: str
    chunks: list[list[str]]
    heldout: list[str]
    tasks: dict[str, StreamTask]
    source: Any = Field(exclude=True)

    @property
    def exp_id(self) -> str:
        return self.spec.name

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

    def chunk_tasks(self, chunk: int) -> list[str]:
        return self.heldout if chunk == -1 else self.chunks[chunk]

    def arms(self) -> list[ArmSpec]:
        return list(self.spec.arms)

    def iter_tasks(self) -> Iterator[StreamTask]:
        yield from self.tasks.values()


def _error(path: str, field: str, msg: str) -> UserError:
    return UserError(f"{path}: {field}: {msg}")


def _koan_stream(spec: ExperimentSpec, path: str) -> tuple[list[Task], list[Task]]:
    from looper_engine.tasks.suites import load_suite, select_tasks

    everything = load_suite("koans")
    families = sorted({t.family for t in everything})

    def pick(section: str, fams: list[str], globs: list[str], per_family: int | None) -> list[Task]:
        for i, fam in enumerate(fams):
            if fam not in families:
                raise _error(path, f"{section}.families[{i}]", f"unknown koan family {fam!r} (known: {', '.join(families)})")
        chosen: list[Task] = []
        if fams:
            for fam in fams:
                chosen.extend(sorted((t for t in everything if t.family == fam), key=lambda t: t.id))
        if globs:
            try:
                more = select_tasks(everything, globs)
            except UserError as exc:
                raise _error(path, f"{section}.tasks", str(exc)) from None
            chosen.extend(t for t in more if t not in chosen)
        if per_family is not None:
            counts: dict[str, int] = {}
            kept = []
            for t in chosen:
                counts[t.family] = counts.get(t.family, 0) + 1
                if counts[t.family] <= per_family:
                    kept.append(t)
            chosen = kept
        return chosen

    st = spec.stream
    stream = pick("stream", st.families, st.tasks, st.per_family)
    if not st.families and not st.tasks:
        stream = pick("stream", families, [], st.per_family)
    held = spec.heldout
    heldout = pick("heldout", held.families, held.tasks, held.per_family)
    return stream, heldout


def _swe_stream(spec: ExperimentSpec, path: str) -> tuple[list[Any], list[Any]]:
    from looper_engine.tasks.swebench_cl import curriculum_tasks, load_curriculum

    st = spec.stream
    assert st.curriculum is not None and st.repos is not None
    if not st.curriculum.is_file():
        raise _error(path, "stream.curriculum", f"file not found: {st.curriculum}")
    if not st.repos.is_dir():
        raise _error(path, "stream.repos", f"folder not found: {st.repos}")
    try:
        curriculum = load_curriculum(st.curriculum)
        tasks = curriculum_tasks(curriculum, st.sequences or None)
    except UserError as exc:
        raise _error(path, "stream.curriculum", str(exc)) from None
    if st.tasks:
        wanted = set(st.tasks)
        missing = wanted - {t.instance_id for t in tasks}
        if missing:
            raise _error(path, "stream.tasks", f"no such instance in the chosen sequences: {sorted(missing)[0]}")
        tasks = [t for t in tasks if t.instance_id in wanted]
    held = spec.heldout
    heldout: list[Any] = []
    if held.tasks:
        by_id = {t.instance_id: t for t in tasks}
        for i, tid in enumerate(held.tasks):
            if tid not in by_id:
                raise _error(path, f"heldout.tasks[{i}]", f"no such instance in the chosen sequences: {tid}")
        heldout = [by_id[t] for t in held.tasks]
        tasks = [t for t in tasks if t.instance_id not in set(held.tasks)]
    if held.families:
        raise _error(path, "heldout.families", "families apply to koans; use heldout.tasks or heldout.last")
    from looper_engine.tasks.swebench_cl import find_clone

    for t in [*tasks, *heldout]:
        try:
            find_clone(t.repo, st.repos)
        except UserError as exc:
            raise _error(path, "stream.repos", str(exc)) from None
    return tasks, heldout


def _world_pick(tasks: list[Task], family: str, n: int) -> list[Task]:
    """`n` tasks of one family, spread over its templates: instance 0 of every template,
    then instance 1 ... (world ids sort by instance, then template)."""
    return [t for t in tasks if t.family == family][:n]


def _world_stream(spec: ExperimentSpec, path: str) -> tuple[list[Task], list[Task]]:
    from looper_engine.tasks import world

    st, held = spec.stream, spec.heldout
    known = world.families()
    for i, chunk in enumerate(st.chunks):
        for k, fam in enumerate(chunk):
            if fam not in known:
                raise _error(path, f"stream.chunks[{i}][{k}]", f"unknown world family {fam!r} (known: {', '.join(known)})")
    for i, fam in enumerate(held.families):
        if fam not in known:
            raise _error(path, f"heldout.families[{i}]", f"unknown world family {fam!r} (known: {', '.join(known)})")
    if held.tasks:
        raise _error(path, "heldout.tasks", "the world source holds out by families (heldout.families)")

    def draw(families: list[str], per_family: list[int], seed: int, split: str) -> list[Task]:
        if not families:
            return []
        per_template = 1
        for fam, n in zip(families, per_family, strict=True):
            shapes = world.train_templates(fam) if split == "train" else (
                world.heldout_templates(fam) if split == "heldout" else world.templates(fam)
            )
            per_template = max(per_template, -(-n // max(len(shapes), 1)))
        pool = world.generate(seed=seed, per_template=per_template, families=sorted(set(families)), split=split)
        out: list[Task] = []
        for fam, n in zip(families, per_family, strict=True):
            got = _world_pick(pool, fam, n)
            if len(got) < n:
                raise _error(path, "stream.chunks", f"the world yields {len(got)} {fam} tasks, not {n}")
            out.extend(got)
        return out

    stream: list[Task] = []
    for chunk in st.chunks:
        # chunk_size tasks, as evenly over the chunk's families as the division allows
        share, extra = divmod(spec.chunk_size, len(chunk))
        counts = [share + (1 if k < extra else 0) for k in range(len(chunk))]
        picked = draw(chunk, counts, st.world_seed, st.templates)
        # interleave the families, so a chunk cut short (max_tasks) still holds all of them
        by_fam = [[t for t in picked if t.family == f] for f in chunk]
        stream.extend(t for group in itertools.zip_longest(*by_fam) for t in group if t is not None)
    heldout: list[Task] = []
    if held.families:
        n = held.per_family or spec.chunk_size
        seed = held.world_seed if held.world_seed is not None else st.world_seed + 1
        heldout = draw(held.families, [n] * len(held.families), seed, held.templates)
    return stream, heldout


def plan_experiment(spec: ExperimentSpec, path: str | Path = "experiment") -> ExperimentPlan:
    """Resolve the stream and the held-out set, cut the stream into chunks. UserError naming
    the field for anything that does not fit (an unknown family, a chunk larger than the stream,
    a dataset that is not there)."""
    path = str(path)
    st = spec.stream
    tasks: dict[str, StreamTask] = {}
    source: TaskSource
    if st.source in ("koans", "world"):
        stream_tasks, held_tasks = (_koan_stream if st.source == "koans" else _world_stream)(spec, path)
        source = TaskSource(tasks={t.id: t for t in [*stream_tasks, *held_tasks]})
        stream_ids = [(t.id, t.family, t.statement) for t in stream_tasks]
        held_ids = [(t.id, t.family, t.statement) for t in held_tasks]
    else:
        swe_stream, swe_held = _swe_stream(spec, path)
        source = TaskSource(
            swe={f"swe-bench-cl/{t.instance_id}": t for t in [*swe_stream, *swe_held]}, repos=st.repos
        )
        stream_ids = [(f"swe-bench-cl/{t.instance_id}", t.repo, t.task.problem_statement) for t in swe_stream]
        held_ids = [(f"swe-bench-cl/{t.instance_id}", t.repo, t.task.problem_statement) for t in swe_held]
    if st.max_tasks is not None:
        stream_ids = stream_ids[: st.max_tasks]
    if spec.heldout.last is not None:
        if spec.heldout.last >= len(stream_ids):
            raise _error(path, "heldout.last", f"{spec.heldout.last} leaves no stream ({len(stream_ids)} tasks)")
        held_ids = stream_ids[-spec.heldout.last :] + held_ids
        stream_ids = stream_ids[: -spec.heldout.last]
    overlap = {t[0] for t in stream_ids} & {t[0] for t in held_ids}
    if overlap:
        raise _error(path, "heldout", f"{sorted(overlap)[0]} is both in the stream and held out")
    if not stream_ids:
        raise _error(path, "stream", "selects no tasks")
    if spec.chunk_size > len(stream_ids):
        raise _error(
            path, "chunk_size", f"{spec.chunk_size} is larger than the stream ({len(stream_ids)} tasks)"
        )
    chunks = [stream_ids[i : i + spec.chunk_size] for i in range(0, len(stream_ids), spec.chunk_size)]
    if spec.cycles is not None:
        if spec.cycles > len(chunks):
            raise _error(
                path, "cycles", f"{spec.cycles} cycles need {spec.cycles} chunks; the stream has {len(chunks)}"
            )
        chunks = chunks[: spec.cycles]
    _check_gate(spec, path, sum(len(c) for c in chunks))
    for j, chunk in enumerate(chunks):
        for tid, fam, statement in chunk:
            tasks[tid] = StreamTask(id=tid, family=fam, statement=statement, chunk=j)
    for tid, fam, statement in held_ids:
        tasks[tid] = StreamTask(id=tid, family=fam, statement=statement, chunk=-1)
    return ExperimentPlan(
        spec=spec,
        path=path,
        chunks=[[t[0] for t in c] for c in chunks],
        heldout=[t[0] for t in held_ids],
        tasks=tasks,
        source=source,
    )


def _check_gate(spec: ExperimentSpec, path: str, n_stream: int) -> None:
    """Refuse a gate that can never reject: its largest frozen set (every stream task, or
    gate.max_tasks) is so small that losing every task still gives p >= alpha. Such a gate
    would report every night as a pass it never tested."""
    from looper_engine.evaluation.metrics import smallest_gate_p, smallest_testable_frozen_set

    gate = spec.gate
    if not gate.enabled or not any(arm.learns for arm in spec.arms):
        return
    largest = n_stream if gate.max_tasks is None else min(n_stream, gate.max_tasks)
    floor = smallest_gate_p(largest)
    if floor >= gate.alpha:
        need = smallest_testable_frozen_set(gate.alpha)
        raise _error(
            path,
            "gate",
            f"a frozen set of at most {largest} tasks can never reject at alpha {gate.alpha} (losing all "
            f"{largest} gives p = {floor:.3g}); the smallest frozen set that can work has {need} tasks "
            f"(more stream tasks, gate.max_tasks >= {need}, a larger gate.alpha, or gate.enabled = false)",
        )


def model_specs(spec: ExperimentSpec) -> list[tuple[str, str]]:
    """Every model the experiment runs, with the field that names it (for error messages)."""
    out: list[tuple[str, str]] = [("model", spec.model)]
    for i, arm in enumerate(spec.arms):
        if arm.model is not None:
            out.append((f"arms[{i}].model", arm.model))
        if arm.teacher is not None:
            out.append((f"arms[{i}].teacher", arm.teacher))
    return out


async def preflight(spec: ExperimentSpec, path: str | Path, backends: Any) -> None:
    """Load every model the experiment names, once each, through `backends` (a BackendPool);
    UserError `PATH: arms[i].model: why` for the first that does not load."""
    seen: set[str] = set()
    for field, model in model_specs(spec):
        if model in seen:
            continue
        seen.add(model)
        try:
            await backends.checked(model)
        except UserError as exc:
            raise _error(str(path), field, str(exc)) from None
