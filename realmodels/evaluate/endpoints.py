"""The reachability check of an OpenAI-compatible endpoint, shared by the answer generator and the ``openai`` judge:
before any work, GET ``{url}/models`` with a short time-out. Unreachable or silent, or a rejected key (401/403),
is one InputError naming the URL (the key itself never appears); when the endpoint lists its models and a
``model`` is given, it must be among them; any other HTTP answer counts as reachable (some servers have no
/models).

Every request goes through ``realmodels.evaluate.http.bounded_client`` (a total time per request, a cap on the
response's size, abortable), and every message built from a server's text is passed through
``runio.redact.redact``: a server that echoes the Authorization header never puts the key in a message."""

from __future__ import annotations

from runio.redact import redact, register_secret
from theory.errors import InputError


def api_key(env: str) -> str:
    """The API key in the environment variable ``env``; "EMPTY" when unset (local servers need none). It is only
    ever put in a request's Authorization header, never in a file, record or message (it is registered with
    ``runio.redact`` so that no message can carry it)."""
    import os

    key = os.environ.get(env) or "EMPTY"
    register_secret(key)
    return key


def openai_client(url: str | None, key: str, timeout: float):
    """An ``openai.OpenAI`` client that never retries by itself, on a ``bounded_client`` of ``timeout`` seconds
    per request (``realmodels.evaluate.http.transport_of(client._client)`` aborts its requests). Without ``url``
    it talks to ``$OPENAI_BASE_URL`` when set (as the ``openai`` client itself does), else to OpenAI's API."""
    import os

    import openai

    from realmodels.evaluate.http import bounded_client

    base = url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    return openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=timeout,
                         http_client=bounded_client(base, timeout))


def abort(client) -> None:
    """Abort every in-flight request of an ``openai_client`` at once (blocked reads wake with an error)."""
    from realmodels.evaluate.http import transport_of

    transport_of(client._client).abort()


PROBE_TIMEOUT_S = 1.5  # seconds: a local server answers in milliseconds, a remote API in well under a second


def _short(text, limit: int = 200) -> str:
    line = " ".join(redact(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def check_endpoint(url: str, api_key: str, *, role: str, api_key_env: str, model: str | None = None,
                   timeout: float = PROBE_TIMEOUT_S) -> None:
    """InputError unless ``url`` answers (module docstring); ``role`` names it ("generation endpoint", ...)."""
    import httpx2

    from realmodels.evaluate.http import ResponseTooLarge, bounded_client

    url = url.rstrip("/")
    try:
        with bounded_client(url, timeout) as client:
            response = client.get(f"{url}/models", headers={"Authorization": f"Bearer {api_key}"})
    except httpx2.TimeoutException:
        raise InputError(f"{role} {url} is unreachable (no answer within {timeout:g} s)") from None
    except (httpx2.HTTPError, ResponseTooLarge) as exc:
        raise InputError(f"{role} {url} is unreachable ({type(exc).__name__}: {_short(exc) or 'no answer'})") from None
    if response.status_code in (401, 403):
        raise InputError(f"{role} {url} rejected the API key from ${api_key_env} (HTTP {response.status_code})")
    if model is None:
        return
    try:
        served = [entry["id"] for entry in response.json()["data"]] if response.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        served = None
    if served and model not in served:
        served_text = _short(", ".join(map(str, served[:10])))
        raise InputError(f"{role} {url} serves no model {model!r} (it serves: {served_text})")


RETRY_STATUS = (408, 409, 429)  # and every 5xx: worth another attempt
MAX_BACKOFF_S = 30.0


class RequestFailed(Exception):
    """A request that failed for good: ``reason`` (one line), and whether it was retried until ``attempts``."""

    def __init__(self, reason: str, *, retried: bool, attempts: int):
        super().__init__(reason)
        self.reason, self.retried, self.attempts = reason, retried, attempts

    def line(self) -> str:
        """``reason after N attempts`` or ``reason (not retried)``."""
        return f"{self.reason} after {self.attempts} attempts" if self.retried else f"{self.reason} (not retried)"


def describe_error(exc: BaseException, timeout: float) -> str:
    """One line about an OpenAI-client failure: a time-out, an HTTP status, a connection failure, a response over
    the size cap, a malformed reply; redacted (``runio.redact``) whatever the server sent."""
    import openai

    from realmodels.evaluate.http import ResponseTooLarge

    if isinstance(exc, ResponseTooLarge):
        return str(exc)
    if isinstance(exc, openai.APITimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, openai.APIStatusError):
        detail = " ".join(redact(exc.message).split())
        detail = detail.split(" - ", 1)[1] if detail.startswith("Error code:") and " - " in detail else detail
        return f"HTTP {exc.status_code}: {_short(detail)}"
    if isinstance(exc, openai.APIConnectionError):
        return f"connection failed: {_short(exc.__cause__ or exc) or type(exc).__name__}"
    return f"malformed reply: {type(exc).__name__}: {_short(exc)}"


def call_with_retries(call, *, max_attempts: int, backoff_s: float, timeout: float, wait=None, on_retry=None):
    """``call()`` until it returns. Retried: HTTP 408/409/429/5xx, connection errors and time-outs, after
    backoff_s · 2^(k−1) · U(0.5, 1.5) seconds (at most ``MAX_BACKOFF_S``; ``wait(seconds)`` sleeps and may return
    True to give up, e.g. a cancellation event's ``wait``; ``wait(0)`` returning True after a failure gives up at
once, unreported); anything else — another HTTP status, a malformed reply
    (ValueError, TypeError, KeyError, AttributeError, IndexError) — fails at once. ``on_retry(reason, attempt,
    delay)`` is told of every retry. Raises ``RequestFailed``."""
    import random
    import time

    import openai

    wait = wait or time.sleep
    reason = ""
    for attempt in range(1, max_attempts + 1):
        try:
            return call()
        except openai.APIStatusError as exc:
            reason = describe_error(exc, timeout)
            if exc.status_code not in RETRY_STATUS and exc.status_code < 500:
                raise RequestFailed(reason, retried=False, attempts=attempt) from None
        except openai.APIConnectionError as exc:  # time-outs included
            reason = describe_error(exc, timeout)
        except (openai.APIError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise RequestFailed(describe_error(exc, timeout), retried=False, attempts=attempt) from None
        if wait(0):  # cancelled meanwhile (the failure may be the abort itself): no retry, nothing to report
            raise RequestFailed("cancelled", retried=False, attempts=attempt)
        if attempt < max_attempts:
            delay = min(backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5), MAX_BACKOFF_S)
            if on_retry is not None:
                on_retry(reason, attempt, delay)
            if wait(delay):
                raise RequestFailed("cancelled", retried=False, attempts=attempt)
    raise RequestFailed(reason, retried=True, attempts=max_attempts)
