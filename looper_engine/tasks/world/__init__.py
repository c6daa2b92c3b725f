"""The task world: procedurally generated bug-fix tasks a small model can learn.

Families of planted bugs (catalog.py), each with several surface templates and randomized
identifiers, constants and layout; every instance is a verified Task whose gold patch is the
minimal span, unique in its file, that fixes it. One template per family is held out of all
training (its task ids end in ".heldout").

    from looper_engine.tasks.world import generate, training_tasks
    tasks = generate(seed=1, per_template=50, families=["comparison"])
    train = training_tasks(tasks)          # without the held-out templates

Task ids are `world/<family>/<seed>-<index>/<template>[.heldout]`: an id names its instance,
which `task_for_id` rebuilds from it alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from looper_engine.errors import UserError
from looper_engine.tasks.model import Task
from looper_engine.tasks.world import index
from looper_engine.tasks.world.catalog import DESCRIPTIONS, FAMILIES
from looper_engine.tasks.world.generate import (
    SUITE,
    VERSION,
    Instance,
    WorldError,
    default_cache_dir,
    is_heldout,
    make_instance,
    parse_task_id,
    to_task,
)
from looper_engine.tasks.world.template import Template

__all__ = [
    "DEFAULT_PER_TEMPLATE",
    "DESCRIPTIONS",
    "SUITE",
    "VERSION",
    "Instance",
    "Template",
    "WorldError",
    "default_cache_dir",
    "exclude_seen",
    "families",
    "fingerprint",
    "generate",
    "heldout_templates",
    "instances",
    "is_heldout",
    "make_instance",
    "parse_task_id",
    "task_for_id",
    "templates",
    "to_task",
    "train_templates",
    "training_tasks",
]

#: Instances per template in the plain `world` suite.
DEFAULT_PER_TEMPLATE = 10


def families() -> list[str]:
    """The family names, in catalog order."""
    return list(FAMILIES)


def _check_families(names: Iterable[str] | None) -> list[str]:
    if names is None:
        return families()
    chosen = list(names)
    for name in chosen:
        if name not in FAMILIES:
            raise UserError(f"unknown world family {name!r} (known: {', '.join(FAMILIES)})")
    return chosen


def templates(family: str | None = None) -> list[Template]:
    """Every template (of one family, or of all), train and held-out."""
    return [t for name in _check_families(None if family is None else [family]) for t in FAMILIES[name]]


def train_templates(family: str | None = None) -> list[Template]:
    """The templates training data may come from."""
    return [t for t in templates(family) if not t.heldout]


def heldout_templates(family: str | None = None) -> list[Template]:
    """The templates kept out of all training, for measuring transfer to an unseen surface."""
    return [t for t in templates(family) if t.heldout]


def _template(family: str, name: str) -> Template | None:
    return next((t for t in FAMILIES.get(family, ()) if t.name == name), None)


def instances(
    seed: int = 0,
    per_template: int = DEFAULT_PER_TEMPLATE,
    families: Iterable[str] | None = None,
    split: str = "all",
    start: int = 0,
) -> list[Instance]:
    """Verified instances, indices start..start+per_template-1 of every chosen template.

    `split` is "all", "train" (no held-out template) or "heldout" (only those). Sorted by id,
    which interleaves the templates of a family (the index comes before the template).
    """
    if split not in ("all", "train", "heldout"):
        raise UserError(f"unknown split {split!r} (known: all, train, heldout)")
    if per_template < 0 or start < 0:
        raise UserError("per_template and start must be 0 or more")
    chosen = [
        t
        for name in _check_families(families)
        for t in FAMILIES[name]
        if split == "all" or t.heldout == (split == "heldout")
    ]
    made = [make_instance(t, seed, index) for t in chosen for index in range(start, start + per_template)]
    return sorted(made, key=lambda i: i.id)


def generate(
    seed: int = 0,
    per_template: int = DEFAULT_PER_TEMPLATE,
    families: Iterable[str] | None = None,
    split: str = "all",
    cache_dir: Path | None = None,
    start: int = 0,
) -> list[Task]:
    """Verified tasks materialized under `cache_dir` (default: default_cache_dir()), sorted by id.

    The list is cached there too (index.py): a second call with the same arguments reads it
    back instead of generating again.
    """
    root = cache_dir or default_cache_dir()
    chosen = _check_families(families)
    key = json.dumps([seed, per_template, chosen, split, start])
    cached = index.load(root, key)
    if cached is not None:
        return cached
    return index.save(root, key, instances(seed, per_template, chosen, split, start))


def task_for_id(task_id: str, cache_dir: Path | None = None) -> Task | None:
    """The world task with this id, rebuilt from the id alone; None when it names none."""
    parsed = parse_task_id(task_id)
    if parsed is None:
        return None
    family, name, seed, index, heldout = parsed
    template = _template(family, name)
    if template is None or template.heldout != heldout:
        return None
    return to_task(make_instance(template, seed, index), cache_dir or default_cache_dir())


def training_tasks(tasks: Iterable[Task]) -> list[Task]:
    """The tasks training data may be made from: every task but those of held-out templates."""
    return [t for t in tasks if not is_heldout(t.id)]


def fingerprint(task: Task) -> str:
    """A hash of the task's buggy file: two instances with the same file have the same fix."""
    text = (Path(task.source_dir) / task.target_files[0]).read_bytes()
    return hashlib.sha256(text).hexdigest()[:16]


def exclude_seen(tasks: Iterable[Task], seen: Iterable[Task]) -> list[Task]:
    """`tasks` without those whose buggy file is one of `seen`'s: an evaluation set of instances
    no model trained on `seen` can solve from memory. Small templates repeat files across
    seeds (the same names drawn again), so held-out instances should pass through this."""
    known = {fingerprint(t) for t in seen}
    return [t for t in tasks if fingerprint(t) not in known]
