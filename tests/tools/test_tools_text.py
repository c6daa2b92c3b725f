"""Fence stripping and output capping, the helpers every tool body and output goes through."""

from __future__ import annotations

import re

from looper_engine.tools.text import cap_output, strip_fences


def test_strip_fences_removes_a_fence_wrapping_the_whole_body() -> None:
    assert strip_fences("```python\ndef f():\n    return 1\n```") == "def f():\n    return 1\n"
    assert strip_fences("\n```\nx = 1\n```\n") == "x = 1\n"
    assert strip_fences("~~~py\nx\n~~~") == "x\n"
    assert strip_fences("```\n```") == ""


def test_strip_fences_leaves_partial_or_absent_fences_alone() -> None:
    body = "# Title\n\n```python\nx = 1\n```\n"
    assert strip_fences(body) == body
    assert strip_fences("x = 1\n") == "x = 1\n"
    assert strip_fences("```python\nunterminated\n") == "```python\nunterminated\n"
    assert strip_fences("````md\n```py\nx\n```\n````") == "```py\nx\n```\n"


def test_cap_output_keeps_short_text_whole() -> None:
    assert cap_output("hello\nworld", 200) == ("hello\nworld", False)


def test_cap_output_keeps_head_and_tail_and_counts_the_gap() -> None:
    text = "".join(f"line {i:04d}\n" for i in range(1000))
    capped, truncated = cap_output(text, 500)
    assert truncated
    assert capped.startswith("line 0000\n")
    assert capped.rstrip().endswith("line 0999")
    marker = re.search(r"\[\.\.\. (\d+) characters elided \.\.\.\]", capped)
    assert marker is not None
    head, tail = capped.split(f"\n{marker.group(0)}\n")
    assert len(head) + len(tail) + int(marker.group(1)) == len(text)
    assert len(capped) <= 500 + len(marker.group(0)) + 2


def test_cap_output_reports_middle_dropped_earlier() -> None:
    capped, truncated = cap_output("head\ntail", 200, hidden=5000)
    assert truncated
    assert "[... 5000 characters elided ...]" in capped
    assert capped.startswith("head") and capped.endswith("tail")
