"""The XML tool language: call models, the streaming parser, canonical rendering."""

from looper_engine.protocol.observations import FORMS, forms
from looper_engine.protocol.parser import (
    CallComplete,
    ParseEvent,
    ParseResult,
    Problem,
    StreamParser,
    TagOpened,
    parse_response,
    render_call,
)

__all__ = [
    "FORMS",
    "CallComplete",
    "ParseEvent",
    "ParseResult",
    "Problem",
    "StreamParser",
    "TagOpened",
    "forms",
    "parse_response",
    "render_call",
]
