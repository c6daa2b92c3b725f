"""`looper report`: an experiment's results as DIR/report.md with PNG plots beside it.

Sections: the design's power; the setup; per arm the accuracy matrix as a heatmap; transfer
and forgetting with intervals; held-out success over cycles; episode metrics; base against each
arm (the exact sign-flip test on per-task differences, the difference with its interval, the
smallest detectable difference); the flip table task by task; repeat errors and pass@k; every
night's training curve; the gate's verdicts. Every n is a number of tasks, with the seeds
beside it ("24 tasks x 3 seeds"). Plots use matplotlib's Agg backend (no display needed).

`report_data` gives the same figures as a pydantic model (`looper report --format json`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from looper_engine.evaluation.power import DesignPower, power_lines
from looper_engine.evaluation.results import (
    CL_METRICS,
    NO_INTERVAL,
    ArmResults,
    Comparison,
    ExperimentResults,
    Flip,
    MetricValue,
    NightResult,
    fmt_detectable,
    fmt_measure,
    fmt_rate,
)
from looper_engine.evaluation.stats import TaskRate, design_label

SECTIONS: tuple[str, ...] = (
    "Power of this design",
    "Setup",
    "Environment",
    "Accuracy matrices",
    "Transfer and forgetting",
    "Held-out tasks",
    "Episodes",
    "Base against each arm",
    "Flip table",
    "Repeat errors and pass@k",
    "Training curves",
    "Regression gate",
)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "arm"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def _pyplot():  # noqa: ANN202 - the matplotlib module
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _tue(v: MetricValue) -> str:
    if v.value is None:
        return "— (no success)"
    ci = f" [{v.lo:.2f}, {v.hi:.2f}]" if v.lo is not None and v.hi is not None else ""
    return f"{v.value:.2f}{ci} (n={v.n})"


def plot_matrix(arm: ArmResults, path: Path) -> Path:
    """The accuracy matrix as a heatmap: rows = after learning chunk i, columns = chunk j."""
    import numpy as np

    plt = _pyplot()
    n = len(arm.matrix)
    data = np.array([[np.nan if v is None else v for v in row] for row in arm.matrix], dtype=float)
    size = max(3.0, 0.7 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(np.ma.masked_invalid(data), vmin=0.0, vmax=1.0, cmap="viridis")
    for i in range(n):
        for j in range(n):
            counts = arm.counts[i][j]
            if counts is not None:
                k, m = counts
                value = k / m
                ax.text(j, i, f"{value:.0%}\n{k}/{m}", ha="center", va="center", fontsize=8,
                        color="black" if value > 0.6 else "white")
    ax.set_xticks(range(n), [str(j + 1) for j in range(n)])
    ax.set_yticks(range(n), [str(i + 1) for i in range(n)])
    ax.set_xlabel("chunk j (evaluated)")
    ax.set_ylabel("after learning chunk i")
    ax.set_title(f"{arm.arm}: a[i][j]")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(arm: ArmResults, path: Path) -> Path | None:
    """Training (solid) and validation (dashed) loss of every night that trained."""
    nights = [n for n in arm.nights if n.curve]
    if not nights:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for night in nights:
        label = f"seed {night.seed}, night {night.cycle + 1}"
        jobs = sorted({str(p.get("job", "")) for p in night.curve})
        for job in jobs:
            pts = [p for p in night.curve if str(p.get("job", "")) == job]
            suffix = f" [{job}]" if len(jobs) > 1 else ""
            train = [(p["iteration"], p["train_loss"]) for p in pts if p.get("train_loss") is not None]
            val = [(p["iteration"], p["val_loss"]) for p in pts if p.get("val_loss") is not None]
            line = None
            if train:
                (line,) = ax.plot(*zip(*train, strict=True), marker=".", label=f"{label}{suffix} train")
            if val:
                color = line.get_color() if line is not None else None
                ax.plot(*zip(*val, strict=True), linestyle="--", marker="o", color=color,
                        label=f"{label}{suffix} valid")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(f"{arm.arm}: training curves")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _matrix_table(results: ExperimentResults, arm: ArmResults) -> list[str]:
    n = len(arm.matrix)
    head = "| after chunk | " + " | ".join(f"chunk {j + 1}" for j in range(n)) + " |"
    lines = [head, "|---|" + "---|" * n]
    for i, row in enumerate(arm.matrix):
        cells = []
        for j, v in enumerate(row):
            c = arm.counts[i][j]
            cells.append("" if v is None or c is None else f"{v:.0%} ({c[0]}/{c[1]})")
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    z = []
    for j, v in enumerate(results.zero_shot):
        c = results.zero_shot_counts[j]
        z.append("" if v is None or c is None else f"{v:.0%} ({c[0]}/{c[1]})")
    lines.append("| zero-shot z | " + " | ".join(z) + " |")
    return lines


def _environment_section(r: ExperimentResults) -> list[str]:
    from looper_engine.runtime.doctor import environment

    out = ["## Environment", ""]
    if r.environments:
        out.append("Training ran on" + (" these setups:" if len(r.environments) > 1 else ":"))
        out.append("")
        for env in r.environments:
            out += [f"- {k}: {v}" for k, v in env.items()]
            out.append("")
    else:
        out += ["No night trained a model in this experiment.", ""]
    here = environment()
    out += [f"This report was written on {here['system']}; BLAS: {here['blas']}.", ""]
    return out


def render_markdown(results: ExperimentResults, images: dict[str, str]) -> str:
    """The report text; `images` maps "matrix:ARM" and "curves:ARM" to file names."""
    r = results
    out: list[str] = [f"# Experiment {r.exp_id}", ""]
    if r.description:
        out += [r.description.strip(), ""]
    if r.scripted:
        out += [
            "> **Scripted policies take part in this experiment.** They are demo and test drivers: "
            "their numbers show that the machinery works, not what a model learns.",
            "",
        ]
    if r.sandbox_note:
        out += [f"> **Sandbox**: {r.sandbox_note}.", ""]
    incomplete = [a.arm for a in r.arms if not a.complete]
    if r.status != "finished" or incomplete:
        out += [
            f"> The experiment is **{r.status}**; "
            + (f"arms without a full matrix: {', '.join(incomplete)}. " if incomplete else "")
            + "Run it again to continue; metrics that need a full matrix are left out.",
            "",
        ]

    out += ["## Power of this design", ""]
    out += power_section(r.power)
    out += ["## Setup", ""]
    out += [
        f"- base model (zero-shot reference): `{r.model}`",
        f"- seeds (independent learning lines, and epochs for pass@k): {', '.join(map(str, r.seeds))}",
        f"- stream: {sum(len(c) for c in r.chunks)} tasks in {len(r.chunks)} chunks "
        f"({', '.join(str(len(c)) for c in r.chunks)} tasks)",
        f"- held-out: {design_label(len(r.heldout), [len(r.seeds)])}",
        f"- recorded: {r.counts.get('cells', 0)} cells measured by {r.counts.get('episodes', 0)} episodes; "
        f"{r.counts.get('nights', 0)} nights",
        "",
        "| arm | kind | model |",
        "|---|---|---|",
    ]
    out += [f"| {a.arm} | {a.kind} | `{a.model}` |" for a in r.arms]
    out += ["", "Chunks:", ""]
    out += [f"{j + 1}. " + ", ".join(f"`{t}`" for t in chunk) for j, chunk in enumerate(r.chunks)]
    out.append("")
    out += _environment_section(r)

    out += [
        "## Accuracy matrices",
        "",
        "a[i][j] is the share of chunk j's tasks (over all seeds) resolved after learning through "
        "chunk i; the first superdiagonal is the next, not yet learned chunk (forward transfer); "
        "z[j] is the base model's zero-shot rate.",
        "",
    ]
    for a in r.arms:
        out += [f"### {a.arm}", ""]
        img = images.get(f"matrix:{a.arm}")
        if img:
            out += [f"![accuracy matrix of {a.arm}]({img})", ""]
        out += _matrix_table(r, a)
        out.append("")

    out += [
        "## Transfer and forgetting",
        "",
        "Point estimates with 95% intervals from the stratified jackknife over tasks (each task left "
        "out in turn within its chunk, keeping every stage, seed and zero-shot score; Student's t on "
        "tasks - chunks degrees of freedom). An interval is shown only where a simulation of this "
        "experiment's own size (its chunks and seeds) finds it covers the truth at least 93% of the "
        f"time; a value marked † has no interval: {NO_INTERVAL}. Forgetting follows Chaudhry et al. "
        "(2018): the best score a chunk had before the end minus its final score.",
        "",
        "| arm | n | " + " | ".join(label for _, label in CL_METRICS) + " |",
        "|---|---|" + "---|" * len(CL_METRICS),
    ]
    notes: list[str] = []
    for a in r.arms:
        if not a.summary:
            out.append(f"| {a.arm} | — | " + " | ".join("—" for _ in CL_METRICS) + " |")
            continue
        first = next(iter(a.summary.values()))
        n = design_label(first.n_tasks, first.seeds)
        out.append(f"| {a.arm} | {n} | " + " | ".join(str(a.summary[k]) for k, _ in CL_METRICS) + " |")
        missing = [label for k, label in CL_METRICS if a.summary[k].note.startswith(NO_INTERVAL)]
        if missing:
            notes.append(f"- † {a.arm}: {', '.join(missing)}: {NO_INTERVAL} ({n}).")
        for k, label in CL_METRICS:
            extra = [x for x in a.summary[k].note.split("; ") if x and x != NO_INTERVAL]
            notes += [f"- **{a.arm}**, {label}: {x}." for x in extra]
    out += ["", *notes] if notes else []
    out.append("")

    out += ["## Held-out tasks", ""]
    if not r.heldout:
        out += ["No held-out set in this experiment.", ""]
    else:
        n = len(r.chunks)
        out += [
            f"Zero-shot: {fmt_rate(r.zero_shot_heldout)}",
            "",
            "| arm | " + " | ".join(f"after chunk {i + 1}" for i in range(n)) + " |",
            "|---|" + "---|" * n,
        ]
        for a in r.arms:
            out.append(f"| {a.arm} | " + " | ".join(fmt_rate(x) for x in a.heldout) + " |")
        out.append("")

    out += [
        "## Episodes",
        "",
        "Over every measurement of the final stage (stream and held-out). Steps, tokens and tool "
        "calls count resolved episodes only; means with 95% bootstrap intervals. TUE = median time "
        "of resolved episodes / median time of all.",
        "",
        "| arm | resolve rate | steps to resolve | tokens to resolve | tool calls per resolve | "
        "loop alarms per episode | TUE |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in r.arms:
        e = a.episodes
        if e is None:
            out.append(f"| {a.arm} | — | — | — | — | — | — |")
            continue
        out.append(
            f"| {a.arm} | {fmt_rate(e.resolve_rate)} | {fmt_measure(e.steps_to_resolve)} | "
            f"{fmt_measure(e.tokens_to_resolve)} | {fmt_measure(e.tool_calls_per_resolve)} | "
            f"{fmt_measure(e.loop_alarms_per_episode)} | {_tue(e.tool_use_efficiency)} |"
        )
    out.append("")

    out += [
        "## Base against each arm",
        "",
        "The zero-shot reference against each arm's final stage on the tasks both measured, the task "
        "as the unit: each task's seeds give one per-task rate, and the difference is the mean of the "
        "per-task differences. p is the exact sign-flip test of those differences (two-sided; with one "
        "seed per task it is McNemar's exact test); the 95% interval is a t-interval on them; "
        "better/worse count the tasks on which the arm's rate is higher/lower; detectable is the "
        "smallest increase / decrease this comparison detects with 80% power at alpha 0.05.",
        "",
        "| arm | tasks | n | base | arm | difference [95% CI] | better | worse | p | detectable |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in r.arms:
        for c in a.vs_base:
            out.append(
                f"| {a.arm} | {c.scope} | {c.design} | {c.base_rate:.0%} | {c.arm_rate:.0%} | "
                f"{c.diff:+.0%} [{c.diff_lo:+.0%}, {c.diff_hi:+.0%}] | {c.better} | {c.worse} | {c.p_value:.3g} | "
                f"{fmt_detectable(c)} |"
            )
    verdicts = []
    for a in r.arms:
        for c in a.vs_base:
            if c.scope != "stream":
                continue
            if c.p_value < 0.05:
                verdicts.append(f"- **{a.arm}** differs from the base (p = {c.p_value:.3g}, {c.design}).")
            else:
                detect = (
                    f"; with {c.design} only an increase of about {c.min_detectable:.0%} could be detected"
                    if c.min_detectable is not None
                    else f"; {c.design} are too few to detect any increase"
                )
                verdicts.append(f"- **{a.arm}**: no significant difference from the base (p = {c.p_value:.3g}){detect}.")
    out += ["", *verdicts, ""]

    out += [
        "## Flip table",
        "",
        "Each task, base (zero-shot) against the arm's final stage; k/n over each side's seeds, "
        "compared as rates (fixed: the arm's rate is higher).",
        "",
    ]
    tasks: dict[str, int] = {}
    for a in r.arms:
        for f in a.flips:
            tasks.setdefault(f.task_id, f.chunk)
    if not tasks:
        out += ["Nothing measured yet.", ""]
    else:
        out += [
            "| task | chunk | " + " | ".join(a.arm for a in r.arms) + " |",
            "|---|---|" + "---|" * len(r.arms),
        ]
        flips = {(a.arm, f.task_id): f for a in r.arms for f in a.flips}
        for task, chunk in tasks.items():
            row = []
            for a in r.arms:
                f = flips.get((a.arm, task))
                row.append("" if f is None else f"{f.change} ({f.base_k}/{f.base_n} → {f.arm_k}/{f.arm_n})")
            out.append(f"| `{task}` | {'held-out' if chunk < 0 else chunk + 1} | " + " | ".join(row) + " |")
        out += ["", "| arm | fixed | broken | unchanged |", "|---|---|---|---|"]
        for a in r.arms:
            fixed = sum(f.change == "fixed" for f in a.flips)
            broken = sum(f.change == "broken" for f in a.flips)
            out.append(f"| {a.arm} | {fixed} | {broken} | {len(a.flips) - fixed - broken} |")
        out.append("")

    out += [
        "## Repeat errors and pass@k",
        "",
        "Repeat-error rate: the share of (task, seed) lines that, after a failure, fail again with "
        "the same error signature at a later stage. pass@k treats the seeds as epochs of each task "
        "in the final stage (unbiased estimator, Chen et al. 2021).",
        "",
        "| arm | repeat-error rate | pass@k | tasks |",
        "|---|---|---|---|",
    ]
    for a in r.arms:
        passes = ", ".join(f"pass@{k} {v:.0%}" for k, v in sorted(a.pass_at.items())) or "—"
        out.append(f"| {a.arm} | {fmt_rate(a.repeat_errors)} | {passes} | {a.pass_tasks} |")
    out.append("")

    out += ["## Training curves", ""]
    any_curve = False
    for a in r.arms:
        img = images.get(f"curves:{a.arm}")
        learned = [n for n in a.nights if n.notes or n.curve or n.skipped]
        if not img and not learned:
            continue
        out += [f"### {a.arm}", ""]
        if img:
            any_curve = True
            out += [f"![training curves of {a.arm}]({img})", ""]
        for n in a.nights:
            final = [p for p in n.curve if p.get("val_loss") is not None]
            last = f"; final valid loss {final[-1]['val_loss']:.3f}" if final else ""
            notes = "; ".join(n.notes) if n.notes else (n.skipped or "")
            out.append(f"- seed {n.seed}, night {n.cycle + 1} ({n.seconds:.1f}s){last}: {notes}")
            if n.rules:
                out += [f"    - rule: {rule}" for rule in n.rules]
        out.append("")
    if not any_curve:
        out += ["No adapter was trained in this experiment (no arm has the adapter layer, or no night had data).", ""]

    out += [
        "## Regression gate",
        "",
        "After every night the candidate is compared with the arm as it was, on every task learned "
        "so far (the frozen set): it is adopted unless it is worse by the one-sided exact sign-flip "
        "test, McNemar's with one outcome per task (b = tasks lost, c = tasks gained). A frozen set "
        "too small for any outcome to reach p < alpha is adopted *untested*.",
        "",
        "| arm | seed | night | adopted | frozen n | before | candidate | b | c | p | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    nights = [(a.arm, n) for a in r.arms for n in a.nights]
    for arm_name, n in nights:
        p = "—" if n.p_value is None or (isinstance(n.p_value, float) and math.isnan(n.p_value)) else f"{n.p_value:.3g}"
        adopted = ("yes" if n.testable else "yes (untested)") if n.adopted else "no"
        out.append(
            f"| {arm_name} | {n.seed} | {n.cycle + 1} | {adopted} | {n.n} | "
            f"{_pct(n.base_rate)} | {_pct(n.candidate_rate)} | {n.b} | {n.c} | {p} | {n.reason} |"
        )
    if not nights:
        out.append("| — | | | | | | | | | | no arm learns in this experiment |")
    out.append("")
    return "\n".join(out)


def power_section(power: DesignPower | None) -> list[str]:
    """The design's power figures (`looper experiment power`), as the report's opening."""
    if power is None:
        return ["Nothing to simulate: the experiment has no stream tasks recorded yet.", ""]
    out = [
        f"Simulated from the design alone ({power.sims} experiments per comparison, task success "
        f"probabilities ~ Beta{power.task_prior}), with the test this report uses at alpha {power.alpha}:",
        "",
    ]
    out += [f"- {line}" for line in power_lines(power)]
    out += [
        "",
        "| arm | tasks | n | false-positive rate | detectable with 80% power |",
        "|---|---|---|---|---|",
    ]
    for c in power.comparisons:
        mde = "none" if c.min_detectable is None else f"+{c.min_detectable:.2f}"
        out.append(f"| {c.arm} | {c.scope} | {c.design} | {c.false_positive_rate:.3f} | {mde} |")
    out.append("")
    return out


# --- the same figures as data ------------------------------------------------------------------

#: The metric keys of the JSON report (the names the report's columns use, lower-cased).
JSON_KEYS: dict[str, str] = {
    "acc": "acc",
    "forgetting": "forgetting",
    "forward_transfer": "fwt",
    "backward_transfer": "bwt",
    "aulc": "aulc",
    "cl_plasticity": "cl_p",
    "cl_stability": "cl_s",
    "cl_f_beta": "cl_f1",
}


class CellJSON(BaseModel):
    rate: float
    k: int
    n: int


class MatrixJSON(BaseModel):
    """a[i][j] (chunk j after learning through chunk i) with k resolved of n outcomes; null where
    not measured; and the zero-shot row z[j]."""

    cells: list[list[CellJSON | None]]
    zero_shot: list[CellJSON | None]


class MetricJSON(BaseModel):
    value: float | None
    lo: float | None
    hi: float | None
    n_tasks: int
    seeds: list[int] = Field(default_factory=list)
    note: str = ""


class ArmJSON(BaseModel):
    kind: str
    model: str
    complete: bool
    matrix: MatrixJSON
    metrics: dict[str, MetricJSON]
    heldout: list[TaskRate | None] = Field(default_factory=list, description="held-out rate after each cycle")
    flips: list[Flip] = Field(default_factory=list)
    nights: list[NightResult] = Field(default_factory=list, description="every night's gate verdict")


class ComparisonJSON(Comparison):
    arm_name: str = Field(description="the arm compared with the zero-shot base")


class ReportJSON(BaseModel):
    """`looper report EXP --format json`: what the Markdown report shows, as data."""

    experiment: str
    status: str
    seeds: list[int]
    chunks: list[list[str]]
    heldout: list[str]
    scripted: bool
    arms: dict[str, ArmJSON]
    comparisons: list[ComparisonJSON]
    power: DesignPower | None


def _cell(counts: tuple[int, int] | None) -> CellJSON | None:
    if counts is None or counts[1] == 0:
        return None
    return CellJSON(rate=counts[0] / counts[1], k=counts[0], n=counts[1])


def report_data(results: ExperimentResults) -> ReportJSON:
    """The report's figures as a pydantic model."""
    r = results
    arms: dict[str, ArmJSON] = {}
    comparisons: list[ComparisonJSON] = []
    for a in r.arms:
        metrics = {
            JSON_KEYS[k]: MetricJSON(value=v.value, lo=v.lo, hi=v.hi, n_tasks=v.n_tasks, seeds=v.seeds, note=v.note)
            for k, v in a.summary.items()
        }
        arms[a.arm] = ArmJSON(
            kind=a.kind,
            model=a.model,
            complete=a.complete,
            matrix=MatrixJSON(
                cells=[[_cell(c) for c in row] for row in a.counts],
                zero_shot=[_cell(c) for c in r.zero_shot_counts],
            ),
            metrics=metrics,
            heldout=a.heldout,
            flips=a.flips,
            nights=a.nights,
        )
        comparisons += [ComparisonJSON(**c.model_dump(), arm_name=a.arm) for c in a.vs_base]
    return ReportJSON(
        experiment=r.exp_id,
        status=r.status,
        seeds=r.seeds,
        chunks=r.chunks,
        heldout=r.heldout,
        scripted=r.scripted,
        arms=arms,
        comparisons=comparisons,
        power=r.power,
    )


def report_json(results: ExperimentResults) -> str:
    return report_data(results).model_dump_json(indent=2)


def report_schema() -> dict[str, Any]:
    return ReportJSON.model_json_schema()


def write_report(results: ExperimentResults, out_dir: Path) -> Path:
    """Write DIR/report.md and its PNGs; return the report's path. Blocking (matplotlib)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images: dict[str, str] = {}
    for a in results.arms:
        if any(v is not None for row in a.matrix for v in row):
            name = f"matrix-{_slug(a.arm)}.png"
            plot_matrix(a, out_dir / name)
            images[f"matrix:{a.arm}"] = name
        name = f"curves-{_slug(a.arm)}.png"
        if plot_curves(a, out_dir / name) is not None:
            images[f"curves:{a.arm}"] = name
    path = out_dir / "report.md"
    tmp = out_dir / ".report.md.tmp"
    tmp.write_text(render_markdown(results, images), encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = [
    "JSON_KEYS",
    "SECTIONS",
    "ReportJSON",
    "plot_curves",
    "plot_matrix",
    "power_section",
    "render_markdown",
    "report_data",
    "report_json",
    "report_schema",
    "write_report",
]
