"""The registry: from a model spec (see spec.py) to the backend it names.

It sits on top of the backends and imports each one only when a spec asks for it, so that
naming an Ollama model never loads mlx-lm and the reverse.
"""

from __future__ import annotations

from typing import Any

from looper_engine.models.base import Backend
from looper_engine.models.spec import parse_spec


def create_backend(spec: str, **kwargs: Any) -> Backend:
    """Build the backend a spec names. Raises BadModelSpec (a UserError) on a bad spec."""
    parsed = parse_spec(spec)
    if parsed.kind == "scripted":
        from looper_engine.models.scripted import ScriptedBackend

        return ScriptedBackend.from_spec(parsed, **kwargs)
    if parsed.kind == "ollama":
        from looper_engine.models.ollama_backend import OllamaBackend

        return OllamaBackend.from_spec(parsed, **kwargs)
    if parsed.kind == "mlx":
        from looper_engine.models.mlx_backend import MlxBackend

        return MlxBackend.from_spec(parsed, **kwargs)
    from looper_engine.models.openai_backend import OpenAIBackend

    return OpenAIBackend.from_spec(parsed, **kwargs)
