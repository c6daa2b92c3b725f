"""`looper report`: an experiment's results as DIR/report.md with PNG plots beside it.

Sections: the setup; per arm the accuracy matrix as a heatmap; transfer and forgetting with
intervals; held-out success over cycles; episode metrics; base against each arm (exact
McNemar, the paired difference with its interval, the smallest detectable difference); the
flip table task by task; repeat errors and pass@k; every night's training curve; the gate's
verdicts. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from looper_engine.evaluation.results import (
    CL_METRICS,
    ArmResults,
    ExperimentResults,
    MetricValue,
    fmt_measure,
    fmt_rate,
)

SECTIONS: tuple[str, ...] = (
    "Setup",
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


def _num(v: float | None, signed: bool = True) -> str:
    if v is None:
        return "—"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


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

    out += ["## Setup", ""]
    out += [
        f"- base model (zero-shot reference): `{r.model}`",
        f"- seeds (independent learning lines, and epochs for pass@k): {', '.join(map(str, r.seeds))}",
        f"- stream: {sum(len(c) for c in r.chunks)} tasks in {len(r.chunks)} chunks "
        f"({', '.join(str(len(c)) for c in r.chunks)} tasks)",
        f"- held-out: {len(r.heldout)} tasks",
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
        "Point estimates with 95% intervals from a stratified cluster bootstrap over tasks "
        "(2000 resamples); n is the number of (task, seed) measurements in the final stage. "
        "Forgetting follows Chaudhry et al. (2018): the best score a chunk had before the end minus "
        "its final score.",
        "",
        "| arm | n | " + " | ".join(label for _, label in CL_METRICS) + " |",
        "|---|---|" + "---|" * len(CL_METRICS),
    ]
    for a in r.arms:
        if not a.summary:
            out.append(f"| {a.arm} | — | " + " | ".join("—" for _ in CL_METRICS) + " |")
            continue
        n = next(iter(a.summary.values())).n
        out.append(f"| {a.arm} | {n} | " + " | ".join(str(a.summary[k]) for k, _ in CL_METRICS) + " |")
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
        "The zero-shot reference against each arm's final stage on the same (task, seed) pairs: "
        "b = solved only by the base, c = solved only by the arm; exact two-sided McNemar p; the "
        "paired bootstrap interval of the difference; and the smallest difference this n detects "
        "with 80% power at alpha 0.05.",
        "",
        "| arm | tasks | n | base | arm | difference [95% CI] | b | c | McNemar p | detectable |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in r.arms:
        for c in a.vs_base:
            mdd = "—" if c.min_detectable is None else f"±{c.min_detectable:.0%}"
            out.append(
                f"| {a.arm} | {c.scope} | {c.n} | {fmt_rate(c.base)} | {fmt_rate(c.arm)} | "
                f"{c.diff:+.0%} [{c.diff_lo:+.0%}, {c.diff_hi:+.0%}] | {c.b} | {c.c} | {c.p_value:.3g} | {mdd} |"
            )
    verdicts = []
    for a in r.arms:
        for c in a.vs_base:
            if c.scope != "stream":
                continue
            if c.p_value < 0.05:
                verdicts.append(f"- **{a.arm}** differs from the base (p = {c.p_value:.3g}).")
            else:
                detect = (
                    f"; with n = {c.n} only a difference of about {c.min_detectable:.0%} could be detected"
                    if c.min_detectable is not None
                    else f"; n = {c.n} is too small to detect any difference"
                )
                verdicts.append(f"- **{a.arm}**: no significant difference from the base (p = {c.p_value:.3g}){detect}.")
    out += ["", *verdicts, ""]

    out += ["## Flip table", "", "Each task, base (zero-shot) against the arm's final stage; k/n over seeds.", ""]
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
                row.append("" if f is None else f"{f.change} ({f.base_k}/{f.n} → {f.arm_k}/{f.n})")
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
        "so far (the frozen set): it is adopted unless it is worse by the one-sided exact McNemar "
        "test (b = tasks lost, c = tasks gained).",
        "",
        "| arm | seed | night | adopted | frozen n | before | candidate | b | c | p | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    nights = [(a.arm, n) for a in r.arms for n in a.nights]
    for arm_name, n in nights:
        p = "—" if n.p_value is None or (isinstance(n.p_value, float) and math.isnan(n.p_value)) else f"{n.p_value:.3g}"
        out.append(
            f"| {arm_name} | {n.seed} | {n.cycle + 1} | {'yes' if n.adopted else 'no'} | {n.n} | "
            f"{_pct(n.base_rate)} | {_pct(n.candidate_rate)} | {n.b} | {n.c} | {p} | {n.reason} |"
        )
    if not nights:
        out.append("| — | | | | | | | | | | no arm learns in this experiment |")
    out.append("")
    return "\n".join(out)


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


__all__ = ["SECTIONS", "plot_curves", "plot_matrix", "render_markdown", "write_report"]
