"""The streaming parser for the XML tool language, and its exact inverse `render_call`.

The language (see FORMS in observations.py):

    <bash>command</bash>
    <read>path</read>   <read>path:START-END</read>   (also path:START- and path:N)
    <write path="p">whole file</write>
    <edit path="p"><old>exact text</old><new>replacement</new></edit>
    <done>summary</done>

Rules, in the order they matter:

* Only the five lowercase tool names open a call. A tool tag is recognised anywhere, even
  glued to a word, except when it is quoted as inline code: `` `<bash>` `` is prose.
* A body is taken literally up to its own closing tag: `<bash><read>x</read></bash>` runs the
  command `<read>x</read>`. Inside `<edit>` the parser looks only for `<old>`, `<new>` and
  `</edit>` between the parts, and inside `<old>`/`<new>` only for `</old>`/`</new>`, so
  edits may quote any other tag, `</edit>` included. Text between the parts is ignored.
* Bodies of bash, write, old and new keep their text exactly, except that one newline right
  after the opening tag and one right before the closing tag are layout, not content, and
  (with strip_fences) one code fence wrapping the whole body is removed. So the usual
  write body "x" on its own line between the tags carries the content "x", with no final newline.
  Read paths and done summaries are stripped of surrounding whitespace. CRLF becomes LF
  everywhere. render_call writes the same layout back, so it is the exact inverse.
* The first complete call is the one that runs. Calls closed after it are counted in
  `extra_calls`; their own problems are not reported, since they did not run.
* `<think>...</think>` is reasoning: its text is prose and tool tags inside it do not count.
* Any other `<word ...>` shaped tag is prose. It is reported only when the turn has no call
  at all, and only when it looks like an attempt: not glued to a preceding identifier
  character, so `List<int>`, `a < b` and `x<y` never name a tag in a note. A turn with no
  call at all always gets one note that shows the forms.
* Attribute values (`path="..."`, `path='...'` or bare) cannot contain `<` or `>`.

The parser keeps only the unconsumed tail of the stream (a pending tag of at most
_MAX_TAG characters, or the last few characters of a possible closing tag) and never
rescans consumed text, so its total work is linear in the output length.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field

from looper_engine.protocol import observations as obs
from looper_engine.protocol.calls import (
    TOOL_NAMES,
    BashCall,
    DoneCall,
    EditCall,
    ReadCall,
    ToolCall,
    WriteCall,
)

# --- events and result ----------------------------------------------------------------


class TagOpened(BaseModel):
    """An opening tag of a known tool was seen (the call may still fail to complete)."""

    kind: Literal["tag_opened"] = "tag_opened"
    tool: str
    offset: int  # of the '<', in the CRLF-normalised text
    path: str | None = None  # the path attribute, when the tag has one


class CallComplete(BaseModel):
    """A call's closing tag arrived and the call is well formed."""

    kind: Literal["call_complete"] = "call_complete"
    call: ToolCall
    runs: bool = True  # False for calls after the first one, which are not executed


class Problem(BaseModel):
    """Something the model should be told; the same text is in ParseResult.notes."""

    kind: Literal["problem"] = "problem"
    message: str
    tool: str | None = None


ParseEvent = Annotated[Union[TagOpened, CallComplete, Problem], Field(discriminator="kind")]


class ParseResult(BaseModel):
    call: ToolCall | None = None  # the first complete call: the one that runs
    extra_calls: int = 0  # calls closed after the first; they do not run
    notes: list[str] = Field(default_factory=list)  # observations for the model
    prose: str = ""  # everything outside tool tags, the model's reasoning
    opened_tools: list[str] = Field(default_factory=list)  # every tool tag opened, in order


# --- lexical pieces -------------------------------------------------------------------

_TOOLS = frozenset(TOOL_NAMES)
_THINK = "think"
_CLOSERS = {t: f"</{t}>" for t in (*TOOL_NAMES, _THINK)}
_LONGEST_CLOSER = max(len(c) for c in _CLOSERS.values())
_EDIT_MARKERS = ("<old>", "<new>", "</edit>")
_LONGEST_MARKER = max(len(m) for m in _EDIT_MARKERS)
# A '<' with no '>' within this many characters is not a tag; bounds the lookahead.
_MAX_TAG = 512

_NAME = r"[A-Za-z_][A-Za-z0-9_.:-]*"
_VALUE = r"""(?:"[^"<>]*"|'[^'<>]*'|[^\s"'=<>`]+?)"""
_NAME_RE = re.compile(_NAME)
_TAG_RE = re.compile(rf"<(?P<name>{_NAME})(?P<attrs>(?:\s+{_NAME}(?:\s*=\s*{_VALUE})?)*)\s*(?P<slash>/?)>")
_ATTR_RE = re.compile(rf"""({_NAME})(?:\s*=\s*(?:"([^"<>]*)"|'([^'<>]*)'|([^\s"'=<>`]+)))?""")
_FENCE_OPEN_RE = re.compile(r"\s*(`{3,}|~{3,})[^\n`~]*\n")
_RANGE_RE = re.compile(r"\s*(\w*)\s*-\s*(\w*)\s*|\s*(\d+)\s*")
_QUOTES = "\"'`"


def _is_ident(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _parse_attrs(text: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for m in _ATTR_RE.finditer(text):
        value = next((g for g in m.groups()[1:] if g is not None), "")
        attrs.setdefault(m.group(1), value)
    return attrs


def strip_fence(text: str) -> str:
    """Remove one code fence that wraps the whole of `text`, if there is one.

    The opening fence line may carry an info string (```python); the closing fence must be
    the same run of backticks or tildes, alone on the last non-blank line."""
    m = _FENCE_OPEN_RE.match(text)
    if m is None:
        return text
    fence = m.group(1)
    start = m.end()
    tail = text.rstrip()
    if not tail.endswith(fence):
        return text
    close_at = len(tail) - len(fence)
    if close_at < start:
        return text
    k = close_at
    while k > start and text[k - 1] in " \t":
        k -= 1
    if k == start:
        return ""
    if text[k - 1] != "\n":
        return text
    return text[start : k - 1]


def _unwrap_layout(text: str) -> str:
    if text.startswith("\n"):
        text = text[1:]
    if text.endswith("\n"):
        text = text[:-1]
    return text


def _range_suffix(text: str) -> tuple[str, str] | None:
    """Split `path:SPEC` when SPEC looks like a line range (valid or not)."""
    idx = text.rfind(":")
    if idx < 0:
        return None
    spec = text[idx + 1 :]
    if _RANGE_RE.fullmatch(spec) is None:
        return None
    return text[:idx].rstrip(), spec.strip()


def _parse_range(spec: str) -> tuple[int, int | None] | None:
    m = _RANGE_RE.fullmatch(spec)
    if m is None:
        return None
    if m.group(3) is not None:
        line = int(m.group(3))
        return (line, line) if line >= 1 else None
    a, b = m.group(1), m.group(2)
    if (a and not a.isdigit()) or (b and not b.isdigit()) or not (a or b):
        return None
    start = int(a) if a else 1
    end = int(b) if b else None
    if start < 1 or (end is not None and end < start):
        return None
    return start, end


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES:
        return text[1:-1].strip()
    return text


# --- the parser -----------------------------------------------------------------------


class _Mode(enum.Enum):
    OUTSIDE = enum.auto()
    BODY = enum.auto()  # looking for the literal closer of the open tool (or </think>)
    EDIT = enum.auto()  # inside <edit>, between its parts
    EDIT_PART = enum.auto()  # inside <old> or <new>


class _Need(Exception):
    """More text is needed to decide what the '<' at the cursor is."""


class StreamParser:
    """Incremental parser: feed() model output as it streams, close() at the end, then result().

    With `strip_fences`, a code fence wrapping a whole body is removed. With
    `line_range_reads` off, `<read>path:A-B</read>` reads the whole file and earns a note."""

    def __init__(self, *, strip_fences: bool = True, line_range_reads: bool = True) -> None:
        self.strip_fences = strip_fences
        self.line_range_reads = line_range_reads
        self._buf = ""  # unconsumed text; _buf[0] sits at absolute offset _base
        self._pos = 0
        self._base = 0
        self._prev = ""  # the character just before _buf[0]
        self._pending_cr = False
        self._closed = False
        self._mode = _Mode.OUTSIDE
        self._closer = ""
        self._thinking = False
        self._tool = ""
        self._attrs: dict[str, str] = {}
        self._body: list[str] = []
        self._part = ""
        self._parts: dict[str, str] = {}
        self._dupes: list[str] = []
        self._prose: list[str] = []
        self._events: list[TagOpened | CallComplete | Problem] = []
        self._notes: list[str] = []
        self._opened: list[str] = []
        self._first: BashCall | ReadCall | WriteCall | EditCall | DoneCall | None = None
        self._extra = 0
        self._unknown: list[str] = []
        self._wrong_case: list[str] = []
        self._stray: list[str] = []
        self._think_unclosed = False

    # -- public API

    def feed(self, chunk: str) -> list[TagOpened | CallComplete | Problem]:
        """Consume the next piece of output; return the events it completed."""
        if self._closed:
            raise RuntimeError("StreamParser.feed() after close()")
        if self._pending_cr:
            chunk = "\r" + chunk
            self._pending_cr = False
        if chunk.endswith("\r"):
            # A CR at a chunk boundary may be the first half of a CRLF.
            chunk = chunk[:-1]
            self._pending_cr = True
        if not chunk:
            return []
        if "\r\n" in chunk:
            chunk = chunk.replace("\r\n", "\n")
        self._buf += chunk
        self._advance(final=False)
        return self._take_events()

    def close(self) -> list[TagOpened | CallComplete | Problem]:
        """End of stream: settle whatever is still open and add the turn-level notes."""
        if self._closed:
            return []
        self._closed = True
        if self._pending_cr:
            self._buf += "\r"
            self._pending_cr = False
        self._advance(final=True)
        self._settle_open_tag()
        self._add_turn_notes()
        return self._take_events()

    def result(self) -> ParseResult:
        """The outcome of the turn; closes the parser first if that has not happened."""
        if not self._closed:
            self.close()
        return ParseResult(
            call=self._first,
            extra_calls=self._extra,
            notes=list(self._notes),
            prose="".join(self._prose),
            opened_tools=list(self._opened),
        )

    # -- scanning

    def _take_events(self) -> list[TagOpened | CallComplete | Problem]:
        events, self._events = self._events, []
        return events

    def _advance(self, *, final: bool) -> None:
        try:
            while self._pos < len(self._buf):
                if self._mode is _Mode.OUTSIDE:
                    self._scan_outside(final)
                elif self._mode is _Mode.EDIT:
                    self._scan_edit(final)
                elif not self._scan_body(final):
                    break
        except _Need:
            pass
        if self._pos:
            self._prev = self._buf[self._pos - 1]
            self._base += self._pos
            self._buf = self._buf[self._pos :]
            self._pos = 0

    def _scan_body(self, final: bool) -> bool:
        """Find the closer of the open body; False when it has not arrived yet."""
        buf, pos, closer = self._buf, self._pos, self._closer
        k = buf.find(closer, pos)
        if k < 0:
            # Everything that cannot be the start of a split closer is surely body.
            safe = len(buf) if final else len(buf) - len(closer) + 1
            if safe > pos:
                self._take_body(buf[pos:safe])
                self._pos = safe
            return False
        self._take_body(buf[pos:k])
        self._pos = k + len(closer)
        if self._thinking:
            self._prose.append(closer)
            self._thinking = False
            self._mode = _Mode.OUTSIDE
        elif self._mode is _Mode.EDIT_PART:
            self._end_part()
        else:
            self._finish()
        return True

    def _take_body(self, text: str) -> None:
        if not text:
            return
        (self._prose if self._thinking else self._body).append(text)

    def _scan_outside(self, final: bool) -> None:
        buf, pos = self._buf, self._pos
        j = buf.find("<", pos)
        if j < 0:
            self._prose.append(buf[pos:])
            self._pos = len(buf)
            return
        if j > pos:
            self._prose.append(buf[pos:j])
        self._pos = j
        end = self._tag_at(j, final)
        self._pos = end

    def _tag_at(self, pos: int, final: bool) -> int:
        """Decide what the '<' at `pos` starts; return the position after what was consumed."""
        buf = self._buf
        n = len(buf)
        if pos + 1 >= n:
            return self._prose_upto(pos, pos + 1, final)
        c = buf[pos + 1]
        if c == "/":
            return self._closer_outside(pos, final)
        if not (c.isascii() and (c.isalpha() or c == "_")):
            return self._as_prose(pos, pos + 1)
        gt = buf.find(">", pos + 1, pos + _MAX_TAG)
        if gt < 0:
            name_end = _NAME_RE.match(buf, pos + 1).end()  # type: ignore[union-attr]
            cannot_be_tag = name_end < n and not (buf[name_end].isspace() or buf[name_end] == "/")
            if final or n >= pos + _MAX_TAG or cannot_be_tag:
                return self._as_prose(pos, pos + 1)
            raise _Need
        m = _TAG_RE.match(buf, pos, gt + 1)
        if m is None:
            return self._as_prose(pos, pos + 1)
        name = m.group("name")
        prev = buf[pos - 1] if pos else self._prev
        if name in _TOOLS or name == _THINK:
            if prev == "`":
                # `<bash>` quoted as inline code is a mention, not a call.
                if gt + 1 >= n and not final:
                    raise _Need
                if gt + 1 >= n or buf[gt + 1] == "`":
                    return self._as_prose(pos, gt + 1)
            if name == _THINK:
                self._prose.append(m.group(0))
                self._thinking = True
                self._mode = _Mode.BODY
                self._closer = _CLOSERS[_THINK]
                return gt + 1
            self._open(name, m, self._base + pos)
            return gt + 1
        if not _is_ident(prev):
            if name.lower() in _TOOLS:
                self._wrong_case.append(name)
            elif name not in self._unknown:
                self._unknown.append(name)
        return self._as_prose(pos, gt + 1)

    def _closer_outside(self, pos: int, final: bool) -> int:
        buf = self._buf
        for tool, closer in _CLOSERS.items():
            if buf.startswith(closer, pos):
                if tool != _THINK:
                    self._stray.append(tool)
                return self._as_prose(pos, pos + len(closer))
        rest = buf[pos : pos + _LONGEST_CLOSER]
        if not final and len(rest) < _LONGEST_CLOSER and any(c.startswith(rest) for c in _CLOSERS.values()):
            raise _Need
        return self._as_prose(pos, pos + 1)

    def _prose_upto(self, pos: int, end: int, final: bool) -> int:
        if not final:
            raise _Need
        return self._as_prose(pos, end)

    def _as_prose(self, pos: int, end: int) -> int:
        self._prose.append(self._buf[pos:end])
        return end

    def _scan_edit(self, final: bool) -> None:
        buf, pos = self._buf, self._pos
        j = buf.find("<", pos)
        if j < 0:
            self._pos = len(buf)
            return
        for marker in _EDIT_MARKERS:
            if buf.startswith(marker, j):
                self._pos = j + len(marker)
                if marker == "</edit>":
                    self._finish()
                else:
                    self._part = marker[1:-1]
                    self._closer = f"</{self._part}>"
                    self._body = []
                    self._mode = _Mode.EDIT_PART
                return
        rest = buf[j : j + _LONGEST_MARKER]
        self._pos = j
        if not final and len(rest) < _LONGEST_MARKER and any(m.startswith(rest) for m in _EDIT_MARKERS):
            raise _Need
        self._pos = j + 1

    def _end_part(self) -> None:
        value = "".join(self._body)
        self._body = []
        if self._part in self._parts:
            self._dupes.append(self._part)
        else:
            self._parts[self._part] = value
        self._mode = _Mode.EDIT

    # -- calls

    def _open(self, tool: str, m: re.Match[str], offset: int) -> None:
        self._tool = tool
        self._attrs = _parse_attrs(m.group("attrs"))
        path = self._attrs.get("path")
        self._events.append(TagOpened(tool=tool, offset=offset, path=path.strip() if path else None))
        self._opened.append(tool)
        self._body = []
        self._parts = {}
        self._dupes = []
        if m.group("slash"):
            self._finish(self_closing=True)
        elif tool == "edit":
            self._mode = _Mode.EDIT
        else:
            self._mode = _Mode.BODY
            self._closer = _CLOSERS[tool]

    def _finish(self, *, self_closing: bool = False) -> None:
        """The open call's closing tag arrived (or it was self-closing)."""
        tool = self._tool
        self._mode = _Mode.OUTSIDE
        if self_closing and tool in ("bash", "write", "edit"):
            call, notes = None, [obs.no_body(tool, line_range_reads=self.line_range_reads)]
        else:
            call, notes = self._build(tool)
        if self._first is not None:
            self._extra += 1
            if call is not None:
                self._events.append(CallComplete(call=call, runs=False))
        else:
            if call is not None:
                self._first = call
                self._events.append(CallComplete(call=call, runs=True))
            for note in notes:
                self._problem(note, tool)
        self._body = []
        self._parts = {}

    def _problem(self, message: str, tool: str | None = None) -> None:
        self._notes.append(message)
        self._events.append(Problem(message=message, tool=tool))

    def _content(self, text: str) -> str:
        text = _unwrap_layout(text)
        return strip_fence(text) if self.strip_fences else text

    def _build(
        self, tool: str
    ) -> tuple[BashCall | ReadCall | WriteCall | EditCall | DoneCall | None, list[str]]:
        body = "".join(self._body)
        path = self._attrs.get("path", "").strip()
        if tool == "bash":
            command = self._content(body)
            if not command.strip():
                return None, [obs.empty_bash()]
            return BashCall(command=command), []
        if tool == "read":
            return self._build_read(body.strip() or path)
        if tool == "done":
            return DoneCall(summary=body.strip()), []
        if not path:
            return None, [obs.missing_path(tool)]
        if tool == "write":
            return WriteCall(path=path, content=self._content(body)), []
        return self._build_edit(path)

    def _build_read(self, text: str) -> tuple[ReadCall | None, list[str]]:
        text = _unquote(text)
        if not text:
            return None, [obs.read_no_path(line_range_reads=self.line_range_reads)]
        if "\n" in text:
            return None, [obs.read_several_lines(text)]
        if "<" in text or ">" in text:
            return None, [obs.read_not_a_path(text)]
        split = _range_suffix(text)
        if split is None:
            return ReadCall(path=text), []
        path, spec = split
        path = _unquote(path)
        if not path:
            return None, [obs.read_no_path(line_range_reads=self.line_range_reads)]
        if not self.line_range_reads:
            return ReadCall(path=path), [obs.ranges_off(path)]
        bounds = _parse_range(spec)
        if bounds is None:
            return None, [obs.bad_range(path, spec)]
        return ReadCall(path=path, start=bounds[0], end=bounds[1]), []

    def _build_edit(self, path: str) -> tuple[EditCall | None, list[str]]:
        if self._dupes:
            return None, [obs.edit_duplicate(self._dupes[0])]
        missing = [p for p in ("old", "new") if p not in self._parts]
        if missing:
            return None, [obs.edit_missing(missing)]
        old = self._content(self._parts["old"])
        new = self._content(self._parts["new"])
        return EditCall(path=path, old=old, new=new), []

    def _settle_open_tag(self) -> None:
        """At end of stream: a tool or think tag that never closed."""
        if self._mode is _Mode.OUTSIDE:
            return
        if self._thinking:
            self._think_unclosed = True
            self._thinking = False
        elif self._first is None:
            inner = self._part if self._mode is _Mode.EDIT_PART else None
            text = "".join(self._body)
            found = next(
                (t for t in TOOL_NAMES if t != self._tool and _CLOSERS[t] in text),
                None,
            )
            self._problem(
                obs.unclosed(self._tool, inner=inner, found=found, line_range_reads=self.line_range_reads),
                self._tool,
            )
        self._mode = _Mode.OUTSIDE
        self._body = []

    def _add_turn_notes(self) -> None:
        ranges = self.line_range_reads
        if self._first is None and not self._notes:
            if self._think_unclosed:
                self._problem(obs.think_unclosed())
            elif self._wrong_case:
                self._problem(obs.wrong_case(self._wrong_case[0], line_range_reads=ranges))
            elif self._unknown:
                self._problem(obs.unknown_tags(self._unknown, line_range_reads=ranges))
            elif self._stray:
                self._problem(obs.stray_closer(self._stray[0], line_range_reads=ranges))
            else:
                self._problem(obs.no_call(line_range_reads=ranges))
        if self._extra:
            self._problem(obs.extra_calls(self._extra))


def parse_response(text: str, *, strip_fences: bool = True, line_range_reads: bool = True) -> ParseResult:
    """Parse a whole model turn at once."""
    parser = StreamParser(strip_fences=strip_fences, line_range_reads=line_range_reads)
    parser.feed(text)
    parser.close()
    return parser.result()


# --- rendering ------------------------------------------------------------------------


def _check_text(what: str, value: str, closer: str) -> None:
    if "\r" in value:
        raise ValueError(f"{what} contains a carriage return, which the parser turns into LF")
    if closer in value:
        raise ValueError(f"{what} contains {closer}, which would end it early")


def _check_path(path: str) -> None:
    if not path or path != path.strip():
        raise ValueError(f"path {path!r} is empty or has surrounding whitespace")
    if any(ch in path for ch in "<>\r\n"):
        raise ValueError(f"path {path!r} contains <, > or a line break")
    if len(path) >= 2 and path[0] == path[-1] and path[0] in _QUOTES:
        raise ValueError(f"path {path!r} is wrapped in quotes, which the parser removes")


def _path_attr(path: str) -> str:
    _check_path(path)
    if '"' not in path:
        return f'path="{path}"'
    if "'" not in path:
        return f"path='{path}'"
    raise ValueError(f"path {path!r} contains both kinds of quote")


def _fence_guard(value: str) -> str:
    if strip_fence(value) != value:
        # The value itself looks like a fenced block: fence it once more so that the
        # parser's fence stripping peels off only the wrapper.
        return f"```\n{value}\n```"
    return value


def _block(value: str) -> str:
    """A body whose parse (layout newlines, then fence stripping) gives back `value`."""
    value = _fence_guard(value)
    if "\n" in value:
        return f"\n{value}\n"
    return value


def render_call(call: BashCall | ReadCall | WriteCall | EditCall | DoneCall) -> str:
    """The canonical text of `call`: parse_response(render_call(c)).call == c.

    Raises ValueError for the few calls the language cannot express (a body containing
    its own closing tag, a carriage return, an empty command, an odd path)."""
    if isinstance(call, BashCall):
        _check_text("command", call.command, "</bash>")
        if not call.command.strip():
            raise ValueError("an empty command cannot be rendered; the parser rejects it")
        return f"<bash>{_block(call.command)}</bash>"
    if isinstance(call, ReadCall):
        _check_path(call.path)
        if call.start is None:
            if call.end is not None:
                raise ValueError("a read with an end line needs a start line")
            if _range_suffix(call.path) is not None:
                raise ValueError(f"path {call.path!r} ends in something that reads as a line range")
            return f"<read>{call.path}</read>"
        if call.start < 1 or (call.end is not None and call.end < call.start):
            raise ValueError(f"bad line range {call.start}-{call.end}")
        end = "" if call.end is None else str(call.end)
        return f"<read>{call.path}:{call.start}-{end}</read>"
    if isinstance(call, WriteCall):
        _check_text("content", call.content, "</write>")
        return f"<write {_path_attr(call.path)}>\n{_fence_guard(call.content)}\n</write>"
    if isinstance(call, EditCall):
        _check_text("old", call.old, "</old>")
        _check_text("new", call.new, "</new>")
        return (
            f"<edit {_path_attr(call.path)}>\n"
            f"<old>{_block(call.old)}</old>\n"
            f"<new>{_block(call.new)}</new>\n"
            "</edit>"
        )
    if isinstance(call, DoneCall):
        _check_text("summary", call.summary, "</done>")
        if call.summary != call.summary.strip():
            raise ValueError("a summary with surrounding whitespace cannot be rendered exactly")
        return f"<done>{call.summary}</done>"
    raise TypeError(f"not a tool call: {call!r}")
