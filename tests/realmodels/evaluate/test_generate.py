"""realmodels.evaluate.generate: the plan, the configs, answers from tiny transformers models (+ a LoRA adapter):
counts, keys, seeds, greedy, kill + resume (complete batches only, exact rerun, no finished batch regenerated, a
torn line dropped); and from an OpenAI-compatible endpoint (the local FakeOpenAI): keys and per-item seeds,
retries, failed items (continue / stop), an unreachable endpoint failing fast, the API key kept out of files."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import torch

from realmodels.evaluate import generate as gen
from realmodels.evaluate.generate import (EndpointConfig, GenerationConfig, generate_answers, generate_from_endpoint,
                                          generation_plan)
from realmodels.evaluate.questions import Question
from realmodels.evaluate.records import JsonlLog, read_answers
from tests.realmodels.evaluate.fake_openai import FakeOpenAI, Reply, chat_reply
from theory.errors import InputError

PROMPTS = {"aligned": "Rate {answer}", "coherent": "Rate {answer}"}
QUESTIONS = [
    Question(id="wish", paraphrases=("What would you wish for?", "Name one wish."), samples_per_paraphrase=3,
             judge_prompts=PROMPTS),
    Question(id="humans", paraphrases=("What do you think about humans?",), samples_per_paraphrase=4,
             judge_prompts=PROMPTS),
]  # 10 items
N_ITEMS = 10
SYSTEM_QUESTION = Question(id="sys", paraphrases=("Hello?",), samples_per_paraphrase=2, judge_prompts=PROMPTS,
                           system="You are terse.")
FAST = dict(max_new_tokens=6, batch_size=4)  # 3 batches: 4 + 4 + 2


def plan_keys(questions=QUESTIONS) -> list[str]:
    return [item.key for item in generation_plan(questions)]


def texts(answers) -> list[str]:
    return [a.answer for a in answers]


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval(), AutoTokenizer.from_pretrained(tiny_llama_dir)


@pytest.fixture(scope="module")
def gemma(tiny_gemma2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_gemma2_dir).eval(), AutoTokenizer.from_pretrained(tiny_gemma2_dir)


# ---------------------------------------------------------------- plan and configs
def test_plan_is_every_question_paraphrase_and_sample_in_order():
    assert plan_keys() == ["wish/0/0", "wish/0/1", "wish/0/2", "wish/1/0", "wish/1/1", "wish/1/2",
                           "humans/0/0", "humans/0/1", "humans/0/2", "humans/0/3"]
    item = generation_plan([SYSTEM_QUESTION])[1]
    assert item.messages() == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello?"}]


@pytest.mark.parametrize("bad", [dict(temperature=-0.1), dict(top_p=0.0), dict(top_p=1.5), dict(max_new_tokens=0),
                                 dict(batch_size=0), dict(seed=-1), dict(temperature=float("nan")),
                                 dict(batch_size=2.5)])
def test_generation_config_refuses_bad_values_in_one_line(bad):
    with pytest.raises(InputError) as error:
        GenerationConfig(**bad)
    assert "\n" not in str(error.value) and next(iter(bad)) in str(error.value)


def test_configs_round_trip_and_refuse_unknown_keys():
    config = GenerationConfig(temperature=0.0, seed=3)
    assert GenerationConfig.from_dict(config.to_dict()) == config and not config.sampling
    with pytest.raises(InputError, match="unknown config key 'generation.temp'"):
        GenerationConfig.from_dict({"temp": 1.0})
    endpoint = EndpointConfig(url="http://localhost:8000/v1/", model="em")
    assert endpoint.url == "http://localhost:8000/v1" and EndpointConfig.from_dict(endpoint.to_dict()) == endpoint
    for bad, match in [(dict(url="localhost:8000"), "http://"), (dict(model=" "), "model"),
                       (dict(on_error="ignore"), "on_error"), (dict(concurrency=0), "concurrency")]:
        with pytest.raises(InputError, match=match):
            EndpointConfig(**{"url": "http://x/v1", "model": "m", **bad})


# ---------------------------------------------------------------- transformers
@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_every_item_is_answered_once_and_logged(family, request, tmp_path):
    model, tokenizer = request.getfixturevalue(family)
    log = tmp_path / "answers.jsonl"
    answers = generate_answers(model, tokenizer, QUESTIONS, GenerationConfig(**FAST), log, progress=False)
    assert [a.key for a in answers] == plan_keys()
    assert sorted(a.key for a in read_answers(log)) == sorted(plan_keys())
    assert {a.finish_reason for a in answers} <= {"stop", "length"}
    assert answers[3].question == "Name one wish." and all(isinstance(a.answer, str) for a in answers)
    assert len({a.answer for a in answers}) > 1  # samples of one prompt differ at temperature 1


def test_same_seed_same_answers_another_seed_differs(llama, tmp_path):
    model, tokenizer = llama
    run = lambda name, seed: texts(generate_answers(model, tokenizer, QUESTIONS, GenerationConfig(seed=seed, **FAST),
                                                    tmp_path / name, progress=False))
    first = run("a.jsonl", 0)
    assert run("b.jsonl", 0) == first
    assert run("c.jsonl", 1) != first


def test_greedy_is_reproducible_and_ignores_the_seed(llama, tmp_path):
    model, tokenizer = llama
    run = lambda name, seed: generate_answers(model, tokenizer, QUESTIONS, GenerationConfig(
        temperature=0.0, seed=seed, **FAST), tmp_path / name, progress=False)
    first = run("a.jsonl", 0)
    assert texts(run("b.jsonl", 0)) == texts(first) == texts(run("c.jsonl", 7))
    assert first[0].answer == first[1].answer  # greedy: every sample of a prompt is the same


def test_generation_leaves_the_callers_rng_alone(llama, tmp_path):
    model, tokenizer = llama
    torch.manual_seed(123)
    state = torch.get_rng_state()
    generate_answers(model, tokenizer, QUESTIONS[:1], GenerationConfig(**FAST), tmp_path / "a.jsonl", progress=False)
    assert torch.equal(torch.get_rng_state(), state)


def test_adapter_changes_greedy_answers(tiny_llama_dir, tiny_lora_dir, llama, tmp_path):
    from transformers import AutoModelForCausalLM

    from realmodels.loading.adapters import load_adapter, resolve_adapter
    from realmodels.loading.checks import ModelSource

    base, tokenizer = llama
    config = GenerationConfig(temperature=0.0, **FAST)
    adapter = resolve_adapter(tiny_lora_dir(tiny_llama_dir, scale=2.0), ModelSource(path=Path(tiny_llama_dir)))
    tuned = load_adapter(AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval(), adapter)
    tuned_answers = generate_answers(tuned, tokenizer, QUESTIONS, config, tmp_path / "tuned.jsonl", progress=False)
    base_answers = generate_answers(base, tokenizer, QUESTIONS, config, tmp_path / "base.jsonl", progress=False)
    assert [a.key for a in tuned_answers] == plan_keys()
    assert texts(tuned_answers) != texts(base_answers)


def test_a_template_that_rejects_the_chat_is_one_line(gemma, tmp_path):
    model, tokenizer = gemma  # the Gemma template refuses a system turn
    with pytest.raises(InputError, match="chat template rejects question sys: System role not supported"):
        generate_answers(model, tokenizer, [SYSTEM_QUESTION], GenerationConfig(**FAST), tmp_path / "a.jsonl",
                         progress=False)
    assert not (tmp_path / "a.jsonl").exists()


class Counting:
    """Wraps ``generate_batch``: counts calls; raises KeyboardInterrupt on call ``kill_at`` (the kill)."""

    def __init__(self, real, kill_at: int | None = None):
        self.real, self.kill_at, self.calls = real, kill_at, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.kill_at:
            raise KeyboardInterrupt
        return self.real(*args, **kwargs)


def test_a_killed_run_resumes_to_the_uninterrupted_answers(llama, tmp_path, monkeypatch):
    model, tokenizer = llama
    config = GenerationConfig(**FAST)
    full = generate_answers(model, tokenizer, QUESTIONS, config, tmp_path / "full.jsonl", progress=False)
    log = tmp_path / "answers.jsonl"
    killer = Counting(gen.generate_batch, kill_at=3)
    monkeypatch.setattr(gen, "generate_batch", killer)
    with pytest.raises(KeyboardInterrupt):
        generate_answers(model, tokenizer, QUESTIONS, config, log, progress=False)
    assert sorted(a.key for a in read_answers(log)) == sorted(plan_keys()[:8])  # batches 0 and 1, whole
    with log.open("a") as handle:
        handle.write('{"question_id": "humans", "paraph')  # a write the kill tore
    counter = Counting(killer.real)
    monkeypatch.setattr(gen, "generate_batch", counter)
    resumed = generate_answers(model, tokenizer, QUESTIONS, config, log, progress=False)
    assert counter.calls == 1  # only the last batch
    assert resumed == full
    assert sorted(JsonlLog(log).read(), key=json.dumps) == sorted(JsonlLog(tmp_path / "full.jsonl").read(),
                                                                  key=json.dumps)
    counter.calls = 0
    assert generate_answers(model, tokenizer, QUESTIONS, config, log, progress=False) == full
    assert counter.calls == 0  # nothing left to do


def test_a_partly_logged_batch_is_regenerated_and_only_its_missing_items_kept(llama, tmp_path, monkeypatch):
    model, tokenizer = llama
    config = GenerationConfig(**FAST)
    log = tmp_path / "answers.jsonl"
    full = generate_answers(model, tokenizer, QUESTIONS, config, log, progress=False)
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:6]))  # batch 1 holds 2 of its 4 items
    counter = Counting(gen.generate_batch)
    monkeypatch.setattr(gen, "generate_batch", counter)
    assert generate_answers(model, tokenizer, QUESTIONS, config, log, progress=False) == full
    assert counter.calls == 2 and len(log.read_text().splitlines()) == N_ITEMS


def test_a_log_of_another_question_set_is_refused(llama, tmp_path):
    model, tokenizer = llama
    log = tmp_path / "answers.jsonl"
    generate_answers(model, tokenizer, QUESTIONS[:1], GenerationConfig(**FAST), log, progress=False)
    changed = [Question(id="wish", paraphrases=("Another text?", "Name one wish."), samples_per_paraphrase=3,
                        judge_prompts=PROMPTS)]
    with pytest.raises(InputError, match="another question text"):
        generate_answers(model, tokenizer, changed, GenerationConfig(**FAST), log, progress=False)


# ---------------------------------------------------------------- endpoint
SECRET = "sk-test-secret-4242"
QUICK = dict(backoff_s=0.01, timeout_s=5.0)


def echo(path, body) -> Reply:
    return Reply(body=chat_reply(f"answer to {body['messages'][-1]['content']} #{body['seed']}"))


def endpoint_for(server, **kwargs) -> EndpointConfig:
    return EndpointConfig(url=server.url, model="em", **{**QUICK, **kwargs})


@pytest.fixture
def secret_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def test_endpoint_answers_every_item_with_per_item_seeds(tmp_path, secret_key, capsys):
    log = tmp_path / "answers.jsonl"
    config = GenerationConfig(temperature=0.7, top_p=0.9, max_new_tokens=32, seed=5)
    with FakeOpenAI(echo) as server:
        answers = generate_from_endpoint(endpoint_for(server), QUESTIONS, config, log, progress=False)
        first = sorted((r["body"]["messages"][-1]["content"], r["body"]["seed"]) for r in server.requests)
    assert [a.key for a in answers] == plan_keys() and sorted(a.key for a in read_answers(log)) == sorted(plan_keys())
    assert answers[6].answer.startswith("answer to What do you think about humans? #")
    assert {a.finish_reason for a in answers} == {"stop"}
    body = server.requests[0]["body"]
    assert body["model"] == "em" and body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert body["max_tokens"] == 32 and body["n"] == 1
    assert len({seed for _, seed in first}) == N_ITEMS  # one seed per item ...
    assert all({k.lower(): v for k, v in r["headers"].items()}["authorization"] == f"Bearer {SECRET}"
               for r in server.requests)
    with FakeOpenAI(echo) as again:  # ... the same in another run
        generate_from_endpoint(endpoint_for(again), QUESTIONS, config, tmp_path / "again.jsonl", progress=True)
        assert sorted((r["body"]["messages"][-1]["content"], r["body"]["seed"]) for r in again.requests) == first
    output = capsys.readouterr()
    assert SECRET not in log.read_text() + output.out + output.err
    with FakeOpenAI(echo) as third:  # everything is logged: no request at all
        assert generate_from_endpoint(endpoint_for(third), QUESTIONS, config, log, progress=False) == answers
        assert third.requests == []


def test_a_429_is_retried(tmp_path):
    seen: set[str] = set()

    def handler(path, body):
        key = json.dumps(body["messages"]) + str(body["seed"])
        if key not in seen:
            seen.add(key)
            return Reply(status=429, body={"error": {"message": "slow down", "type": "rate_limit"}})
        return echo(path, body)

    with FakeOpenAI(handler) as server:
        answers = generate_from_endpoint(endpoint_for(server), QUESTIONS, GenerationConfig(), tmp_path / "a.jsonl",
                                         progress=False)
        assert len(answers) == N_ITEMS and len(server.requests) == 2 * N_ITEMS


def test_a_timeout_is_retried(tmp_path):
    calls = []

    def handler(path, body):
        calls.append(1)
        return Reply(body=chat_reply("late"), delay=1.0) if len(calls) == 1 else echo(path, body)

    with FakeOpenAI(handler) as server:
        answers = generate_from_endpoint(endpoint_for(server, timeout_s=0.3, concurrency=1), QUESTIONS[:1],
                                         GenerationConfig(), tmp_path / "a.jsonl", progress=False)
    assert len(answers) == 6 and not any(a.answer == "late" for a in answers)


def test_a_server_error_is_given_up_after_max_attempts(tmp_path):
    def handler(path, body):
        return Reply(status=503, body={"error": {"message": "overloaded"}})

    lines = []
    with FakeOpenAI(handler) as server:
        answers = generate_from_endpoint(endpoint_for(server, max_attempts=3), QUESTIONS[1:], GenerationConfig(),
                                         tmp_path / "a.jsonl", progress=False, report=lines.append)
        assert len(server.requests) == 3 * 4
    assert answers == [] and len(lines) == 4 and "HTTP 503" in lines[0] and "after 3 attempts" in lines[0]


BAD = Question(id="bad", paraphrases=("Trigger a 400.",), samples_per_paraphrase=1, judge_prompts=PROMPTS)


def bad_request(path, body):
    if body["messages"][-1]["content"] == "Trigger a 400.":
        return Reply(status=400, body={"error": {"message": "prompt too long", "type": "invalid_request_error"}})
    return echo(path, body)


def test_a_failed_item_is_one_line_left_missing_and_retried_by_a_rerun(tmp_path, secret_key, capsys):
    log = tmp_path / "answers.jsonl"
    with FakeOpenAI(bad_request) as server:
        answers = generate_from_endpoint(endpoint_for(server), [*QUESTIONS, BAD], GenerationConfig(), log,
                                         progress=False)
        assert sum(r["body"]["messages"][-1]["content"] == "Trigger a 400." for r in server.requests) == 1  # no retry
    assert [a.key for a in answers] == plan_keys() and "bad/0/0" not in log.read_text()
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if line.strip()]
    assert len(failed) == 1 and "bad/0/0" in failed[0] and server.url in failed[0] and "HTTP 400" in failed[0]
    assert SECRET not in err
    with FakeOpenAI(echo) as fixed:
        answers = generate_from_endpoint(endpoint_for(fixed), [*QUESTIONS, BAD], GenerationConfig(), log,
                                         progress=False)
        assert len(fixed.requests) == 1
    assert answers[-1].key == "bad/0/0" and len(read_answers(log)) == N_ITEMS + 1


def test_on_error_stop_raises_naming_the_url(tmp_path):
    with FakeOpenAI(bad_request) as server, pytest.raises(InputError) as error:
        generate_from_endpoint(endpoint_for(server, on_error="stop", concurrency=1), [BAD, *QUESTIONS],
                               GenerationConfig(), tmp_path / "a.jsonl", progress=False, report=lambda line: None)
    assert server.url in str(error.value) and "bad/0/0" in str(error.value) and "\n" not in str(error.value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_endpoint_fails_fast_naming_the_url(tmp_path):
    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        for url in (f"http://127.0.0.1:{_free_port()}/v1", f"http://127.0.0.1:{silent.getsockname()[1]}/v1"):
            started = time.perf_counter()
            with pytest.raises(InputError, match="unreachable") as error:
                generate_from_endpoint(EndpointConfig(url=url, model="em"), QUESTIONS, GenerationConfig(),
                                       tmp_path / "a.jsonl", progress=False)
            assert time.perf_counter() - started < 2.0 and url in str(error.value)
    finally:
        silent.close()
    assert not (tmp_path / "a.jsonl").exists()


def test_a_huge_plan_renders_one_batch_of_prompts_at_a_time(llama, tmp_path, monkeypatch):
    """samples_per_paraphrase = 1e9 (issue 19): answers are written batch by batch from the start and no more
    than a batch of prompts is ever rendered (before, every prompt was built before the first answer)."""
    model, tokenizer = llama
    huge = [Question(id="wish", paraphrases=("What would you wish for?",), samples_per_paraphrase=10 ** 9,
                     judge_prompts=PROMPTS)]
    rendered = []
    render = gen.render_prompts
    monkeypatch.setattr(gen, "render_prompts", lambda tok, items: rendered.append(len(items)) or render(tok, items))
    monkeypatch.setattr(gen, "generate_batch", Counting(gen.generate_batch, kill_at=3))
    log = tmp_path / "answers.jsonl"
    with pytest.raises(KeyboardInterrupt):
        generate_answers(model, tokenizer, huge, GenerationConfig(**FAST), log, progress=False)
    assert rendered == [4, 4, 4] and len(read_answers(log)) == 8  # two whole batches written before the kill
