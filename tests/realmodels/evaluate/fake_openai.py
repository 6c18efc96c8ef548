"""A small OpenAI-compatible HTTP server on 127.0.0.1 for the evaluation tests: each request's JSON body goes
to a scripted ``handler(path, body) -> Reply`` (status, JSON body or raw bytes, delay), and every request is
recorded (``server.requests``: path, body, headers), so tests can count requests, check what was sent (the API
key arrives only in the Authorization header) and script 429/500/timeouts/malformed bodies, error bodies that
echo the request's headers (``echo_headers``), replies that trickle one byte every ``trickle`` seconds and huge
bodies streamed in chunks (``size``). GET requests (``/models``) get 404, or with ``handle_get`` go to the same
handler with body None (and are recorded).

    with FakeOpenAI(handler) as server:
        client_url = server.url   # "http://127.0.0.1:PORT/v1"

Helpers build the bodies the real API returns: ``chat_reply(text, top_logprobs={"75": -0.1, ...})`` and
``completion_reply(text)``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: dict | None = None
    raw: bytes | None = None  # sent instead of body (malformed replies)
    delay: float = 0.0  # seconds to wait before answering (timeouts)
    headers: dict = field(default_factory=dict)
    echo_headers: bool = False  # the body is {"error": {"message": "... <every request header>"}}
    trickle: float = 0.0  # seconds between single bytes of the body (a server that never quite stops)
    size: int = 0  # a body of this many bytes (sent in 1 MB chunks, never held whole)


def chat_reply(text: str, top_logprobs: dict[str, float] | None = None, *, model: str = "fake-judge") -> dict:
    """A chat.completions body; with ``top_logprobs`` ({token: logprob}) its first token carries them."""
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
    if top_logprobs is not None:
        first = max(top_logprobs, key=top_logprobs.get) if top_logprobs else text
        choice["logprobs"] = {"content": [{
            "token": first, "logprob": top_logprobs.get(first, 0.0), "bytes": None,
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top_logprobs.items()]}]}
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model, "choices": [choice],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def completion_reply(text: str, *, model: str = "fake-model") -> dict:
    """A (legacy) completions body."""
    return {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class FakeOpenAI:
    """The server (a context manager): ``url``, ``requests`` (list of {"path", "body", "headers"}). GET requests
    get 404 unless ``handle_get`` (then the handler answers them, with body None, and they are recorded)."""

    def __init__(self, handler: Callable[[str, dict | None], Reply], *, handle_get: bool = False):
        self.handler, self.handle_get = handler, handle_get
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 (http.server's name)
                if not outer.handle_get:
                    self._answer(Reply(status=404))  # not recorded
                    return
                with outer._lock:
                    outer.requests.append({"path": self.path, "body": None, "headers": dict(self.headers)})
                self._answer(outer.handler(self.path, None))

            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {}
                with outer._lock:
                    outer.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                self._answer(outer.handler(self.path, body))

            def _answer(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body or {}).encode()
                if reply.echo_headers:
                    echoed = "; ".join(f"{key}: {value}" for key, value in self.headers.items())
                    payload = json.dumps({"error": {"message": f"bad request, you sent {echoed}"}}).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    length = reply.size or (len(payload) * 1000 if reply.trickle else len(payload))
                    self.send_header("Content-Length", str(length))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    if reply.trickle:
                        for byte in payload * 1000:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                    elif reply.size:
                        chunk = b" " * 2 ** 20
                        for start in range(0, reply.size, len(chunk)):
                            self.wfile.write(chunk[:reply.size - start])
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
