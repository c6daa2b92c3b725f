"""Model specs: one string names a backend and its model. A leaf: it imports no backend, so
the backends can take the spec type from here and the registry can sit on top of them.

    scripted:POLICY              a scripted policy (oracle, looper, malformed, never-done ...)
    ollama:MODEL                 an Ollama server (OLLAMA_HOST or http://127.0.0.1:11434)
    mlx:PATH[@ADAPTER]           mlx-lm in-process, optionally with a LoRA adapter
    openai:MODEL@URL             an OpenAI-compatible server (vLLM, llama.cpp, LM Studio)
    openai:MODEL@URL#ADAPTER     the same, each request asking for the LoRA adapter vLLM serves
                                 as ADAPTER (`--lora-modules ADAPTER=PATH`) over MODEL
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from looper_engine.errors import BadModelSpec

KINDS = ("scripted", "ollama", "mlx", "openai")

#: An adapter name a server serves as a model id (vLLM's `--lora-modules NAME=PATH`).
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ModelSpec(BaseModel):
    kind: str
    name: str
    extra: str | None = None  # adapter for mlx, URL for openai
    adapter: str | None = None  # openai: the served LoRA adapter each request names

    def __str__(self) -> str:
        sep = "@"
        return (
            f"{self.kind}:{self.name}"
            + (f"{sep}{self.extra}" if self.extra else "")
            + (f"#{self.adapter}" if self.adapter else "")
        )


def checked_spec(value: str) -> str:
    """A model spec field's validator (pydantic): the spec stripped, or ValueError with the
    one-line reason."""
    try:
        parse_spec(value.strip())
    except BadModelSpec as exc:
        raise ValueError(str(exc)) from None
    return value.strip()


def parse_spec(spec: str) -> ModelSpec:
    if not isinstance(spec, str) or ":" not in spec:
        raise BadModelSpec(
            f"model spec {spec!r} is not KIND:NAME; use one of "
            "scripted:oracle, ollama:MODEL, mlx:PATH[@ADAPTER], openai:MODEL@URL"
        )
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise BadModelSpec(f"unknown model kind {kind!r} in {spec!r}; known kinds: {', '.join(KINDS)}")
    if not rest.strip():
        raise BadModelSpec(f"model spec {spec!r} names no model after '{kind}:'")
    extra: str | None = None
    adapter: str | None = None
    if kind == "mlx" and "@" in rest:
        rest, _, extra = rest.rpartition("@")
    elif kind == "openai":
        if "@" not in rest:
            raise BadModelSpec(f"model spec {spec!r} needs a server URL: openai:MODEL@http://host:port/v1")
        rest, _, extra = rest.partition("@")
        if not extra.startswith(("http://", "https://")):
            raise BadModelSpec(f"server URL {extra!r} in {spec!r} must start with http:// or https://")
        if "#" in extra:
            extra, _, adapter = extra.partition("#")
            if not ADAPTER_NAME.match(adapter):
                raise BadModelSpec(
                    f"adapter name {adapter!r} in {spec!r} must be letters, digits, '.', '_' or '-' "
                    "(the name vLLM serves it as: openai:MODEL@URL#ADAPTER)"
                )
    if not rest or (extra is not None and not extra):
        raise BadModelSpec(f"model spec {spec!r} is incomplete")
    return ModelSpec(kind=kind, name=rest, extra=extra, adapter=adapter)
