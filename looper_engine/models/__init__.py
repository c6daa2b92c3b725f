"""Model backends behind one interface (see base.py); `create_backend(spec)` picks one."""

from looper_engine.models.base import Backend, GenOptions, ModelStream, Usage
from looper_engine.models.registry import create_backend
from looper_engine.models.spec import parse_spec

__all__ = ["Backend", "GenOptions", "ModelStream", "Usage", "create_backend", "parse_spec"]
