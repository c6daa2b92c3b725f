"""The streaming parser: every case, whole and chunked, with identical outcomes."""

from __future__ import annotations

import pytest
from parser_harness import parse_every_way, run_chunks

from looper_engine.protocol import FORMS
from looper_engine.protocol.calls import BashCall, DoneCall, EditCall, ReadCall, WriteCall
from looper_engine.protocol.parser import CallComplete, Problem, StreamParser, TagOpened, parse_response

# --- the five forms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "call"),
    [
        ("<bash>pytest -q tests/test_x.py</bash>", BashCall(command="pytest -q tests/test_x.py")),
        ("<read>src/pkg/mod.py</read>", ReadCall(path="src/pkg/mod.py")),
        ("<read>src/pkg/mod.py:100-200</read>", ReadCall(path="src/pkg/mod.py", start=100, end=200)),
        ("<read> src/pkg/mod.py : 7 - 9 </read>", ReadCall(path="src/pkg/mod.py", start=7, end=9)),
        ("<read>a.py:40-</read>", ReadCall(path="a.py", start=40, end=None)),
        ("<read>a.py:12</read>", ReadCall(path="a.py", start=12, end=12)),
        ("<read>`a.py`</read>", ReadCall(path="a.py")),
        ("<read path='a.py'/>", ReadCall(path="a.py")),
        (
            '<write path="src/new.py">\nx = 1\ny = 2\n</write>',
            WriteCall(path="src/new.py", content="x = 1\ny = 2"),
        ),
        ("<write path='src/new.py'>x = 1</write>", WriteCall(path="src/new.py", content="x = 1")),
        ("<write path=src/new.py>x</write>", WriteCall(path="src/new.py", content="x")),
        ('<write\n  path = "a b.py"\n>x</write>', WriteCall(path="a b.py", content="x")),
        ('<write path="e.py"></write>', WriteCall(path="e.py", content="")),
        (
            '<edit path="m.py"><old>x = 1</old><new>x = 2</new></edit>',
            EditCall(path="m.py", old="x = 1", new="x = 2"),
        ),
        (
            '<edit path="m.py">\n<old>\n    x = 1\n</old>\n<new>\n    x = 2\n    y = 3\n</new>\n</edit>',
            EditCall(path="m.py", old="    x = 1", new="    x = 2\n    y = 3"),
        ),
        ('<edit path="m.py"><new>b</new><old>a</old></edit>', EditCall(path="m.py", old="a", new="b")),
        ("<done>fixed the off-by-one in slice()</done>", DoneCall(summary="fixed the off-by-one in slice()")),
        ("<done></done>", DoneCall(summary="")),
        ("<done/>", DoneCall(summary="")),
    ],
)
def test_each_form_parses_to_its_call(text: str, call: object) -> None:
    result = parse_every_way(text)
    assert result.call == call
    assert result.notes == []
    assert result.extra_calls == 0


def test_every_example_in_forms_parses() -> None:
    # The system prompt shows FORMS; each example in it must be a valid call.
    examples = [
        "<bash>pytest -q tests/test_x.py</bash>",
        "<read>src/pkg/mod.py</read>",
        "<read>src/pkg/mod.py:100-200</read>",
        '<write path="src/pkg/new.py">\n...the whole file...\n</write>',
        '<edit path="src/pkg/mod.py"><old>exact text to replace</old><new>its replacement</new></edit>',
        "<done>one-line summary</done>",
    ]
    for example in examples:
        assert example in FORMS
        assert parse_response(example).call is not None, example
    whole = parse_response(FORMS)
    assert whole.call == BashCall(command="pytest -q tests/test_x.py")
    assert whole.extra_calls == 5


# --- prose, several calls -----------------------------------------------------------------


def test_prose_around_a_call_is_kept() -> None:
    text = "The test fails on empty input.\nLet me run it:\n<bash>pytest -q</bash>\nThat should show it."
    result = parse_every_way(text)
    assert result.call == BashCall(command="pytest -q")
    assert result.prose == "The test fails on empty input.\nLet me run it:\n\nThat should show it."
    assert result.opened_tools == ["bash"]


def test_only_the_first_call_runs_and_the_rest_are_counted() -> None:
    text = "<read>a.py</read> then <bash>pytest</bash> and <done>ok</done>"
    result = parse_every_way(text)
    assert result.call == ReadCall(path="a.py")
    assert result.extra_calls == 2
    assert result.opened_tools == ["read", "bash", "done"]
    assert len(result.notes) == 1
    assert "first tool call ran" in result.notes[0] and "one tool call per turn" in result.notes[0]


def test_calls_after_the_first_are_reported_as_not_running() -> None:
    _, events = run_chunks(["<bash>ls</bash><bash>pwd</bash>"])
    complete = [e for e in events if e["kind"] == "call_complete"]
    assert [(e["call"]["command"], e["runs"]) for e in complete] == [("ls", True), ("pwd", False)]


def test_problems_of_calls_after_the_first_are_not_noted() -> None:
    result = parse_every_way("<bash>ls</bash><read>a.py:9-1</read><bash></bash><edit>")
    assert result.call == BashCall(command="ls")
    assert result.extra_calls == 2
    assert len(result.notes) == 1 and "2 calls after it were ignored" in result.notes[0]


def test_a_malformed_call_before_a_good_one_is_noted_and_the_good_one_runs() -> None:
    result = parse_every_way("<read>a.py:x-y</read>\n<read>a.py</read>")
    assert result.call == ReadCall(path="a.py")
    assert result.extra_calls == 0
    assert len(result.notes) == 1 and "'x-y'" in result.notes[0]


# --- nothing, unknown tags, ordinary '<' ---------------------------------------------------


def test_no_tag_at_all_shows_the_forms() -> None:
    result = parse_every_way("I think the bug is in the loop.")
    assert result.call is None
    assert len(result.notes) == 1
    note = result.notes[0]
    assert note.startswith(
        "No tool call found. Reply with exactly one tool call, e.g. <bash>pytest -q</bash>"
    )
    assert FORMS in note
    assert result.prose == "I think the bug is in the loop."


def test_empty_output_gets_the_no_call_note() -> None:
    result = parse_every_way("")
    assert result.call is None and result.notes[0].startswith("No tool call found")


@pytest.mark.parametrize("name", ["python", "tool_call", "execute"])
def test_unknown_tool_like_tags_list_the_real_tools(name: str) -> None:
    result = parse_every_way(f"Running it.\n<{name}>print(1)</{name}>")
    assert result.call is None
    assert len(result.notes) == 1
    assert result.notes[0].startswith(f"<{name}> is not a tool")
    assert FORMS in result.notes[0]


@pytest.mark.parametrize(
    "text",
    [
        "if a < b and b > c then swap",
        "a List<int> is not a Map<String, Integer>",
        "x<y>z and vector<vector<int>>",
        "use << for shifts and <- for assignment in R",
        "<3 and 1<2",
    ],
)
def test_ordinary_angle_brackets_are_quiet(text: str) -> None:
    result = parse_every_way(text)
    assert result.prose == text
    assert len(result.notes) == 1 and result.notes[0].startswith("No tool call found")
    # With a real call beside them they cost nothing at all.
    with_call = parse_every_way(text + "\n<bash>ls</bash>")
    assert with_call.call == BashCall(command="ls") and with_call.notes == []


def test_unknown_tags_beside_a_call_earn_no_note() -> None:
    result = parse_every_way("<tool_call>\n<bash>ls</bash>\n</tool_call>")
    assert result.call == BashCall(command="ls")
    assert result.notes == []
    assert result.prose == "<tool_call>\n\n</tool_call>"


def test_tag_names_are_case_sensitive() -> None:
    result = parse_every_way("<Bash>ls</Bash>")
    assert result.call is None
    assert result.opened_tools == []
    assert result.notes == [
        "<Bash> is not a tool: tag names are lowercase. Use <bash>pytest -q tests/test_x.py</bash>"
    ]


def test_a_closing_tag_without_an_opening_one_is_named() -> None:
    result = parse_every_way("pytest -q</bash>")
    assert result.call is None
    assert result.notes[0].startswith("Found </bash> with no <bash> before it.")


def test_a_tool_tag_quoted_as_inline_code_is_a_mention() -> None:
    result = parse_every_way("I will use `<read>` first.\n<read>a.py</read>")
    assert result.call == ReadCall(path="a.py")
    assert result.opened_tools == ["read"]
    assert result.prose == "I will use `<read>` first.\n"


def test_a_call_wrapped_in_inline_code_still_counts() -> None:
    assert parse_every_way("`<bash>ls</bash>`").call == BashCall(command="ls")


def test_a_tool_tag_glued_to_a_word_still_counts() -> None:
    assert parse_every_way("Run it:<bash>ls</bash>").call == BashCall(command="ls")
    assert parse_every_way("Run it<bash>ls</bash>").call == BashCall(command="ls")


def test_a_call_inside_a_markdown_fence_counts() -> None:
    result = parse_every_way("```xml\n<bash>pytest -q</bash>\n```")
    assert result.call == BashCall(command="pytest -q")


def test_tool_tags_inside_think_are_reasoning() -> None:
    text = "<think>maybe <bash>rm -rf build</bash>, no</think>\n<done>nothing to do</done>"
    result = parse_every_way(text)
    assert result.call == DoneCall(summary="nothing to do")
    assert result.opened_tools == ["done"]
    assert result.prose == "<think>maybe <bash>rm -rf build</bash>, no</think>\n"


def test_unclosed_think_is_noted() -> None:
    result = parse_every_way("<think>I should <bash>ls</bash>")
    assert result.call is None
    assert len(result.notes) == 1 and "<think> was not closed" in result.notes[0]


# --- bodies are literal -------------------------------------------------------------------


def test_nested_tags_in_bash_are_part_of_the_command() -> None:
    result = parse_every_way("<bash><read>x</read></bash>")
    assert result.call == BashCall(command="<read>x</read>")
    assert result.opened_tools == ["bash"]


def test_write_keeps_markup_and_angle_brackets_verbatim() -> None:
    content = "<html>\n  <bash>not a call</bash> a < b\n  <edit path='x'>\n</html>"
    result = parse_every_way(f'<write path="index.html">\n{content}\n</write>')
    assert result.call == WriteCall(path="index.html", content=content)


def test_edit_parts_may_quote_any_other_tag() -> None:
    text = '<edit path="p.py"><old>s = "</edit>"</old><new>s = "<old></new_tag>"</new></edit>'
    result = parse_every_way(text)
    assert result.call == EditCall(path="p.py", old='s = "</edit>"', new='s = "<old></new_tag>"')


def test_text_between_edit_parts_is_ignored() -> None:
    text = '<edit path="p.py">\nreplace:\n<old>a</old>\nwith:\n<new>b</new>\n</edit>'
    assert parse_every_way(text).call == EditCall(path="p.py", old="a", new="b")


def test_only_one_layout_newline_is_removed_at_each_end() -> None:
    text = '<write path="a.txt">\n\nbody\n\n</write>'
    assert parse_every_way(text).call == WriteCall(path="a.txt", content="\nbody\n")


def test_whitespace_in_write_content_is_exact() -> None:
    content = "  indented\ttab  \n\n  \ntrailing spaces   "
    result = parse_every_way(f'<write path="w.txt">{content}</write>')
    assert result.call == WriteCall(path="w.txt", content=content)


# --- fences --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "call"),
    [
        (
            '<write path="a.py">\n```python\ndef f():\n    return 1\n```\n</write>',
            WriteCall(path="a.py", content="def f():\n    return 1"),
        ),
        ("<bash>\n```bash\npytest -q\n```\n</bash>", BashCall(command="pytest -q")),
        ("<bash>```\nls\n```</bash>", BashCall(command="ls")),
        (
            '<edit path="a.py"><old>\n```\nx = 1\n```\n</old><new>\n```python\nx = 2\n```\n</new></edit>',
            EditCall(path="a.py", old="x = 1", new="x = 2"),
        ),
        ('<write path="e.py">\n```\n```\n</write>', WriteCall(path="e.py", content="")),
        ('<write path="t.md">\n~~~\nx\n~~~\n</write>', WriteCall(path="t.md", content="x")),
    ],
)
def test_a_fence_around_a_whole_body_is_stripped(text: str, call: object) -> None:
    result = parse_every_way(text)
    assert result.call == call
    assert result.notes == []


def test_fences_are_kept_when_stripping_is_off() -> None:
    text = '<write path="a.py">\n```python\nx = 1\n```\n</write>'
    result = parse_every_way(text, strip_fences=False)
    assert result.call == WriteCall(path="a.py", content="```python\nx = 1\n```")


def test_a_fence_inside_the_content_is_content() -> None:
    content = "# Title\n\n```python\nx = 1\n```\n\nMore text."
    result = parse_every_way(f'<write path="README.md">\n{content}\n</write>')
    assert result.call == WriteCall(path="README.md", content=content)


def test_mismatched_fences_are_left_alone() -> None:
    content = "```python\nx = 1\n````"
    assert parse_every_way(f'<write path="a">\n{content}\n</write>').call == WriteCall(
        path="a", content=content
    )


# --- line endings --------------------------------------------------------------------------


def test_crlf_becomes_lf_even_when_split_across_chunks() -> None:
    text = 'Plan:\r\n<write path="a.py">\r\nx = 1\r\ny = 2\r\n</write>'
    expected = WriteCall(path="a.py", content="x = 1\ny = 2")
    assert parse_every_way(text).call == expected
    result, _ = run_chunks(["Plan:\r", '\n<write path="a.py">\r', "\nx = 1\r", "\ny = 2\r", "\n</write>"])
    assert result.call == expected
    assert result.prose == "Plan:\n"


def test_a_lone_carriage_return_is_kept() -> None:
    assert parse_every_way("<bash>printf 'a\rb'</bash>").call == BashCall(command="printf 'a\rb'")
    result, _ = run_chunks(["<bash>echo\r", "</bash>"])
    assert result.call == BashCall(command="echo\r")


# --- malformed calls -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "opens", "expected_note_parts"),
    [
        (
            '<edit path="a.py"><old>x</old><new>y</new>',
            "edit",
            ["Your <edit> was not closed; end it with </edit>.", '<edit path="src/pkg/mod.py"><old>'],
        ),
        (
            '<edit path="a.py"><old>x',
            "edit",
            ["Your <edit> was not closed; end the <old> with </old> and the edit with </edit>."],
        ),
        ("<bash>pytest -q", "bash", ["Your <bash> was not closed; end it with </bash>.", "<bash>pytest -q"]),
        (
            "<read>a.py</bash>",
            "read",
            ["Your <read> was not closed; you wrote </bash> instead; end it with </read>."],
        ),
        (
            '<write path="a.py">x = 1\n</writ',
            "write",
            ["Your <write> was not closed", '<write path="src/pkg/new.py">'],
        ),
    ],
)
def test_unclosed_tags_say_how_to_close_them(text: str, opens: str, expected_note_parts: list[str]) -> None:
    result = parse_every_way(text)
    assert result.call is None
    assert result.opened_tools == [opens]
    assert len(result.notes) == 1
    for part in expected_note_parts:
        assert part in result.notes[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('<edit path="a.py">x = 1</edit>', "Your <edit> has no <old> and <new>; an edit needs both."),
        ('<edit path="a.py"><old>x = 1</old></edit>', "Your <edit> has no <new>; an edit needs both."),
        ("<edit><old>a</old><new>b</new></edit>", "<edit> needs a path attribute."),
        ('<edit path=""><old>a</old><new>b</new></edit>', "<edit> needs a path attribute."),
        ("<write>x = 1</write>", "<write> needs a path attribute."),
        ('<edit path="a"><old>a</old><old>b</old><new>c</new></edit>', "Your <edit> has more than one <old>"),
        ("<bash></bash>", "Your <bash></bash> is empty"),
        ("<bash>\n   \n</bash>", "Your <bash></bash> is empty"),
        ("<bash/>", "<bash/> has no body."),
        ('<write path="a.py"/>', "<write/> has no body."),
        ("<read></read>", "Your <read> names no file."),
        ("<read>:1-5</read>", "Your <read> names no file."),
        ("<read>a.py\nb.py</read>", "<read> takes one path, not several lines"),
        ("<read><bash>ls</bash></read>", "The body of <read> must be a plain path"),
        ("<read>a.py:20-10</read>", "Bad line range '20-10' in <read>a.py:20-10</read>"),
        ("<read>a.py:x-y</read>", "Bad line range 'x-y' in <read>a.py:x-y</read>"),
        ("<read>a.py:0-5</read>", "Bad line range '0-5'"),
        ("<read>a.py:-</read>", "Bad line range '-'"),
    ],
)
def test_malformed_calls_earn_a_note_with_the_right_form(text: str, expected: str) -> None:
    result = parse_every_way(text)
    assert result.call is None
    assert len(result.notes) == 1
    assert result.notes[0].startswith(expected), result.notes[0]
    assert "<" in result.notes[0].removeprefix(expected)  # shows a form or an example


def test_ranges_off_read_the_whole_file_with_a_note() -> None:
    result = parse_every_way("<read>src/a.py:10-20</read>", line_range_reads=False)
    assert result.call == ReadCall(path="src/a.py")
    assert result.notes == [
        "Line ranges are off here, so the whole of src/a.py was read. Use <read>src/a.py</read>."
    ]
    plain = parse_every_way("<read>src/a.py</read>", line_range_reads=False)
    assert plain.call == ReadCall(path="src/a.py") and plain.notes == []


def test_ranges_off_changes_the_forms_shown() -> None:
    note = parse_response("nothing", line_range_reads=False).notes[0]
    assert "<read>src/pkg/mod.py</read>" in note and ":100-200" not in note


# --- streaming -----------------------------------------------------------------------------


def test_tag_opened_arrives_before_the_closing_tag() -> None:
    parser = StreamParser()
    assert parser.feed("Let me write it.\n<wri") == []
    opened = parser.feed('te path="pkg/a.py">\nimport os\n')
    assert opened == [TagOpened(tool="write", offset=17, path="pkg/a.py")]
    assert parser.feed("print(os.sep)\n</wr") == []
    done = parser.feed("ite>")
    assert done == [CallComplete(call=WriteCall(path="pkg/a.py", content="import os\nprint(os.sep)"))]
    assert parser.close() == []


def test_tag_offsets_point_at_the_tags() -> None:
    text = "a\r\nb <read>x</read> c <bash>ls</bash>"
    normalised = text.replace("\r\n", "\n")
    _, events = run_chunks(list(text))
    offsets = [(e["tool"], e["offset"]) for e in events if e["kind"] == "tag_opened"]
    assert offsets == [("read", normalised.index("<read>")), ("bash", normalised.index("<bash>"))]


def test_problems_stream_as_events_and_match_the_notes() -> None:
    parser = StreamParser()
    events = parser.feed("<bash></bash>")
    assert events[-1] == Problem(message=parser.result().notes[0], tool="bash")


def test_feeding_after_close_is_a_bug() -> None:
    parser = StreamParser()
    parser.feed("<done>x</done>")
    parser.close()
    assert parser.close() == []
    with pytest.raises(RuntimeError):
        parser.feed("more")


def test_megabyte_outputs_parse_exactly() -> None:
    body = "".join(f"def f{i}(x):\n    return x < {i} and x > -{i}  # <tag> </write\n" for i in range(16_000))
    assert len(body) > 1_000_000
    text = "I will write the module.\n" + f'<write path="big.py">\n{body}\n</write>' + "\n<done>x</done>"
    whole, _ = run_chunks([text])
    chunked, _ = run_chunks([text[i : i + 4096] for i in range(0, len(text), 4096)])
    assert whole == chunked
    assert whole.call == WriteCall(path="big.py", content=body)
    assert whole.extra_calls == 1
    small = text[-200_000:]
    assert run_chunks(list(small))[0] == run_chunks([small])[0]
