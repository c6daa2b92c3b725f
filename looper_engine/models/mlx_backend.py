"""`mlx:PATH[@ADAPTER]` — mlx-lm in this process, optionally with a LoRA adapter.

PATH is a local model folder (never a hub id: nothing is downloaded). ADAPTER is a folder
holding adapter_config.json + adapters.safetensors as mlx-lm writes them, or an id resolved
as `<adapters_dir>/<id>/`.

All MLX work (loading, generation, adapter swaps) runs on one worker thread per backend, so
the event loop never blocks and episodes sharing the model generate one at a time. Text
crosses back to the loop in batches (at most one hop per FLUSH_INTERVAL_S), never one
round trip per token.

Swapping adapters keeps the base weights: the LoRA layers are put in once from the adapter's
config, and another adapter with the same config only replaces their weights. A full
fine-tune (`fine_tune_type: "full"`, mlx-lm's layout: the trained weights themselves in
adapters.safetensors) replaces the base weights it covers; the base's own arrays are kept
aside, so swapping back to the base or to a LoRA adapter restores them exactly.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looper_engine.chat import Message, as_dicts
from looper_engine.errors import BackendError, UserError
from looper_engine.models.base import Backend, GenOptions, Usage
from looper_engine.models.streaming import GeneratorStream
from looper_engine.runtime.mlx_threads import MlxExecutor

if TYPE_CHECKING:
    from looper_engine.models.spec import ModelSpec

#: Longest a generated piece waits in the worker before it is handed to the event loop.
FLUSH_INTERVAL_S = 0.02
ADAPTER_FILES = ("adapter_config.json", "adapters.safetensors")
NOISE_NOTE = "random weights — output is noise"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def model_folder(path: str | Path) -> Path:
    """The model folder PATH names; UserError unless it holds a config.json. Checked before
    mlx-lm sees the path, because mlx-lm treats a missing path as a hub id to download."""
    folder = Path(path).expanduser()
    if not (folder.is_dir() and (folder / "config.json").is_file()):
        raise UserError(f"{path} is not an MLX model folder (no config.json)")
    return folder


def resolve_adapter(adapter: str | Path, adapters_dir: str | Path | None = None) -> Path:
    """An adapter folder from a path or an id under `adapters_dir` (default ./adapters)."""
    direct = Path(adapter).expanduser()
    by_id = Path(adapters_dir if adapters_dir is not None else "adapters") / str(adapter)
    for candidate in (direct, by_id):
        if candidate.is_dir():
            missing = [name for name in ADAPTER_FILES if not (candidate / name).is_file()]
            if missing:
                raise UserError(f"{candidate} is not an mlx-lm adapter folder (no {', '.join(missing)})")
            return candidate
    raise UserError(f"adapter {adapter} not found (looked for the folders {direct} and {by_id})")


def _finish(stream: GeneratorStream, usage: Usage | None, finish_reason: str | None) -> None:
    stream.usage, stream.finish_reason = usage, finish_reason


class MlxStream(GeneratorStream):
    def __init__(self, run: Callable[[MlxStream], AsyncIterator[str]]) -> None:
        self.cancel = threading.Event()
        super().__init__(run)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        # The worker checks this between tokens, even when the consumer is blocked elsewhere.
        self.cancel.set()
        await super().aclose()


def _lora_signature(config: dict[str, Any]) -> str:
    """What decides the LoRA layers' shape and placement; dropout is inert at inference."""
    params = {k: v for k, v in (config.get("lora_parameters") or {}).items() if k != "dropout"}
    return json.dumps(
        {
            "type": config.get("fine_tune_type", "lora"),
            "num_layers": config.get("num_layers"),
            "params": params,
        },
        sort_keys=True,
    )


class MlxBackend(Backend):
    def __init__(
        self,
        path: str | Path,
        adapter: str | Path | None = None,
        *,
        adapters_dir: str | Path | None = None,
    ) -> None:
        if importlib.util.find_spec("mlx_lm") is None:
            raise UserError("mlx: models need mlx-lm, which is not installed: pip install 'looper[mlx]'")
        self.path = model_folder(path)
        self.adapters_dir = Path(adapters_dir) if adapters_dir is not None else None
        try:
            config = json.loads((self.path / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{self.path}/config.json cannot be read: {_one_line(e)}") from None
        self.tiny = bool(config.get("looper_tiny"))
        self._eos_token_id = config.get("eos_token_id")
        self._model: Any = None
        self._tokenizer: Any = None
        self._lora_sig: str | None = None
        self._base_weights: dict[str, Any] | None = None
        self._full_loaded = False
        self.adapter_path: Path | None = None
        self._adapter_name: str | None = None
        self._pending_adapter = resolve_adapter(adapter, self.adapters_dir) if adapter else None
        self._pending_name = str(adapter) if adapter else None
        self._executor: MlxExecutor | None = None
        # count_tokens runs on the caller's thread while the worker templates the next prompt;
        # HF tokenizers may reconfigure themselves on encode, so the two take turns.
        self._tokenizer_lock = threading.Lock()
        self._set_names(self._pending_name)

    @classmethod
    def from_spec(
        cls, spec: ModelSpec, *, adapters_dir: str | Path | None = None, adapter: str | None = None, **_other: Any
    ) -> MlxBackend:
        """`adapter` overrides the spec's @ADAPTER. Kwargs meant for other backends are ignored."""
        return cls(spec.name, adapter or spec.extra, adapters_dir=adapters_dir)

    def _set_names(self, adapter_name: str | None) -> None:
        self.spec = f"mlx:{self.path}" + (f"@{adapter_name}" if adapter_name else "")
        short = Path(adapter_name).name if adapter_name else None
        label = f"mlx:{'tiny' if self.tiny else self.path.name}" + (f"@{short}" if short else "")
        self.label = f"{label} ({NOISE_NOTE})" if self.tiny else label

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def adapter(self) -> str | None:
        """The adapter the next generation uses (as named by the caller), or None for the base."""
        return self._pending_name if self._pending_adapter is not None else self._adapter_name

    # -- the worker thread -------------------------------------------------------------

    def _pool(self) -> MlxExecutor:
        if self._executor is None:
            # Its own thread, which frees its mlx streams when closed: a clean process exit.
            self._executor = MlxExecutor("looper-mlx")
        return self._executor

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool(), fn, *args)

    def _load_sync(self) -> None:
        if self._model is None:
            import mlx_lm

            try:
                self._model, self._tokenizer = mlx_lm.load(str(self.path))
            except Exception as e:  # any failure here is a model folder the user named
                raise UserError(f"cannot load the MLX model at {self.path}: {_one_line(e)}") from None
        if self._pending_adapter is not None:
            path, name = self._pending_adapter, self._pending_name
            self._pending_adapter = self._pending_name = None
            self._swap_adapter_sync(path, name)

    def _tokenizer_sync(self) -> Any:
        if self._tokenizer is None:
            from mlx_lm.utils import load_tokenizer

            eos = self._eos_token_id
            eos_ids = eos if isinstance(eos, list) else [eos] if eos is not None else None
            try:
                self._tokenizer = load_tokenizer(self.path, eos_token_ids=eos_ids)
            except Exception as e:
                raise UserError(f"cannot load the tokenizer at {self.path}: {_one_line(e)}") from None
        return self._tokenizer

    def _prompt_ids(self, messages: list[Message]) -> list[int]:
        with self._tokenizer_lock:
            return self._prompt_ids_locked(messages)

    def _prompt_ids_locked(self, messages: list[Message]) -> list[int]:
        tokenizer = self._tokenizer_sync()
        if not tokenizer.has_chat_template:
            raise UserError(f"{self.path} has no chat template; Looper needs an instruct (chat) model")
        dicts = as_dicts(messages)
        try:
            ids = tokenizer.apply_chat_template(dicts, add_generation_prompt=True)
        except Exception:
            # Some templates (Gemma, Mistral v1) reject a system role: fold it into the first
            # user turn, as those models' own chat UIs do.
            if not dicts or dicts[0]["role"] != "system":
                raise
            system, rest = dicts[0]["content"], dicts[1:]
            if rest and rest[0]["role"] == "user":
                rest = [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
            else:
                rest = [{"role": "user", "content": system}, *rest]
            ids = tokenizer.apply_chat_template(rest, add_generation_prompt=True)
        if not isinstance(ids, list):
            ids = list(ids["input_ids"])
        return ids

    def _strip_lora_sync(self) -> None:
        from mlx.utils import tree_unflatten
        from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear
        from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear, LoRASwitchLinear

        restored = []
        for name, module in self._model.named_modules():
            if isinstance(module, (LoRALinear, LoRASwitchLinear, DoRALinear)):
                restored.append((name, module.linear))
            elif isinstance(module, (LoRAEmbedding, DoRAEmbedding)):
                restored.append((name, module.embedding))
        if restored:
            self._model.update_modules(tree_unflatten(restored))
        self._lora_sig = None

    def _swap_adapter_sync(self, path: Path | None, name: str | None) -> None:
        """Put `path`'s LoRA weights in (None: back to the base model). On failure the model
        keeps the adapter it had."""
        import mlx.core as mx
        from mlx.utils import tree_flatten
        from mlx_lm.tuner.utils import linear_to_lora_layers

        if path is None:
            self._strip_lora_sync()
            self._restore_base_weights_sync()
            self.adapter_path, self._adapter_name = None, None
            self._set_names(None)
            return
        try:
            config = json.loads((path / "adapter_config.json").read_text())
            weights = mx.load(str(path / "adapters.safetensors"))
        except Exception as e:  # a broken file the user pointed at
            raise UserError(f"cannot read the adapter at {path}: {_one_line(e)}") from None
        kind = config.get("fine_tune_type", "lora")
        if kind == "full":
            self._load_full_sync(path, name, weights)
            return
        if kind not in ("lora", "dora"):
            raise UserError(f"{path} holds a {kind} fine-tune, which Looper cannot load as an adapter")
        self._restore_base_weights_sync()
        sig = _lora_signature(config)
        previous = (self.adapter_path, self._adapter_name)
        relayered = sig != self._lora_sig
        if relayered:
            self._strip_lora_sync()
            try:
                linear_to_lora_layers(
                    self._model,
                    int(config["num_layers"]),
                    config["lora_parameters"],
                    use_dora=kind == "dora",
                )
            except (KeyError, ValueError, TypeError) as e:
                self._restore_sync(previous)
                raise UserError(f"adapter {path} has a config mlx-lm cannot apply: {_one_line(e)}") from None
            self._lora_sig = sig
        params = {
            k: v for k, v in tree_flatten(self._model.parameters()) if k.rsplit(".", 1)[-1] in ("lora_a", "lora_b", "m")
        }
        misfits = [
            f"{k} {tuple(w.shape)}" + (f" vs {tuple(params[k].shape)}" if k in params else " has no place")
            for k, w in weights.items()
            if k not in params or tuple(params[k].shape) != tuple(w.shape)
        ]
        uncovered = [k for k in params if k not in weights]
        if misfits or uncovered:
            if relayered:
                self._restore_sync(previous)
            if misfits:
                raise UserError(
                    f"adapter {path} was made for another base model: {len(misfits)} of its {len(weights)} "
                    f"tensors do not fit {self.path.name} (e.g. {misfits[0]})"
                )
            raise UserError(
                f"adapter {path} does not match its own config: {len(uncovered)} LoRA weights missing "
                f"(e.g. {uncovered[0]})"
            )
        self._model.load_weights(list(weights.items()), strict=False)
        self._model.eval()
        mx.eval(self._model.parameters())
        self.adapter_path, self._adapter_name = path, name
        self._set_names(name)

    def _restore_base_weights_sync(self) -> None:
        if self._full_loaded and self._base_weights is not None:
            self._model.load_weights(list(self._base_weights.items()), strict=False)
            self._full_loaded = False

    def _load_full_sync(self, path: Path, name: str | None, weights: dict[str, Any]) -> None:
        """Put a full fine-tune's weights in place of the base weights they cover."""
        import mlx.core as mx
        from mlx.utils import tree_flatten

        self._strip_lora_sync()
        self._restore_base_weights_sync()
        params = dict(tree_flatten(self._model.parameters()))
        misfits = [
            f"{k} {tuple(w.shape)}" + (f" vs {tuple(params[k].shape)}" if k in params else " has no place")
            for k, w in weights.items()
            if k not in params or tuple(params[k].shape) != tuple(w.shape)
        ]
        if misfits:
            raise UserError(
                f"full fine-tune {path} was made for another base model: {len(misfits)} of its {len(weights)} "
                f"tensors do not fit {self.path.name} (e.g. {misfits[0]})"
            )
        if self._base_weights is None:
            # mlx arrays are immutable: holding the references keeps the base intact.
            self._base_weights = params
        self._model.load_weights(list(weights.items()), strict=False)
        self._full_loaded = True
        self._model.eval()
        mx.eval(self._model.parameters())
        self.adapter_path, self._adapter_name = path, name
        self._set_names(name)

    def _restore_sync(self, previous: tuple[Path | None, str | None]) -> None:
        self._strip_lora_sync()
        path, name = previous
        self.adapter_path, self._adapter_name = None, None
        self._set_names(None)
        if path is not None:
            self._swap_adapter_sync(path, name)

    def _generate_sync(
        self,
        messages: list[Message],
        options: GenOptions,
        emit: Callable[[tuple[Any, ...]], None],
        cancel: threading.Event,
    ) -> None:
        try:
            if cancel.is_set():
                emit(("end", None, "cancelled"))
                return
            self._load_sync()
            self._generate_loop(messages, options, emit, cancel)
        except BaseException as e:  # handed to the consumer, which raises it
            emit(("error", e))

    def _generate_loop(
        self,
        messages: list[Message],
        options: GenOptions,
        emit: Callable[[tuple[Any, ...]], None],
        cancel: threading.Event,
    ) -> None:
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        prompt = self._prompt_ids(messages)
        if options.seed is not None:
            mx.random.seed(options.seed)
        sampler = make_sampler(temp=options.temperature)
        stops = [s for s in options.stop if s]
        # Text that could still turn into a stop string stays in the worker until it cannot.
        hold = max((len(s) for s in stops), default=1) - 1
        text = ""
        emitted = scanned = tokens = 0
        finish: str | None = None
        last_flush = 0.0
        generator = stream_generate(
            self._model, self._tokenizer, prompt, max_tokens=max(1, options.max_tokens), sampler=sampler
        )
        try:
            for response in generator:
                tokens = response.generation_tokens
                if response.finish_reason:
                    finish = response.finish_reason
                if response.text:
                    text += response.text
                    if stops:
                        start = max(0, scanned - hold)
                        hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
                        if hits:
                            text, finish = text[: min(hits)], "stop"
                            break
                        scanned = len(text)
                    safe = len(text) - hold
                    now = time.monotonic()
                    if safe > emitted and now - last_flush >= FLUSH_INTERVAL_S:
                        emit(("text", text[emitted:safe]))
                        emitted, last_flush = safe, now
                if cancel.is_set():
                    finish = "cancelled"
                    break
        finally:
            generator.close()
        if len(text) > emitted:
            emit(("text", text[emitted:]))
        emit(("end", Usage(prompt_tokens=len(prompt), completion_tokens=tokens), finish))

    # -- the async surface ---------------------------------------------------------------

    async def load(self) -> None:
        """Load the weights (and the spec's adapter) on the worker thread. UserError when the
        folder does not hold a model mlx-lm can load."""
        await self._in_worker(self._load_sync)

    async def check(self) -> None:
        await self.load()
        if not self._tokenizer.has_chat_template:
            raise UserError(f"{self.path} has no chat template; Looper needs an instruct (chat) model")

    async def load_adapter(self, adapter: str | Path | None) -> None:
        """Swap to another LoRA adapter (a folder or an id under adapters_dir), or back to the
        base model with None, without reloading the base weights. Waits for a generation in
        progress to finish; UserError for an adapter that does not fit this model."""
        path = resolve_adapter(adapter, self.adapters_dir) if adapter is not None else None
        name = str(adapter) if adapter is not None else None

        def swap() -> None:
            if self._model is None:
                self._pending_adapter, self._pending_name = path, name
                self._load_sync()
            else:
                self._swap_adapter_sync(path, name)

        await self._in_worker(swap)

    def stream(self, messages: list[Message], options: GenOptions) -> MlxStream:
        return MlxStream(lambda s: self._run(s, list(messages), options))

    async def _run(self, stream: MlxStream, messages: list[Message], options: GenOptions) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

        def emit(item: tuple[Any, ...]) -> None:
            if item[0] == "end":
                # Set on the stream itself so a stream closed early still reports what it cost.
                loop.call_soon_threadsafe(_finish, stream, item[1], item[2])
            loop.call_soon_threadsafe(queue.put_nowait, item)

        loop.run_in_executor(self._pool(), self._generate_sync, messages, options, emit, stream.cancel)
        try:
            while True:
                item = await queue.get()
                kind = item[0]
                if kind == "text":
                    yield item[1]
                elif kind == "end":
                    return
                else:
                    exc = item[1]
                    if isinstance(exc, (UserError, BackendError)):
                        raise BackendError(str(exc)) from None
                    raise BackendError(f"mlx generation failed: {type(exc).__name__}: {_one_line(exc)}") from exc
        finally:
            stream.cancel.set()

    def count_tokens(self, messages: list[Message]) -> int:
        """Exact: the length of the chat-templated prompt in this model's tokenizer."""
        return len(self._prompt_ids(messages))

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "path": str(self.path),
            "adapter": str(self.adapter_path) if self.adapter_path else None,
            "tiny": self.tiny,
        }
