"""The ``openai`` judge: any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp server, Ollama) asked for one
token at temperature 0 with its top-20 logprobs, scored by ``theory.judging.logprob_score`` (the single-token
rule: it assumes every number 0..100 is one token of the judge's tokenizer, true of GPT-4o's).

Requests run on ``concurrency`` threads. The client never retries by itself (``max_retries=0``): 408/409/429,
5xx, timeouts and connection errors are retried by ``realmodels.evaluate.endpoints.call_with_retries`` (the one
retry policy, shared with the endpoint generator: exponential backoff with jitter), each retry logged and counted
in ``stats``; other errors (4xx, a malformed body) fail at once. A request that still fails is a result with
label "error" and a one-line ``error`` (redacted: a server echoing the key never puts it in a message);
``on_error="stop"`` raises an InputError naming the endpoint instead. ``timeout`` bounds each request's total
time (``realmodels.evaluate.http``); when scoring stops early (on_error="stop", Ctrl-C) the requests in flight are
aborted and no retry starts. The API key comes from the environment variable ``api_key_env`` ("EMPTY" when unset:
local servers need none) and is only ever sent in the request header."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from realmodels.evaluate.judges import (CachedJudge, JudgeCache, JudgeRequest, JudgeResult, check_on_error,
                                       register_judge)
from realmodels.evaluate.endpoints import api_key
from theory.errors import InputError
from theory.judging import logprob_score

logger = logging.getLogger(__name__)


class MalformedReply(ValueError):
    """The endpoint answered 2xx with a body that has no first-token top logprobs."""


def top_logprobs_of(completion) -> dict[str, float]:
    """{token: logprob} of the first generated token's top logprobs."""
    try:
        first = completion.choices[0].logprobs.content[0]
        return {entry.token: float(entry.logprob) for entry in first.top_logprobs}
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        raise MalformedReply(f"malformed reply: no first-token top_logprobs ({type(exc).__name__})") from None


@register_judge("openai")
class OpenAIJudge(CachedJudge):
    """Options: ``model`` (the judge model, its ``name``), ``base_url`` (None: the client's default, OpenAI),
    ``api_key_env``, ``timeout`` (s per request), ``concurrency``, ``max_attempts``, ``backoff_s``, ``on_error``
    ("continue" | "stop"), ``min_mass``, ``cache_dir`` (None: no cache), ``check_timeout`` (s),
    ``top_logprobs``."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 30.0, concurrency: int = 8, max_attempts: int = 5, backoff_s: float = 1.0,
                 on_error: str = "continue", min_mass: float = 0.25, cache_dir: str | Path | None = None,
                 check_timeout: float = 5.0, top_logprobs: int = 20):
        from realmodels.evaluate.endpoints import openai_client

        if not isinstance(model, str) or not model.strip():
            raise InputError("the openai judge needs a model name")
        for option, value in (("concurrency", concurrency), ("max_attempts", max_attempts),
                              ("top_logprobs", top_logprobs)):
            if not isinstance(value, int) or value < 1:
                raise InputError(f"openai judge: {option} must be an integer >= 1, got {value!r}")
        for option, value in (("timeout", timeout), ("check_timeout", check_timeout), ("backoff_s", backoff_s)):
            if not isinstance(value, int | float) or not value >= 0 or (value == 0 and option != "backoff_s"):
                raise InputError(f"openai judge: {option} must be > 0, got {value!r}")
        self.name, self.model = model, model
        self.on_error = check_on_error(on_error)
        self.timeout, self.check_timeout, self.concurrency = float(timeout), float(check_timeout), concurrency
        self.max_attempts, self.backoff_s = max_attempts, backoff_s
        self.min_mass, self.top_logprobs = min_mass, top_logprobs
        self.api_key_env = api_key_env
        self._client = openai_client(base_url, api_key(api_key_env), self.timeout)
        self._stopping = threading.Event()  # set while an early stop aborts the requests in flight
        self.url = str(self._client.base_url).rstrip("/")
        self.cache = JudgeCache(cache_dir, self.name, f"openai/top{top_logprobs}/min_mass={min_mass}")
        self.stats = {"requests": 0, "retries": 0, "failed": 0}
        self._lock = threading.Lock()
        self._checked = False

    def __repr__(self) -> str:
        return f"OpenAIJudge(model={self.model!r}, url={self.url!r})"

    def check_endpoint(self) -> None:
        """Fail fast (``check_timeout``) with the URL named when the endpoint cannot be reached or rejects the key
        (``realmodels.evaluate.endpoints.check_endpoint``)."""
        from realmodels.evaluate.endpoints import check_endpoint

        if self._checked:
            return
        check_endpoint(self.url, self._client.api_key, role="judge endpoint", api_key_env=self.api_key_env,
                       timeout=self.check_timeout)
        self._checked = True

    check = check_endpoint

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def _request(self, request: JudgeRequest) -> JudgeResult:
        """One scoring request with ``realmodels.evaluate.endpoints.call_with_retries``."""
        from realmodels.evaluate.endpoints import RequestFailed, call_with_retries

        def ask() -> JudgeResult:
            self._count("requests")
            completion = self._client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": request.prompt}], temperature=0,
                max_tokens=1, logprobs=True, top_logprobs=self.top_logprobs, seed=0)
            return JudgeResult.of(request, logprob_score(top_logprobs_of(completion), min_mass=self.min_mass))

        def retrying(reason: str, attempt: int, delay: float) -> None:
            self._count("retries")
            logger.warning("judge %s: %s (attempt %d/%d), retrying in %.2f s", self.url, reason, attempt,
                           self.max_attempts, delay)

        try:
            return call_with_retries(ask, max_attempts=self.max_attempts, backoff_s=self.backoff_s,
                                     timeout=self.timeout, on_retry=retrying, wait=self._stopping.wait)
        except RequestFailed as failure:
            self._count("failed")
            return JudgeResult.failed(request, failure.line())

    def _score_missing(self, requests: list[JudgeRequest]):
        from realmodels.evaluate.endpoints import abort
        from realmodels.evaluate.http import transport_of

        self._stopping.clear()
        transport_of(self._client._client).reset()
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests)), thread_name_prefix="judge")
        futures = {pool.submit(self._request, request): index for index, request in enumerate(requests)}
        finished = False
        try:
            for future in as_completed(futures):
                result = future.result()
                if result.label == "error" and self.on_error == "stop":
                    raise InputError(f"judge endpoint {self.url}: request {result.key} ({result.metric}) failed: "
                                     f"{result.error}")
                yield futures[future], result
            finished = True
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            if not finished:  # stopped early: end the requests in flight now, start no retry
                self._stopping.set()
                abort(self._client)
                pool.shutdown(wait=True)
