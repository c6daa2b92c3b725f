"""Instances of the task world: rendered, verified, materialized as real tasks.

An instance is addressed by (template, seed, index); everything about it (names, layout,
inputs) is drawn from a random generator seeded by that address and the world's version, so
the same address always gives the same files. An instance is kept only when:

- the gold span occurs exactly once in the buggy file and replacing it gives the fixed file;
- the span holds none of the instance's drawn identifiers (nothing to copy);
- the files are short (the whole episode must fit a small model's context);
- its tests, executed as written, fail on the buggy file and pass on the gold-patched one.

A draw that breaks a rule is rejected and the next draw of the same address is tried.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from looper_engine.tasks.model import GoldEdit, Task
from looper_engine.tasks.world.guard import StepLimit, call_limited, load_module, load_tests, run_tests
from looper_engine.tasks.world.template import Args, Rendered, Rng, Template, render

#: Bumped whenever a change to the generator or the catalog changes what an address yields.
VERSION = 5
SUITE = "world"
HELDOUT_SUFFIX = ".heldout"
#: The buggy file's size limit (characters): the numbered file is most of an episode.
MAX_FILE_CHARS = 420
#: Tests per instance: failing ones (the statement quotes the shortest) and passing ones.
MAX_FAILING_TESTS = 2
MAX_PASSING_TESTS = 3
RANDOM_CANDIDATES = 10
MAX_ATTEMPTS = 40

_CHECK_SOURCE = Path(__file__).with_name("check.py").read_text(encoding="utf-8")
_IDENT = re.compile(r"[A-Za-z_]\w*")
_TASK_ID = re.compile(
    r"^world/(?P<family>\w+)/(?P<seed>\d+)-(?P<index>\d+)/(?P<template>\w+)(?P<heldout>\.heldout)?$"
)


class WorldError(Exception):
    """A template that cannot yield a valid instance: a bug in the catalog."""


@dataclass(frozen=True)
class Case:
    call: str
    expected: object
    #: What the buggy code gave: the repr of its value, "raised Type: message" or "never returns".
    buggy: str
    fails: bool


@dataclass(frozen=True)
class Instance:
    template: Template
    seed: int
    index: int
    module: str
    buggy: str
    fixed: str
    test_file: str
    tests: str
    statement: str
    old: str
    new: str
    cases: tuple[Case, ...]
    #: The value drawn for every mark of the template (and "mod", the module's name).
    names: dict[str, str]
    #: Draws of this address the generator rejected before this one.
    rejected: int = 0

    @property
    def id(self) -> str:
        return task_id(self.template, self.seed, self.index)

    def files(self) -> dict[str, str]:
        return {self.module: self.buggy, self.test_file: self.tests}


def task_id(template: Template, seed: int, index: int) -> str:
    suffix = HELDOUT_SUFFIX if template.heldout else ""
    return f"world/{template.family}/{seed}-{index:04d}/{template.name}{suffix}"


def parse_task_id(value: str) -> tuple[str, str, int, int, bool] | None:
    """(family, template, seed, index, heldout) of a world task id, or None."""
    match = _TASK_ID.match(value)
    if match is None:
        return None
    return (
        match["family"],
        match["template"],
        int(match["seed"]),
        int(match["index"]),
        match["heldout"] is not None,
    )


def is_heldout(value: str) -> bool:
    """True for the id of a world task whose template is held out of all training."""
    parsed = parse_task_id(value)
    return parsed is not None and parsed[4]


def test_command(test_file: str) -> list[str]:
    """The light runner, self-contained: `-I -S` so only the standard library is importable."""
    return ["{python}", "-I", "-S", "-c", _CHECK_SOURCE, test_file]


def _call_text(entry: str, args: Args) -> str:
    return f"{entry}({', '.join(repr(a) for a in args)})"


def _copy(args: Args) -> Args:
    # Functions may mutate their arguments; each run gets its own copy.
    return tuple(list(a) if isinstance(a, list) else dict(a) if isinstance(a, dict) else a for a in args)


def _outcome(fn: object, args: Args) -> tuple[bool, object, str]:
    """(ok, value, description) of fn(*args) under the step limit."""
    try:
        value = call_limited(fn, *_copy(args))  # type: ignore[arg-type]
    except StepLimit:
        return False, None, "never returns"
    except RecursionError:
        return False, None, "raised RecursionError"
    except Exception as exc:  # noqa: BLE001 - the buggy code may fail in any way
        message = str(exc).strip().splitlines()
        return False, None, f"raised {type(exc).__name__}" + (f": {message[0]}" if message else "")
    return True, value, repr(value)


def _tests_source(module: str, entry: str, cases: list[Case]) -> str:
    lines = [
        f"from {module} import {entry}",
        "",
        "",
        "def check(call, got, expected):",
        '    assert got == expected, f"{call} returned {got!r}, expected {expected!r}"',
    ]
    for number, case in enumerate(cases, 1):
        lines += ["", "", f"def test_{number}():", f"    check({case.call!r}, {case.call}, {case.expected!r})"]
    return "\n".join(lines) + "\n"


def _statement(module: str, case: Case) -> str:
    what = case.buggy if case.buggy == "never returns" or case.buggy.startswith("raised ") else f"returned {case.buggy}"
    return f"In {module}: {case.call} {what}, expected {case.expected!r}."


def _draw(template: Template, seed: int, index: int, rng: Rng) -> Instance | None:
    rendered: Rendered = render(template, rng)
    names = rendered.names
    buggy, fixed, old, new = rendered.buggy, rendered.fixed, rendered.old, rendered.new
    if not old or buggy.count(old) != 1 or buggy.replace(old, new, 1) != fixed or buggy == fixed:
        return None
    drawn = {v for k, v in names.items() if k not in template.span_marks}
    if any(token in drawn for token in _IDENT.findall(f"{old} {new}")):
        return None
    if len(buggy) > MAX_FILE_CHARS or not buggy.isascii():
        return None
    module_name = names["mod"]
    module, test_file = f"{module_name}.py", f"test_{module_name}.py"
    entry = names[template.entry]
    fixed_fn = getattr(load_module(module_name, fixed), entry)
    buggy_module = load_module(module_name, buggy)
    buggy_fn = getattr(buggy_module, entry)

    seen: set[str] = set()
    failing: list[Case] = []
    passing: list[Case] = []
    for args in [*template.edge, *(template.args(rng) for _ in range(RANDOM_CANDIDATES))]:
        call = _call_text(entry, args)
        if call in seen:
            continue
        seen.add(call)
        ok, expected, _ = _outcome(fixed_fn, args)
        if not ok:
            continue
        _, _, got = _outcome(buggy_fn, args)
        fails = got != repr(expected)
        (failing if fails else passing).append(Case(call, expected, got, fails))
    if not failing:
        return None
    failing.sort(key=lambda c: len(c.call))
    shown = failing[0]
    cases = [*failing[:MAX_FAILING_TESTS], *passing[:MAX_PASSING_TESTS]]
    rng.shuffle(cases)
    tests = _tests_source(module_name, entry, cases)

    # The tests as written, run on the files as written: they fail as generated and pass
    # once the gold span is replaced.
    patched = load_module(module_name, buggy.replace(old, new, 1))
    broken = run_tests(load_tests(tests, "test_" + module_name, {module_name: buggy_module}))
    healed = run_tests(load_tests(tests, "test_" + module_name, {module_name: patched}))
    if not broken or healed:
        return None
    return Instance(
        template=template,
        seed=seed,
        index=index,
        module=module,
        buggy=buggy,
        fixed=fixed,
        test_file=test_file,
        tests=tests,
        statement=_statement(module, shown),
        old=old,
        new=new,
        cases=tuple(cases),
        names=names,
    )


def make_instance(template: Template, seed: int, index: int) -> Instance:
    """The verified instance at this address: the first valid draw of its generator."""
    rng = Rng(f"looper-world:{VERSION}:{template.family}:{template.name}:{seed}:{index}")
    for attempt in range(MAX_ATTEMPTS):
        instance = _draw(template, seed, index, rng)
        if instance is not None:
            return dataclasses.replace(instance, rejected=attempt)
    raise WorldError(f"{template.key}: no valid instance in {MAX_ATTEMPTS} draws (seed {seed}, index {index})")


def default_cache_dir() -> Path:
    """Where instances are materialized: $LOOPER_CACHE_DIR, else the user cache."""
    env = os.environ.get("LOOPER_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "looper"


def instance_dir(instance: Instance, cache_dir: Path) -> Path:
    return (
        cache_dir
        / SUITE
        / f"v{VERSION}"
        / f"s{instance.seed}"
        / instance.template.family
        / f"{instance.index:04d}-{instance.template.name}"
    )


def materialize(instance: Instance, cache_dir: Path) -> Path:
    """The instance's folder under `cache_dir`, written unless it already holds these files."""
    folder = instance_dir(instance, cache_dir)
    write_folder(folder, instance.files())
    return folder


def _holds(folder: Path, files: dict[str, str]) -> bool:
    try:
        return {p.name for p in folder.iterdir()} == set(files) and all(
            (folder / name).read_text(encoding="utf-8") == text for name, text in files.items()
        )
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return False


def write_folder(folder: Path, files: dict[str, str]) -> None:
    """Make `folder` hold exactly `files`. The files are compared, not trusted: a stale or
    damaged cache is rewritten, so a task's gold patch always matches the files an episode
    starts from. The folder appears whole (written aside, then renamed into place); when
    another process wins the race with the same files, its folder is kept."""
    if _holds(folder, files):
        return
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.{id(files)}.tmp")
    staging.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (staging / name).write_text(text, encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(staging, folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not _holds(folder, files):
            raise


def to_task(instance: Instance, cache_dir: Path | None = None) -> Task:
    """The instance as a Task whose source_dir is its materialized folder."""
    folder = materialize(instance, cache_dir or default_cache_dir())
    return Task(
        id=instance.id,
        suite=SUITE,
        family=instance.template.family,
        difficulty=1,
        statement=instance.statement,
        source_dir=folder,
        target_files=[instance.module],
        gold=[GoldEdit(path=instance.module, old=instance.old, new=instance.new)],
        test_command=test_command(instance.test_file),
    )
