"""One backend per model for an experiment: an MLX model is loaded once and adapters are
swapped in."""

from __future__ import annotations

from pathlib import Path

from looper_engine.errors import UserError
from looper_engine.models.base import Backend


class BackendPool:
    """One backend per model (an MLX model is loaded once; adapters are swapped in)."""

    def __init__(self, adapters_dir: Path | None = None) -> None:
        self.adapters_dir = adapters_dir
        self._backends: dict[str, Backend] = {}
        self._checked: set[str] = set()
        self._loaded: dict[str, str | None] = {}

    @staticmethod
    def base_spec(spec: str) -> str:
        """The model without an adapter: `mlx:PATH@ADAPTER` -> `mlx:PATH`."""
        if spec.startswith("mlx:") and "@" in spec:
            return spec.rsplit("@", 1)[0]
        return spec

    def initial_adapter(self, spec: str) -> Path | None:
        """The adapter an `mlx:PATH@ADAPTER` spec starts from."""
        if spec.startswith("mlx:") and "@" in spec:
            from looper_engine.models.mlx_backend import resolve_adapter

            return resolve_adapter(spec.rsplit("@", 1)[1], self.adapters_dir)
        return None

    def get(self, spec: str) -> Backend:
        from looper_engine.models.registry import create_backend

        key = self.base_spec(spec)
        if key not in self._backends:
            self._backends[key] = create_backend(key, adapters_dir=self.adapters_dir)
            self._loaded[key] = None
        return self._backends[key]

    async def checked(self, spec: str) -> Backend:
        backend = self.get(spec)
        key = self.base_spec(spec)
        if key not in self._checked:
            await backend.check()
            self.initial_adapter(spec)
            self._checked.add(key)
        return backend

    async def use_adapter(self, spec: str, adapter: str | None) -> Backend:
        """The backend for `spec`, with `adapter` (None: the base model) in place."""
        backend = await self.checked(spec)
        key = self.base_spec(spec)
        if self._loaded.get(key) != adapter:
            load = getattr(backend, "load_adapter", None)
            if load is None:
                raise UserError(f"{key} cannot load adapters; the adapter layer needs an mlx: model")
            await load(adapter)
            self._loaded[key] = adapter
        return backend

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()


__all__ = ["BackendPool"]
