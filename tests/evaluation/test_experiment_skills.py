"""The knowledge layers: rules and reflections from trajectories (asked of a real model over
the Ollama protocol, or counted deterministically), and retrieval of similar past episodes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from looper_engine.evaluation.skills import (
    CallDigest,
    EpisodeDigest,
    MemoryEntry,
    deterministic_reflection,
    deterministic_rules,
    extract_rules,
    memory_section,
    parse_bullets,
    remember,
    retrieve,
    rules_section,
    uses_llm,
)
from looper_engine.models.registry import create_backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from model_servers import FakeModel, FakeOllama  # noqa: E402


def digest(task: str, family: str, resolved: bool, calls: list[CallDigest], reason: str = "", sig: str = "") -> EpisodeDigest:
    return EpisodeDigest(
        episode_id=f"ep-{task}",
        task_id=f"{family}/{task}",
        family=family,
        statement=f"The {task} report is wrong.",
        resolved=resolved,
        status="resolved" if resolved else "failed",
        reason=reason,
        steps=len(calls),
        error_signature=sig,
        calls=calls,
    )


SOLVED = digest("a", "off_by_one", True, [
    CallDigest(tool="read", target="calc.py", ok=True),
    CallDigest(tool="edit", target="calc.py", ok=True),
    CallDigest(tool="bash", target="python -m pytest -q", ok=True, exit_code=0),
    CallDigest(tool="done"),
], reason="done")
FAILED = digest("b", "off_by_one", False, [
    CallDigest(tool="read", target="calc.py", ok=True),
    CallDigest(tool="read", target="calc.py", ok=True, alarm="repeated_read"),
    CallDigest(tool="read", target="calc.py", ok=True, alarm="repeated_read"),
], reason="step limit (3) reached", sig="AssertionError: assert 3 == 4")
NOISE = digest("c", "numeric", False, [CallDigest(tool="(malformed)", malformed=True)] * 2, reason="step limit (2) reached")


def test_call_lines_are_compact_and_show_loops() -> None:
    assert SOLVED.call_line() == "read calc.py; edit calc.py; bash python -m pytest -q (exit 0); done"
    assert FAILED.call_line() == "read calc.py; read calc.py [loop] x2"


def test_deterministic_rules_count_what_the_trajectories_did() -> None:
    rules = deterministic_rules([SOLVED, FAILED, NOISE], max_rules=10)
    text = "\n".join(rules)
    assert "2 of 9 earlier replies held no valid tool call" in text
    assert "Do not repeat `read calc.py`: it looped 2 times" in text
    assert "In off_by_one tasks the fix was an edit to calc.py" in text
    assert "When the tests fail with `AssertionError: assert 3 == 4`, the fix went into calc.py." in text
    assert "2 earlier episodes ran out of steps without changing a file" in text
    assert deterministic_rules([SOLVED, FAILED, NOISE], max_rules=2) == rules[:2]
    assert deterministic_rules([SOLVED, FAILED, NOISE], 10) == rules  # same episodes, same rules


def test_reflections_name_the_failure_mode() -> None:
    assert deterministic_reflection(SOLVED) == ""
    assert "Repeated the same calls" in deterministic_reflection(FAILED)
    assert "No reply held a valid tool call" in deterministic_reflection(NOISE)


def test_retrieval_puts_the_most_similar_statement_first() -> None:
    entries = [
        MemoryEntry(task_id="x/1", family="x", statement="The invoice total ignores the discount.", resolved=True,
                    steps=4, calls="read a.py; edit a.py; done"),
        MemoryEntry(task_id="y/1", family="y", statement="Parsing a port number crashes on spaces.", resolved=False,
                    steps=3, calls="read p.py", reflection="Never edited a file."),
    ]
    got = retrieve(entries, "Parsing the port from the config crashes", k=1)
    assert [e.task_id for e in got] == ["y/1"]
    section = memory_section(got)
    assert section.startswith("Notes from your earlier episodes") and "Reflection: Never edited a file." in section
    assert len(retrieve(entries, "anything", k=5)) == 2
    assert rules_section([]) == "" and rules_section(["Be brief."]).endswith("- Be brief.")


def test_bullets_are_parsed_from_a_reply() -> None:
    text = "Here are the rules:\n- Read first.\n* Run tests once.\n2) Finish with done.\n- Read first.\nThanks"
    assert parse_bullets(text, 10) == ["Read first.", "Run tests once.", "Finish with done."]
    assert parse_bullets(text, 1) == ["Read first."]


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    reply = "- Read the module the report names before editing.\n- Run the tests once, then finish."
    with FakeOllama({"coder:1b": FakeModel(reply=reply)}) as server:
        yield server


async def test_a_real_model_is_asked_for_rules_with_the_fixed_prompt(ollama: FakeOllama) -> None:
    backend = create_backend("ollama:coder:1b", host=ollama.url)
    assert uses_llm(backend, "auto") and not uses_llm(backend, "deterministic")
    rules, how = await extract_rules([SOLVED, FAILED], ["Old rule."], backend=backend, extractor="auto", max_rules=5)
    assert how == "llm"
    assert rules == ["Read the module the report names before editing.", "Run the tests once, then finish."]
    (body,) = ollama.bodies("/api/chat")
    assert body["options"]["temperature"] == 0.0
    system, user = body["messages"]
    assert "at most 5" in system["content"] and "- Old rule." in user["content"]
    assert "off_by_one/b: The b report is wrong." in user["content"]
    await backend.aclose()


async def test_a_reply_without_bullets_falls_back_to_counting(ollama: FakeOllama) -> None:
    ollama.models["coder:1b"].reply = "I am not sure what to say."
    backend = create_backend("ollama:coder:1b", host=ollama.url)
    rules, how = await extract_rules([SOLVED, FAILED], [], backend=backend, extractor="auto", max_rules=5)
    assert how.startswith("deterministic") and rules == deterministic_rules([SOLVED, FAILED], 5)
    entry = await remember(FAILED, backend=backend, extractor="auto")
    assert entry.reflection == "I am not sure what to say."
    assert entry.calls == FAILED.call_line() and not entry.resolved
    await backend.aclose()


async def test_scripted_policies_never_get_asked() -> None:
    backend = create_backend("scripted:oracle")
    assert not uses_llm(backend, "llm")
    entry = await remember(NOISE, backend=backend, extractor="llm")
    assert entry.reflection.startswith("No reply held a valid tool call")
