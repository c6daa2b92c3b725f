"""The two knowledge layers an arm can learn in without touching the weights.

**Prompt skills** (after ExpeL): after every chunk, rules are extracted from the agent's own
trajectories and put into the system prompt for the next cycle.

**Memory** (after Reflexion, plus retrieval): every episode of the day is remembered as its
task, its outcome and its call sequence in compact form; a failed one also gets a reflection
(what went wrong, what to do next time). For each new task the k past episodes whose task
statements are most similar (rapidfuzz token-set ratio) are shown in the system prompt.

Both have two extractors:

- **llm**: the arm's own model is asked, with a fixed prompt (RULES_PROMPT, REFLECT_PROMPT),
  for a bullet list of rules or a short reflection. Output that holds no bullet is not an
  error: the deterministic extractor's result is used instead and a note says so.
- **deterministic**: for scripted policies and the tiny random model, whose output says
  nothing. Rules come from counting what the trajectories did: per task family which files
  the resolved episodes edited, which test-failure signatures an edit in which file fixed,
  which calls looped, how many replies held no tool call, how often <done> came while the
  tests still failed, how often the step limit ended an episode that never edited a file. A
  reflection names the episode's failure mode and the matching advice.

Both are deterministic given the same episodes (the LLM at temperature 0 with a seed), so a
resumed experiment rebuilds the same prompts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Literal

from pydantic import BaseModel, Field
from rapidfuzz import fuzz

from looper_engine.chat import Message
from looper_engine.models.base import Backend, GenOptions
from looper_engine.store.db import Store

Extractor = Literal["auto", "llm", "deterministic"]


class CallDigest(BaseModel):
    tool: str
    target: str = ""
    ok: bool | None = None
    exit_code: int | None = None
    alarm: str | None = None
    malformed: bool = False


class EpisodeDigest(BaseModel):
    """What the knowledge layers read of one stored episode."""

    episode_id: str
    task_id: str
    family: str
    statement: str = ""
    resolved: bool
    status: str
    reason: str = ""
    steps: int = 0
    error_signature: str = ""
    calls: list[CallDigest] = Field(default_factory=list)

    def edited_files(self) -> list[str]:
        return list(dict.fromkeys(c.target for c in self.calls if c.tool in ("edit", "write") and c.ok))

    def call_line(self, limit: int = 300) -> str:
        """The call sequence, compact: `read a.py; edit a.py; bash python -m pytest -q (exit 1); done`."""
        parts = []
        for c in self.calls:
            if c.malformed:
                parts.append("(no valid tool call)")
                continue
            text = "done" if c.tool == "done" else f"{c.tool} {c.target}".strip()
            if c.tool == "bash" and c.exit_code is not None:
                text += f" (exit {c.exit_code})"
            elif c.ok is False:
                text += " (failed)"
            if c.alarm:
                text += " [loop]"
            parts.append(text)
        # Runs of the same item are one item with a count: a loop reads as a loop.
        squeezed: list[str] = []
        counts: list[int] = []
        for p in parts:
            if squeezed and squeezed[-1] == p:
                counts[-1] += 1
            else:
                squeezed.append(p)
                counts.append(1)
        line = "; ".join(p if n == 1 else f"{p} x{n}" for p, n in zip(squeezed, counts, strict=True))
        return line if len(line) <= limit else line[: limit - 3] + "..."


async def digest_episode(store: Store, episode_id: str, statement: str = "") -> EpisodeDigest:
    ep = await store.require_episode(episode_id)
    score = await store.score(episode_id)
    calls = [
        CallDigest(
            tool=r.tool or "(malformed)",
            target=r.target or "",
            ok=r.ok,
            exit_code=r.exit_code,
            alarm=r.alarm,
            malformed=r.problem is not None,
        )
        for r in await store.steps(episode_id)
    ]
    return EpisodeDigest(
        episode_id=ep.id,
        task_id=ep.task_id,
        family=ep.family,
        statement=statement,
        resolved=ep.resolved,
        status=ep.status,
        reason=ep.reason,
        steps=ep.steps,
        error_signature=(score or {}).get("error_signature", "") or "",
        calls=calls,
    )


def uses_llm(backend: Backend, extractor: Extractor) -> bool:
    """Whether rules and reflections are asked of the model: only a real model says anything."""
    if backend.scripted:
        return False  # a scripted policy cannot answer a question
    if extractor != "auto":
        return extractor == "llm"
    return not getattr(backend, "tiny", False)


async def ask(backend: Backend, system: str, user: str, *, max_tokens: int = 512, seed: int = 0) -> str:
    """One greedy completion, collected."""
    stream = backend.stream(
        [Message(role="system", content=system), Message(role="user", content=user)],
        GenOptions(temperature=0.0, max_tokens=max_tokens, seed=seed),
    )
    parts = [delta async for delta in stream]
    return "".join(parts)


def _first_line(text: str, limit: int = 160) -> str:
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --- prompt skills -------------------------------------------------------------------------

RULES_PROMPT = """\
You review a coding agent's recent episodes in one code repository. Each episode lists the \
task, whether the tests passed at the end, and the tool calls the agent made. Write the \
lessons that will help the agent on the next tasks in this repository: at most {max_rules} \
short, general rules, one per line, each line starting with "- ". Keep the current rules \
that are still right, drop the wrong ones. Reply with the bullet list only."""


def parse_bullets(text: str, max_items: int) -> list[str]:
    """The items of a bullet or numbered list, cleaned, without duplicates."""
    import re

    out: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.*\S)\s*$", line)
        if not m:
            continue
        item = " ".join(m.group(1).split())
        if len(item) > 240:
            item = item[:237] + "..."
        if item and item not in out:
            out.append(item)
        if len(out) >= max_items:
            break
    return out


def _episodes_text(digests: list[EpisodeDigest], limit: int = 24) -> str:
    lines = []
    for d in digests[-limit:]:
        outcome = "tests pass" if d.resolved else f"tests fail ({d.reason or d.status})"
        lines.append(f"* {d.task_id}: {_first_line(d.statement)}\n  {outcome}; calls: {d.call_line()}")
    return "\n".join(lines)


def deterministic_rules(digests: list[EpisodeDigest], max_rules: int) -> list[str]:
    """Rules counted from the trajectories (see the module docstring). Same episodes, same rules."""
    rules: list[str] = []
    if not digests:
        return rules
    malformed = sum(1 for d in digests for c in d.calls if c.malformed)
    replies = sum(len(d.calls) for d in digests) or 1
    if malformed:
        rules.append(
            f"Write exactly one complete tool tag in every reply, e.g. <read>PATH</read>: "
            f"{malformed} of {replies} earlier replies held no valid tool call."
        )
    done_failing = sum(1 for d in digests if not d.resolved and d.reason.startswith("done"))
    if done_failing:
        rules.append(
            "Run `python -m pytest -q` after the edit and reply <done> only once it passes: "
            f"{done_failing} earlier episodes finished while the tests still failed."
        )
    no_edit_limit = sum(1 for d in digests if "step limit" in d.reason and not d.edited_files())
    if no_edit_limit:
        rules.append(
            "Edit the suspect code within the first few steps: "
            f"{no_edit_limit} earlier episodes ran out of steps without changing a file."
        )
    looped: Counter[str] = Counter()
    for d in digests:
        for c in d.calls:
            if c.alarm and not c.malformed:
                looped[f"{c.tool} {c.target}".strip()] += 1
    for call, n in sorted(looped.items(), key=lambda kv: (-kv[1], kv[0]))[:3]:
        rules.append(f"Do not repeat `{call}`: it looped {n} times before without progress; edit or finish instead.")
    by_family: dict[str, Counter[str]] = defaultdict(Counter)
    for d in digests:
        if d.resolved:
            for path in d.edited_files():
                by_family[d.family][path] += 1
    for family in sorted(by_family):
        files = [p for p, _ in sorted(by_family[family].items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
        rules.append(
            f"In {family} tasks the fix was an edit to {', '.join(files)}: read the code the report names, "
            "make the smallest edit, run the tests once, then finish."
        )
    fixes: dict[str, Counter[str]] = defaultdict(Counter)
    fixed_by_family = {fam: set(c) for fam, c in by_family.items()}
    for d in digests:
        if not d.resolved and d.error_signature and d.family in fixed_by_family:
            for path in sorted(fixed_by_family[d.family]):
                fixes[d.error_signature][path] += 1
    for sig in sorted(fixes, key=lambda s: (-sum(fixes[s].values()), s))[:3]:
        paths = ", ".join(sorted(fixes[sig]))
        rules.append(f"When the tests fail with `{sig[:80]}`, the fix went into {paths}.")
    return rules[:max_rules]


async def extract_rules(
    digests: list[EpisodeDigest],
    previous: list[str],
    *,
    backend: Backend,
    extractor: Extractor,
    max_rules: int,
    seed: int = 0,
) -> tuple[list[str], str]:
    """The refreshed rule set and how it was made ("llm", "deterministic", or a fallback note)."""
    if not uses_llm(backend, extractor):
        return deterministic_rules(digests, max_rules), "deterministic"
    current = "\n".join(f"- {r}" for r in previous) or "(none yet)"
    user = f"Current rules:\n{current}\n\nRecent episodes:\n{_episodes_text(digests)}"
    text = await ask(backend, RULES_PROMPT.format(max_rules=max_rules), user, seed=seed)
    rules = parse_bullets(text, max_rules)
    if not rules:
        return deterministic_rules(digests, max_rules), "deterministic (the model's reply held no bullet list)"
    return rules, "llm"


def rules_section(rules: list[str]) -> str:
    if not rules:
        return ""
    return "Lessons from your earlier tasks in this repository:\n" + "\n".join(f"- {r}" for r in rules)


# --- memory --------------------------------------------------------------------------------

REFLECT_PROMPT = """\
A coding agent failed a task: the tests still failed when the episode ended. From the task \
and the agent's tool calls, say in one to three sentences what went wrong and what the agent \
should do differently on a similar task. Reply with those sentences only."""


class MemoryEntry(BaseModel):
    task_id: str
    family: str
    statement: str
    resolved: bool
    steps: int
    calls: str
    reflection: str = ""


def deterministic_reflection(d: EpisodeDigest) -> str:
    if d.resolved:
        return ""
    if d.calls and all(c.malformed for c in d.calls):
        return "No reply held a valid tool call. Next time: write one complete tool tag per reply."
    if d.reason.startswith("done"):
        sig = f" (`{d.error_signature[:80]}`)" if d.error_signature else ""
        return f"Finished while the tests still failed{sig}. Next time: run the tests and fix what they report first."
    if any(c.alarm for c in d.calls):
        return "Repeated the same calls without progress. Next time: edit the code the report names instead."
    if not d.edited_files():
        return "Never edited a file before the step limit. Next time: read the named code, then edit it early."
    sig = f" with `{d.error_signature[:80]}`" if d.error_signature else ""
    return f"Edited {', '.join(d.edited_files())} but the tests still failed{sig}. Next time: re-read the failing test."


async def remember(
    d: EpisodeDigest, *, backend: Backend, extractor: Extractor, seed: int = 0
) -> MemoryEntry:
    reflection = ""
    if not d.resolved:
        if uses_llm(backend, extractor):
            user = f"Task: {d.statement.strip()[:1500]}\n\nTool calls: {d.call_line(600)}\nEnded: {d.reason or d.status}"
            text = " ".join((await ask(backend, REFLECT_PROMPT, user, max_tokens=200, seed=seed)).split())
            reflection = text[:400] if text else deterministic_reflection(d)
        else:
            reflection = deterministic_reflection(d)
    return MemoryEntry(
        task_id=d.task_id,
        family=d.family,
        statement=_first_line(d.statement),
        resolved=d.resolved,
        steps=d.steps,
        calls=d.call_line(),
        reflection=reflection,
    )


def retrieve(entries: list[MemoryEntry], statement: str, k: int) -> list[MemoryEntry]:
    """The k entries whose statements are most like `statement`; ties keep the older first."""
    query = _first_line(statement, 400)
    scored = [(fuzz.token_set_ratio(query, e.statement), -i, e) for i, e in enumerate(entries)]
    scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
    return [e for _, _, e in scored[:k]]


def memory_section(entries: list[MemoryEntry]) -> str:
    if not entries:
        return ""
    lines = ["Notes from your earlier episodes in this repository (most similar task first):"]
    for n, e in enumerate(entries, 1):
        outcome = f"resolved in {e.steps} steps" if e.resolved else "not resolved"
        lines.append(f"{n}. {e.task_id}: {e.statement}\n   {outcome}: {e.calls}")
        if e.reflection:
            lines.append(f"   Reflection: {e.reflection}")
    return "\n".join(lines)


__all__ = [
    "REFLECT_PROMPT",
    "RULES_PROMPT",
    "CallDigest",
    "EpisodeDigest",
    "MemoryEntry",
    "ask",
    "deterministic_reflection",
    "deterministic_rules",
    "digest_episode",
    "extract_rules",
    "memory_section",
    "parse_bullets",
    "remember",
    "retrieve",
    "rules_section",
    "uses_llm",
]
