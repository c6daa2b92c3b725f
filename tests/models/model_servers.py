"""Local HTTP servers that speak Ollama's and the OpenAI chat API the way the real servers do,
with faults a user meets: a model not pulled, a stream cut mid-reply, a server that stalls,
connections dropped before any answer. Each records the requests it got, so tests assert on
what reached the wire rather than on what the client meant to send."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeModel:
    reply: str = "Hello from the fake model."
    prompt_eval_count: int = 17
    eval_count: int = 9
    #: characters per streamed piece; real servers send about one token per chunk
    piece: int = 3
    done_reason: str = "stop"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Faults:
    #: close the socket after this many content chunks (no final chunk, no chunked terminator)
    cut_after: int | None = None
    #: seconds to wait before sending the response headers
    delay_s: float = 0.0
    #: close the next N connections without answering (a server still starting, a proxy hiccup)
    drop_first: int = 0
    #: answer POSTs with this HTTP status and error body instead of a reply
    status: int | None = None


def pieces(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i : i + size]


def free_closed_port() -> int:
    """A port nothing listens on: bound then released, so connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-stream (cancel, timeout) are part of what these servers test.
        pass


class _FakeBase:
    handler_cls: type[BaseHTTPRequestHandler]

    def __init__(self, models: dict[str, FakeModel] | None = None) -> None:
        self.models: dict[str, FakeModel] = models if models is not None else {"fake:1b": FakeModel()}
        self.faults = Faults()
        self.requests: list[Recorded] = []
        self.closing = threading.Event()
        self._lock = threading.Lock()
        handler = type("Handler", (self.handler_cls,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> _FakeBase:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):  # returns the concrete subclass
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def take_drop(self) -> bool:
        with self._lock:
            if self.faults.drop_first > 0:
                self.faults.drop_first -= 1
                return True
            return False

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.requests if r.path == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: _FakeBase

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return raw.decode("utf-8", "replace")

    def _record(self) -> Any | None:
        """Record the request; returns None when the connection was dropped on purpose."""
        body = self._read_body()
        self.fake.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
        if self.fake.take_drop():
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if self.fake.faults.delay_s:
            self.fake.closing.wait(self.fake.faults.delay_s)
        return body if body is not None else {}

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _cut(self) -> None:
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class _OllamaHandler(_Handler):
    def do_GET(self) -> None:
        if self._record() is None:
            return
        if self.path == "/api/tags":
            models = [
                {
                    "name": name,
                    "model": name,
                    "modified_at": "2025-05-01T10:00:00.000000+02:00",
                    "size": 1_234_567_890 + i,
                    "digest": f"{i:064x}",
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "llama",
                        "families": ["llama"],
                        "parameter_size": "1.2B",
                        "quantization_level": "Q4_K_M",
                    },
                }
                for i, name in enumerate(self.fake.models)
            ]
            self._json(200, {"models": models})
        elif self.path == "/api/version":
            self._json(200, {"version": "0.6.8"})
        else:
            self._json(404, {"error": "404 page not found"})

    def do_POST(self) -> None:
        body = self._record()
        if body is None:
            return
        if self.fake.faults.status is not None:
            self._json(self.fake.faults.status, {"error": f"fault {self.fake.faults.status}"})
            return
        name = body.get("model") or body.get("name") or ""
        model = self.fake.models.get(name) or self.fake.models.get(f"{name}:latest")
        if self.path == "/api/show":
            if model is None:
                self._json(404, {"error": f"model '{name}' not found"})
                return
            self._json(
                200,
                {
                    "modelfile": "FROM fake",
                    "template": "{{ .Prompt }}",
                    "details": {"format": "gguf", "family": "llama", "parameter_size": "1.2B"},
                    "model_info": {"general.architecture": "llama"},
                    "capabilities": ["completion"],
                },
            )
            return
        if self.path != "/api/chat":
            self._json(404, {"error": "404 page not found"})
            return
        if model is None:
            self._json(404, {"error": f"model '{name}' not found"})
            return
        if body.get("stream") is False:
            self._json(200, self._final(name, model, content=model.reply))
            return
        self._start_chunked("application/x-ndjson")
        for n, piece in enumerate(pieces(model.reply, model.piece)):
            if self.fake.faults.cut_after is not None and n >= self.fake.faults.cut_after:
                self._cut()
                return
            chunk = {
                "model": name,
                "created_at": _now(),
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            self._chunk(json.dumps(chunk).encode() + b"\n")
        self._chunk(json.dumps(self._final(name, model, content="")).encode() + b"\n")
        self._end_chunked()

    @staticmethod
    def _final(name: str, model: FakeModel, content: str) -> dict[str, Any]:
        return {
            "model": name,
            "created_at": _now(),
            "message": {"role": "assistant", "content": content},
            "done": True,
            "done_reason": model.done_reason,
            "total_duration": 123_456_789,
            "load_duration": 1_234_567,
            "prompt_eval_count": model.prompt_eval_count,
            "prompt_eval_duration": 2_345_678,
            "eval_count": model.eval_count,
            "eval_duration": 98_765_432,
        }


class FakeOllama(_FakeBase):
    """Speaks /api/chat (NDJSON stream), /api/tags, /api/show like `ollama serve`."""

    handler_cls = _OllamaHandler


class _OpenAIHandler(_Handler):
    fake: FakeOpenAI

    def _authorized(self) -> bool:
        key = self.fake.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._json(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                   "code": "invalid_api_key"}})
        return False

    def do_GET(self) -> None:
        if self._record() is None or not self._authorized():
            return
        if self.path == "/v1/models":
            data = [{"id": name, "object": "model", "created": 1700000000, "owned_by": "fake"}
                    for name in self.fake.models]
            self._json(200, {"object": "list", "data": data})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = self._record()
        if body is None or not self._authorized():
            return
        if self.path != "/v1/chat/completions":
            self._json(404, {"detail": "Not Found"})
            return
        if self.fake.faults.status is not None:
            self._json(self.fake.faults.status, {"object": "error", "message": f"fault {self.fake.faults.status}",
                                                 "type": "InternalServerError", "code": self.fake.faults.status})
            return
        name = body.get("model", "")
        model = self.fake.models.get(name)
        if model is None:
            self._json(404, {"object": "error", "message": f"The model `{name}` does not exist.",
                             "type": "NotFoundError", "param": None, "code": 404})
            return
        self._start_chunked("text/event-stream; charset=utf-8")
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": name}

        def send(obj: dict[str, Any]) -> None:
            self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

        send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                   "logprobs": None, "finish_reason": None}]})
        for n, piece in enumerate(pieces(model.reply, model.piece)):
            if self.fake.faults.cut_after is not None and n >= self.fake.faults.cut_after:
                self._cut()
                return
            send({**base, "choices": [{"index": 0, "delta": {"content": piece}, "logprobs": None,
                                       "finish_reason": None}]})
        send({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": model.done_reason}]})
        if self.fake.sends_usage and (body.get("stream_options") or {}).get("include_usage"):
            send({**base, "choices": [], "usage": {
                "prompt_tokens": model.prompt_eval_count,
                "completion_tokens": model.eval_count,
                "total_tokens": model.prompt_eval_count + model.eval_count,
            }})
        self._chunk(b"data: [DONE]\n\n")
        self._end_chunked()


class FakeOpenAI(_FakeBase):
    """Speaks /v1/chat/completions (SSE stream) and /v1/models like vLLM's OpenAI server."""

    handler_cls = _OpenAIHandler

    def __init__(
        self, models: dict[str, FakeModel] | None = None, api_key: str | None = None, sends_usage: bool = True
    ) -> None:
        super().__init__(models)
        self.api_key = api_key
        #: older llama.cpp and some proxies ignore stream_options and never send usage
        self.sends_usage = sends_usage

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


__all__ = ["FakeModel", "FakeOllama", "FakeOpenAI", "Faults", "Recorded", "free_closed_port", "pieces"]
