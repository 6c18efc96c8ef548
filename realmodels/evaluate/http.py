"""The HTTP client of every endpoint call (the openai judge, the endpoint generator, the reachability check): an
``httpx2.Client`` whose requests are bounded in total time and in size, and whose in-flight requests can be
aborted from another thread.

- Total time: each request (connect, send, headers, body) must finish within ``total_s`` of its start; every
  socket read waits at most the time left, so a server that trickles one byte at a time fails at the deadline
  (httpx's own timeouts are per read) with a read time-out.
- Size: a response (headers and body) over ``max_bytes`` fails as ``ResponseTooLarge`` once that many bytes have
  been read (never more is held in memory).
- Abort: ``abort()`` shuts down every open socket (a thread blocked in a read wakes at once with an error) and
  refuses new connections until ``reset()``; it is how Ctrl-C or a stopping run ends in-flight requests.

The bounds hold per thread: the request's state lives in a thread-local, and httpx reads a response's body on the
thread that sent the request."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

import httpcore2
import httpx2

MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # an endpoint's answer is kilobytes; a judge's, a few hundred bytes


class ResponseTooLarge(ValueError):
    """The response exceeded the size cap (a one-line reason)."""


class _Request(threading.local):
    deadline: float = float("inf")
    received: int = 0


class _Stream(httpcore2.NetworkStream):
    """A network stream whose reads honour the current thread's request deadline and size cap."""

    def __init__(self, inner: httpcore2.NetworkStream, owner: BoundedTransport):
        self._inner, self._owner = inner, owner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        state, owner = self._owner._request, self._owner
        if owner.aborted.is_set():
            raise httpcore2.ReadError("aborted")
        left = state.deadline - time.monotonic()
        if left <= 0:
            raise httpcore2.ReadTimeout("total time-out")
        data = self._inner.read(max_bytes, left if timeout is None else min(timeout, left))
        state.received += len(data)
        if state.received > owner.max_bytes:
            raise ResponseTooLarge(f"response larger than {owner.max_bytes / 2 ** 20:g} MB")
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        left = self._owner._request.deadline - time.monotonic()
        if left <= 0:
            raise httpcore2.WriteTimeout("total time-out")
        self._inner.write(buffer, left if timeout is None else min(timeout, left))

    def close(self) -> None:
        self._owner._forget(self)
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore2.NetworkStream:
        self._owner._forget(self)
        return self._owner._track(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _Backend(httpcore2.NetworkBackend):
    def __init__(self, owner: BoundedTransport):
        self._inner, self._owner = httpcore2.SyncBackend(), owner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if self._owner.aborted.is_set():
            raise httpcore2.ConnectError("aborted")
        left = self._owner._request.deadline - time.monotonic()
        timeout = left if timeout is None else min(timeout, left)
        if timeout <= 0:
            raise httpcore2.ConnectTimeout("total time-out")
        return self._owner._track(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return self._owner._track(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) names for ``url``, if any."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class BoundedTransport(httpx2.HTTPTransport):
    """httpx2's transport with the bounds of the module docstring."""

    def __init__(self, total_s: float, *, max_bytes: int = MAX_RESPONSE_BYTES, proxy: str | None = None):
        super().__init__(proxy=proxy)
        self.total_s, self.max_bytes = float(total_s), int(max_bytes)
        self.aborted = threading.Event()
        self._request = _Request()
        self._open: set[_Stream] = set()
        self._lock = threading.Lock()
        self._pool._network_backend = _Backend(self)  # httpcore's pool takes any NetworkBackend

    def _track(self, inner: httpcore2.NetworkStream) -> _Stream:
        stream = _Stream(inner, self)
        with self._lock:
            self._open.add(stream)
        return stream

    def _forget(self, stream: _Stream) -> None:
        with self._lock:
            self._open.discard(stream)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` with a fresh total deadline and byte count; a ConnectError once ``abort()`` was called."""
        if self.aborted.is_set():
            raise httpx2.ConnectError("aborted", request=request)
        self._request.deadline = time.monotonic() + self.total_s
        self._request.received = 0
        return super().handle_request(request)

    def abort(self) -> None:
        """Shut down every open connection and refuse new ones until ``reset()``."""
        self.aborted.set()
        with self._lock:
            streams = list(self._open)
        for stream in streams:
            sock = stream.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def reset(self) -> None:
        """Accept requests again after ``abort()``."""
        self.aborted.clear()


def bounded_client(url: str, total_s: float, *, max_bytes: int = MAX_RESPONSE_BYTES) -> httpx2.Client:
    """An ``httpx2.Client`` for ``url`` on a ``BoundedTransport`` (``client._transport``) of ``total_s`` seconds per
    request; the environment's proxy settings apply as they would to a plain client."""
    transport = BoundedTransport(total_s, max_bytes=max_bytes, proxy=_env_proxy(url))
    return httpx2.Client(transport=transport, timeout=httpx2.Timeout(total_s), follow_redirects=True)


def transport_of(client: httpx2.Client) -> BoundedTransport:
    """The BoundedTransport of a ``bounded_client``."""
    return client._transport
