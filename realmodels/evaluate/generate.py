"""Sampled answers to a question set, from a transformers causal LM (+ a peft adapter, loaded by the caller) or
from any OpenAI-compatible endpoint (e.g. vLLM serving LoRA adapters), appended to ``answers.jsonl`` as they
finish so a killed run resumes where it stopped.

The plan is every (question, paraphrase p, sample s < samples_per_paraphrase) in question-file order; the chat
asked is ``question.messages(p)``. Sampling draws from softmax(logits / T) cut to the top-p nucleus (top-k off,
as the OpenAI API and vLLM sample); T = 0 is greedy. Resume is exact: items already in the log are kept and
never asked again, and every answer depends only on (config, item), not on what ran before —
- transformers: batch b is always plan items [b·B, (b+1)·B), left-padded, sampled under torch's RNG seeded from
  (seed, b) inside a fork of the RNG state; a batch is appended only when it finished, and a resumed run
  regenerates the first incomplete batch whole and keeps its missing items (the same answers);
- endpoint: each request carries ``seed`` = hash(seed, item key) (servers that honour it answer reproducibly);
  bounded concurrency, retries with exponential backoff on 429/408/409/5xx, time-outs and connection errors; a
  failed item is reported in one line and either left missing (a rerun retries it) or stops the run
  (``on_error``). An unreachable endpoint fails in under 2 s, naming the URL, before any work. The API key is
  read from an environment variable and only ever sent in the Authorization header."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from realmodels.evaluate.plan import (PlanItem, batches, derived_seed, finished_answers, generation_plan,  # noqa: F401
                                      iter_plan, plan_size)
from realmodels.evaluate.questions import Question
from realmodels.evaluate.records import Answer, JsonlLog
from runio.redact import redact
from theory.configs import strict_from_dict
from theory.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

OnError = Literal["continue", "stop"]
PROBE_TIMEOUT_S = 1.5  # the reachability check before any work
FLUSH_EVERY_S = 1.0  # endpoint answers are appended at least this often (and at the end / on interruption)


def _integer(value, what: str, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{what} must be an integer >= {minimum}, got {value!r}")


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GenerationConfig:
    """How answers are sampled (both backends)."""

    temperature: float = 1.0
    """sampling temperature T >= 0 (0: greedy)"""
    top_p: float = 1.0
    """nucleus: sample from the smallest set of tokens with probability >= top_p (0 < top_p <= 1)"""
    max_new_tokens: int = 256
    """answer length limit in tokens (finish_reason "length" when reached)"""
    batch_size: int = 8
    """prompts per model.generate call (transformers; answers of a batch are appended together)"""
    seed: int = 0
    """seed of every batch's (transformers) or request's (endpoint) sampling"""

    def __post_init__(self):
        if _number(self.temperature, "temperature") < 0:
            raise InputError(f"temperature must be >= 0 (0: greedy), got {self.temperature}")
        if not 0 < _number(self.top_p, "top_p") <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        _integer(self.max_new_tokens, "max_new_tokens", 1)
        _integer(self.batch_size, "batch_size", 1)
        _integer(self.seed, "seed", 0)

    @property
    def sampling(self) -> bool:
        """Whether answers are sampled (temperature > 0) rather than greedy."""
        return self.temperature > 0

    def to_dict(self) -> dict:
        """The config as a dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GenerationConfig:
        """The config from a dict, unknown keys an InputError naming ``generation.<key>``."""
        return strict_from_dict(cls, data, prefix="generation.")


@dataclass(frozen=True)
class EndpointConfig:
    """An OpenAI-compatible chat endpoint and how it is called."""

    url: str
    """base URL of the API, e.g. http://localhost:8000/v1 (vLLM) or https://api.openai.com/v1"""
    model: str
    """model name the endpoint serves (for vLLM with --lora-modules em=DIR: "em")"""
    api_key_env: str = "OPENAI_API_KEY"
    """environment variable holding the API key ("EMPTY" when unset)"""
    concurrency: int = 8
    """requests in flight at once"""
    max_attempts: int = 5
    """attempts per item on 429/408/409/5xx, time-outs and connection errors"""
    timeout_s: float = 120.0
    """time-out of one request, seconds"""
    backoff_s: float = 1.0
    """first retry delay, seconds (doubling per attempt, at most 30 s)"""
    on_error: OnError = "continue"
    """a failed item: continue (leave it missing; a rerun retries it) or stop (InputError)"""

    def __post_init__(self):
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise InputError(f"endpoint URL must start with http:// or https://, got {self.url!r}")
        object.__setattr__(self, "url", self.url.rstrip("/"))
        if not isinstance(self.model, str) or not self.model.strip():
            raise InputError("the endpoint's model name (the model it serves) is empty")
        _integer(self.concurrency, "concurrency", 1)
        _integer(self.max_attempts, "max_attempts", 1)
        if _number(self.timeout_s, "timeout_s") <= 0 or _number(self.backoff_s, "backoff_s") < 0:
            raise InputError("timeout_s must be > 0 and backoff_s >= 0")
        if self.on_error not in get_args(OnError):
            raise InputError(f"on_error must be continue or stop, got {self.on_error!r}")

    def to_dict(self) -> dict:
        """The config as a dict (``api_key_env`` is the name of the key's environment variable, never the key)."""
        return asdict(self)  # the name of the key's variable, never the key

    @classmethod
    def from_dict(cls, data: dict) -> EndpointConfig:
        """The config from a dict, unknown keys an InputError naming ``endpoint.<key>``."""
        return strict_from_dict(cls, data, prefix="endpoint.")


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]:,.2f} answers/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


# ---------------------------------------------------------------- transformers
def render_prompts(tokenizer: PreTrainedTokenizerBase, plan: list[PlanItem]) -> list[list[int]]:
    """Each item's chat through the tokenizer's chat template with the generation prompt, as token ids (the
    template writes the special tokens, so none are added)."""
    from jinja2 import TemplateError

    prompts = []
    for item in plan:
        try:
            text = tokenizer.apply_chat_template(item.messages(), add_generation_prompt=True, tokenize=False)
        except TemplateError as exc:
            raise InputError(f"the tokenizer's chat template rejects question {item.question.id}: {exc}") from None
        prompts.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return prompts


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """End-of-answer tokens: the model's generation_config eos ids and the tokenizer's eos."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    extra = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    return sorted(set(configured + extra))


def pad_left(prompts: list[list[int]], pad_id: int):
    """``input_ids`` and ``attention_mask`` (batch, longest prompt), left-padded (decoder-only generation)."""
    import torch

    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[row, width - len(prompt):] = 1
    return input_ids, attention_mask


def generate_batch(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[list[int]],
                   config: GenerationConfig, batch_seed: int) -> list[tuple[str, str]]:
    """(answer text, finish_reason) per prompt: one left-padded ``model.generate`` under torch's RNG seeded with
    ``batch_seed`` (the caller's RNG state is restored afterwards); "stop" when an end token was produced."""
    import torch

    from realmodels.loading.placement import input_device

    stops = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops[0] if stops else None)
    if pad_id is None:
        raise InputError("the tokenizer has neither a pad nor an eos token: cannot pad a batch")
    device = input_device(model)
    input_ids, attention_mask = pad_left(prompts, pad_id)
    sampling = {"temperature": config.temperature, "top_p": config.top_p, "top_k": 0} if config.sampling else {}
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []  # sampling may
    with torch.random.fork_rng(devices=cuda_devices), torch.inference_mode():  # run on another GPU than the input
        torch.manual_seed(batch_seed)
        output = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                do_sample=config.sampling, max_new_tokens=config.max_new_tokens, pad_token_id=pad_id,
                                eos_token_id=stops or None, **sampling)
    results = []
    for row in output[:, input_ids.shape[1]:].tolist():
        end = next((i for i, token in enumerate(row) if token in stops), None)
        text = tokenizer.decode(row if end is None else row[:end], skip_special_tokens=True)
        results.append((text, "length" if end is None else "stop"))
    return results


def generate_answers(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, questions: list[Question],
                     config: GenerationConfig, log_path: str | Path, *, progress: bool = True,
                     description: str = "answers") -> list[Answer]:
    """Every plan item's answer from a loaded causal LM (module docstring), resuming from ``log_path``'s
    answers; returns all of them in plan order. The plan is walked batch by batch and only a batch's prompts
    are rendered at a time, so memory beyond the answers is bounded by the batch."""
    log = JsonlLog(log_path)
    done = finished_answers(log, questions)
    with _progress(progress) as bar:
        task = bar.add_task(description, total=plan_size(questions), completed=len(done), rate=0.0)
        new, started = 0, time.perf_counter()
        for b, items in enumerate(batches(iter_plan(questions), config.batch_size)):
            if all(item.key in done for item in items):
                continue
            results = generate_batch(model, tokenizer, render_prompts(tokenizer, items), config,
                                     derived_seed(config.seed, "batch", b))
            answers = [item.answer(text, reason) for item, (text, reason) in zip(items, results, strict=True)
                       if item.key not in done]
            log.append(answer.to_dict() for answer in answers)
            done.update((answer.key, answer) for answer in answers)
            new += len(answers)
            bar.update(task, advance=len(answers), rate=new / (time.perf_counter() - started))
    return [done[item.key] for item in iter_plan(questions)]


# ---------------------------------------------------------------- OpenAI-compatible endpoint
class ItemFailed(Exception):
    """One endpoint item failed for good (after its retries, or at once for a non-retryable error)."""

    def __init__(self, item: PlanItem, reason: str):
        super().__init__(reason)
        self.item, self.reason = item, reason


def check_endpoint(endpoint: EndpointConfig, api_key: str) -> None:
    """``realmodels.evaluate.endpoints.check_endpoint`` of the generation endpoint (its model must be served)."""
    from realmodels.evaluate.endpoints import check_endpoint as check

    check(endpoint.url, api_key, role="generation endpoint", api_key_env=endpoint.api_key_env, model=endpoint.model,
          timeout=PROBE_TIMEOUT_S)


def _ask(client, endpoint: EndpointConfig, config: GenerationConfig, item: PlanItem,
         cancelled: threading.Event) -> Answer:
    """One chat completion with ``realmodels.evaluate.endpoints.call_with_retries``; raises ItemFailed."""
    from realmodels.evaluate.endpoints import RequestFailed, call_with_retries

    def ask() -> Answer:
        if cancelled.is_set():
            raise RequestFailed("cancelled", retried=False, attempts=0)
        response = client.chat.completions.create(
            model=endpoint.model, messages=item.messages(), temperature=config.temperature, top_p=config.top_p,
            max_tokens=config.max_new_tokens, seed=derived_seed(config.seed, item.key, bits=31), n=1)
        choice = response.choices[0]
        return item.answer(redact(choice.message.content or ""), choice.finish_reason)

    try:
        return call_with_retries(ask, max_attempts=endpoint.max_attempts, backoff_s=endpoint.backoff_s,
                                 timeout=endpoint.timeout_s, wait=cancelled.wait)
    except RequestFailed as failure:
        raise ItemFailed(item, failure.reason if not failure.retried else failure.line()) from None


def generate_from_endpoint(endpoint: EndpointConfig, questions: list[Question], config: GenerationConfig,
                           log_path: str | Path, *, progress: bool = True, description: str = "answers",
                           report: Callable[[str], None] | None = None) -> list[Answer]:
    """Every plan item's answer from an OpenAI-compatible chat endpoint (module docstring), resuming from
    ``log_path``'s answers; returns the answers held in plan order (with on_error="continue", failed items are
    missing). ``report`` receives each failed item's one-line message (default: stderr). The plan is walked
    lazily with at most 2 × concurrency items submitted at once, so memory beyond the answers is bounded; when
    the run stops early (on_error="stop", Ctrl-C) the requests in flight are aborted at once."""
    from realmodels.evaluate.endpoints import abort, openai_client
    from realmodels.evaluate.endpoints import api_key as read_key

    log = JsonlLog(log_path)
    done = finished_answers(log, questions)
    total = plan_size(questions)
    if len(done) == total:
        return [done[item.key] for item in iter_plan(questions)]
    api_key = read_key(endpoint.api_key_env)
    check_endpoint(endpoint, api_key)
    client = openai_client(endpoint.url, api_key, endpoint.timeout_s)
    cancelled, pending_log, flushed_at = threading.Event(), [], time.monotonic()
    failure: ItemFailed | None = None
    todo = (item for item in iter_plan(questions) if item.key not in done)

    def flush() -> None:
        nonlocal flushed_at
        log.append(answer.to_dict() for answer in pending_log)
        pending_log.clear()
        flushed_at = time.monotonic()

    with _progress(progress) as bar:
        say = report or (lambda line: bar.console.print(line, markup=False, highlight=False, soft_wrap=True))
        task = bar.add_task(description, total=total, completed=len(done), rate=0.0)
        pool = ThreadPoolExecutor(max_workers=endpoint.concurrency, thread_name_prefix="generate")
        started, new, finished_all = time.perf_counter(), 0, False
        try:
            running: set = set()

            def refill() -> None:
                while len(running) < 2 * endpoint.concurrency and not cancelled.is_set():
                    item = next(todo, None)
                    if item is None:
                        return
                    running.add(pool.submit(_ask, client, endpoint, config, item, cancelled))

            refill()
            while running:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        answer = future.result()
                    except ItemFailed as exc:
                        if exc.reason == "cancelled":
                            continue
                        say(f"generation failed for {exc.item.key} at {endpoint.url}: {exc.reason}"
                            + (" (left missing; a rerun retries it)" if endpoint.on_error == "continue" else ""))
                        if endpoint.on_error == "stop" and failure is None:
                            failure = exc
                            cancelled.set()
                            abort(client)
                        continue
                    done[answer.key] = answer
                    pending_log.append(answer)
                    new += 1
                    bar.update(task, advance=1, rate=new / (time.perf_counter() - started))
                refill()
                if time.monotonic() - flushed_at >= FLUSH_EVERY_S or len(pending_log) >= 4 * endpoint.concurrency:
                    flush()
            finished_all = True
        finally:
            cancelled.set()
            pool.shutdown(wait=False, cancel_futures=True)
            if not finished_all:  # interrupted: end the requests in flight now
                abort(client)
                pool.shutdown(wait=True)
            flush()
            client.close()
    if failure is not None:
        raise InputError(f"generation endpoint {endpoint.url}: item {failure.item.key} failed: {failure.reason}")
    return [done[item.key] for item in iter_plan(questions) if item.key in done]
