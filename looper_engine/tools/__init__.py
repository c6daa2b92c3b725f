"""Workspace confinement and the four tools a model can call: bash, read, write, edit."""

from looper_engine.tools.runner import ToolOutcome, execute
from looper_engine.tools.workspace import PathOutsideWorkspace, ToolError, Workspace

__all__ = ["PathOutsideWorkspace", "ToolError", "ToolOutcome", "Workspace", "execute"]
