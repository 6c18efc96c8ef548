"""The reachability check of an OpenAI-compatible endpoint, shared by the answer generator and the ``openai`` judge:
before any work, GET ``{url}/models`` with a short time-out. Unreachable or silent, or a rejected key (401/403),
is one InputError naming the URL (the key itself never appears); when the endpoint lists its models and a
``model`` is given, it must be among them; any other HTTP answer counts as reachable (some servers have no
/models)."""

from __future__ import annotations

from theory.errors import InputError

PROBE_TIMEOUT_S = 1.5  # seconds: a local server answers in milliseconds, a remote API in well under a second


def _short(text, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def check_endpoint(url: str, api_key: str, *, role: str, api_key_env: str, model: str | None = None,
                   timeout: float = PROBE_TIMEOUT_S) -> None:
    """InputError unless ``url`` answers (module docstring); ``role`` names it ("generation endpoint", ...)."""
    import httpx

    url = url.rstrip("/")
    try:
        response = httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
    except httpx.TimeoutException:
        raise InputError(f"{role} {url} is unreachable (no answer within {timeout:g} s)") from None
    except httpx.HTTPError as exc:
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
        raise InputError(f"{role} {url} serves no model {model!r} (it serves: {', '.join(map(str, served[:10]))})")
