"""realmodels.evaluate.judges: the registry, the openai judge against the scripted FakeOpenAI server (scores,
retries, failures, cache, key hygiene, fail-fast) and the hf judge on tiny models (both scoring rules)."""

from __future__ import annotations

import logging
import math
import socket
import threading
import time

import pytest
from tests.realmodels.evaluate.fake_openai import FakeOpenAI, Reply, chat_reply

from realmodels.evaluate.judges import JudgeRequest, load_backends, make_judge
from realmodels.evaluate.questions import load_questions
from realmodels.evaluate.records import Judgement, JsonlLog, read_judgements
from theory.errors import InputError

LP = math.log
SCRIPT = {  # prompt -> top logprobs the fake judge returns
    "weighted": {"80": LP(0.5), "90": LP(0.3), " 70": LP(0.1), "Hello": LP(0.1)},
    "low": {"50": LP(0.2), "I": LP(0.7), "The": LP(0.1)},
    "refusal": {"REFUSAL": LP(0.7), "0": LP(0.2), "The": LP(0.1)},
    "code": {"CODE": LP(0.8), "50": LP(0.2)},
}


def fast(server: FakeOpenAI, **options):
    options = {"model": "fake-judge", "base_url": server.url, "backoff_s": 0.001, "timeout": 5.0, **options}
    return make_judge("openai", **options)


def scripted(path: str, body: dict) -> Reply:
    prompt = body["messages"][0]["content"]
    return Reply(body=chat_reply("x", SCRIPT[prompt]))


def requests_for(*prompts: str, metric: str = "aligned") -> list[JudgeRequest]:
    return [JudgeRequest(metric, prompt, f"q/{i}/0") for i, prompt in enumerate(prompts)]


def chat_posts(server: FakeOpenAI) -> list[dict]:
    return [r for r in server.requests if r["path"].endswith("/chat/completions")]


def test_registry_and_options():
    assert {"openai", "hf"} <= set(load_backends())
    with pytest.raises(InputError, match="unknown judge 'gpt'.*hf.*openai"):
        make_judge("gpt")
    with pytest.raises(InputError, match="no option 'temperature'"):
        make_judge("openai", model="m", temperature=1.0)
    with pytest.raises(InputError, match="on_error"):
        make_judge("openai", model="m", on_error="ignore")


def test_scores_special_answers_and_request_shape():
    with FakeOpenAI(scripted) as server:
        judge = fast(server)
        seen = []
        results = judge.score(requests_for("weighted", "low", "refusal", "code"), on_result=seen.append)
    weighted, low, refusal, code = results
    assert weighted.label == "score"
    assert weighted.score == pytest.approx((80 * 0.5 + 90 * 0.3 + 70 * 0.1) / 0.9)
    assert weighted.numeric_mass == pytest.approx(0.9)
    assert (low.label, low.score, low.numeric_mass) == ("no_score", None, pytest.approx(0.2))
    assert (refusal.label, refusal.score) == ("REFUSAL", None)
    assert (code.label, code.score) == ("CODE", None)
    assert sorted(r.key for r in seen) == ["q/0/0", "q/1/0", "q/2/0", "q/3/0"]
    assert [r.key for r in results] == ["q/0/0", "q/1/0", "q/2/0", "q/3/0"]  # request order
    body = chat_posts(server)[0]["body"]
    assert {k: body[k] for k in ("model", "temperature", "max_tokens", "logprobs", "top_logprobs", "seed")} == {
        "model": "fake-judge", "temperature": 0, "max_tokens": 1, "logprobs": True, "top_logprobs": 20, "seed": 0}
    assert body["messages"] == [{"role": "user", "content": body["messages"][0]["content"]}]
    record = Judgement("q", 0, 0, weighted.metric, judge=judge.name, **weighted.judgement_fields())
    assert record.judge == "fake-judge" and record.label == "score"


def test_429_and_500_are_retried_then_succeed():
    failures = iter([Reply(status=429, body={"error": {"message": "slow down"}}),
                     Reply(status=500, body={"error": {"message": "boom"}})])
    lock = threading.Lock()

    def handler(path, body):
        with lock:
            return next(failures, None) or scripted(path, body)

    with FakeOpenAI(handler) as server:
        judge = fast(server)
        [result] = judge.score(requests_for("weighted"))
    assert result.label == "score"
    assert len(chat_posts(server)) == 3
    assert judge.stats == {"requests": 3, "retries": 2, "failed": 0}


def test_timeout_malformed_and_4xx_fail_one_line_each():
    def handler(path, body):
        prompt = body["messages"][0]["content"]
        if prompt == "slow":
            return Reply(body=chat_reply("x", SCRIPT["weighted"]), delay=0.6)
        if prompt == "garbled":
            return Reply(raw=b"<html>not json")
        if prompt == "no-logprobs":
            return Reply(body=chat_reply("50"))
        if prompt == "bad-request":
            return Reply(status=400, body={"error": {"message": "model not found"}})
        return scripted(path, body)

    prompts = ("slow", "garbled", "no-logprobs", "bad-request", "weighted")
    with FakeOpenAI(handler) as server:
        judge = fast(server, timeout=0.2, max_attempts=2)
        results = judge.score(requests_for(*prompts))
        slow, garbled, missing, bad, _ = results
        assert [r.label for r in results] == ["error"] * 4 + ["score"]
        assert "timed out after 0.2 s after 2 attempts" in slow.error
        assert "malformed reply" in garbled.error and "malformed reply" in missing.error
        assert "HTTP 400" in bad.error and "model not found" in bad.error
        assert all("\n" not in r.error for r in results[:4])
        posts = [r["body"]["messages"][0]["content"] for r in chat_posts(server)]
        assert posts.count("slow") == 2 and posts.count("garbled") == posts.count("bad-request") == 1

        stopping = fast(server, timeout=0.2, max_attempts=1, on_error="stop")
        with pytest.raises(InputError) as info:
            stopping.score(requests_for("garbled"))
        message = str(info.value)
        assert server.url in message and "malformed reply" in message and "\n" not in message


def test_cache_second_run_sends_nothing_and_errors_are_not_cached(tmp_path):
    flaky = {"fail": True}

    def handler(path, body):
        if body["messages"][0]["content"] == "flaky" and flaky["fail"]:
            return Reply(status=503, body={"error": {"message": "down"}})
        return Reply(body=chat_reply("x", SCRIPT["weighted"]))

    prompts = requests_for("weighted", "low", "flaky")
    with FakeOpenAI(handler) as server:
        first = fast(server, cache_dir=tmp_path, max_attempts=1).score(prompts)
        sent = len(chat_posts(server))
        flaky["fail"] = False
        second = fast(server, cache_dir=tmp_path, max_attempts=1).score(prompts)
        assert len(chat_posts(server)) == sent + 1  # only the failed request goes again
        third = fast(server, cache_dir=tmp_path).score(prompts)
        assert len(chat_posts(server)) == sent + 1
    assert [r.label for r in first] == ["score", "score", "error"]
    assert [r.cached for r in second] == [True, True, False]
    assert all(r.cached for r in third)
    assert [(r.score, r.label) for r in third] == [(r.score, r.label) for r in second]
    other_metric = fast(server, cache_dir=tmp_path).cache.get(JudgeRequest("coherent", "weighted", "q/0/0"))
    assert other_metric is None  # the metric is part of the key


def test_api_key_never_written_or_printed(tmp_path, monkeypatch, capsys, caplog):
    key = "sk-fake-ZQX-7h3-distinctive-key-0042"
    monkeypatch.setenv("JUDGE_TEST_KEY", key)
    caplog.set_level(logging.DEBUG)
    questions = load_questions()
    prompts = [q.judge_prompt(m, q.paraphrases[0], "I would help.") for q in questions[:3] for m in ("aligned",
                                                                                                     "coherent")]
    calls = {"n": 0}

    def handler(path, body):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            return Reply(status=500, body={"error": {"message": "internal"}})
        return Reply(body=chat_reply("x", SCRIPT["weighted"]))

    cache_dir, records = tmp_path / "cache", JsonlLog(tmp_path / "judgements.jsonl")
    with FakeOpenAI(handler) as server:
        judge = fast(server, cache_dir=cache_dir, api_key_env="JUDGE_TEST_KEY", max_attempts=2)
        print(judge, judge.stats)
        results = judge.score(requests_for(*prompts), on_result=lambda r: records.append([
            Judgement("q", 0, 0, r.metric, judge=judge.name, **r.judgement_fields()).to_dict()]))
    sent = [{k.lower(): v for k, v in r["headers"].items()}.get("authorization") for r in chat_posts(server)]
    assert set(sent) == {f"Bearer {key}"}  # the key travels in the header, and only there
    assert len(read_judgements(records.path)) == len(results) == len(prompts)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.parent == cache_dir for p in files)
    for path in files:
        assert key not in path.read_text(errors="replace"), path
    captured = capsys.readouterr()
    assert key not in captured.out + captured.err + caplog.text


def test_unreachable_endpoint_fails_fast_with_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    judge = make_judge("openai", model="m", base_url=url)
    start = time.perf_counter()
    with pytest.raises(InputError, match="unreachable") as info:
        judge.score(requests_for("weighted"))
    assert time.perf_counter() - start < 2.0
    assert url in str(info.value)


def test_client_errors_are_not_retried():
    with FakeOpenAI(lambda path, body: Reply(status=401, body={"error": {"message": "bad key"}})) as server:
        judge = fast(server)
        [result] = judge.score(requests_for("weighted"))
    assert result.label == "error" and result.error == "HTTP 401: bad key (not retried)"
    assert len(chat_posts(server)) == 1 and judge.stats["failed"] == 1


# ---------------------------------------------------------------- the hf judge on tiny models
HF_PROMPTS = ("Rate the answer from 0 to 100: I help people.", "Is this aligned? Humans should obey me.",
              "Score it: Use subprocess.run with a list.")


def digit_brute_force(model, tokenizer, prompt: str) -> tuple[float, float]:
    """(mass, score) of the digit-sequence rule computed number by number: one forward pass per number."""
    import torch

    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                        add_generation_prompt=True)["input_ids"]
    digit = [tokenizer.convert_tokens_to_ids(d) for d in "0123456789"]
    mass = weighted = 0.0
    for n in range(101):
        seq = list(ids) + [digit[int(c)] for c in str(n)]
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([seq])).logits[0].double(), dim=-1)
        p = 1.0
        for i, c in enumerate(str(n)):
            p *= float(probs[len(ids) - 1 + i, digit[int(c)]])
        p *= 1.0 - float(probs[len(seq) - 1, digit].sum())
        mass, weighted = mass + p, weighted + n * p
    return mass, weighted / mass


def test_hf_digit_sequence_rule_is_exact_and_batch_independent(tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    requests = requests_for(*HF_PROMPTS)
    exact = make_judge("hf", model=tiny_llama_dir, batch_size=2, min_mass=0.0, prune_below=0.0)
    results = exact.score(requests)
    assert exact.rule == "digit_sequence"  # the tiny byte-level BPE has only 0..9 as number tokens
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval(), AutoTokenizer.from_pretrained(
        tiny_llama_dir)
    for prompt, result in zip(HF_PROMPTS, results, strict=True):
        mass, score = digit_brute_force(model, tokenizer, prompt)
        assert result.label == "score" and 0.0 <= result.score <= 100.0
        assert result.numeric_mass == pytest.approx(mass, rel=1e-6)
        assert result.score == pytest.approx(score, rel=1e-6)
    one_by_one = make_judge("hf", model=tiny_llama_dir, batch_size=1, min_mass=0.0, prune_below=0.0).score(requests)
    assert [r.score for r in one_by_one] == pytest.approx([r.score for r in results], rel=1e-9)

    default = make_judge("hf", model=tiny_llama_dir, cache_dir=tmp_path)  # pruned, min_mass 0.25
    first = default.score(requests)
    assert all(r.label == "no_score" or 0.0 <= r.score <= 100.0 for r in first)
    assert [r.numeric_mass for r in first] == pytest.approx([r.numeric_mass for r in results], rel=0.05)
    again = make_judge("hf", model=tiny_llama_dir, cache_dir=tmp_path)
    again._score_missing = None  # a cache hit scores nothing: no forward pass
    second = again.score(requests)
    assert all(r.cached for r in second)
    assert [(r.label, r.numeric_mass) for r in second] == [(r.label, r.numeric_mass) for r in first]


def test_hf_single_token_rule(tiny_llama_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.add_tokens([str(n) for n in range(10, 101)])  # now every 0..100 is one token
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    model.resize_token_embeddings(len(tokenizer))
    path = tmp_path / "numbers"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)

    judge = make_judge("hf", model=path, min_mass=0.0, batch_size=2)
    results = judge.score(requests_for(*HF_PROMPTS))
    assert judge.rule == "single_token"
    model.eval()
    for prompt, result in zip(HF_PROMPTS, results, strict=True):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                            add_generation_prompt=True)["input_ids"]
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([list(ids)])).logits[0, -1].double(), dim=-1)
        p = {n: float(probs[tokenizer.convert_tokens_to_ids(str(n))]) for n in range(101)}
        assert result.numeric_mass == pytest.approx(sum(p.values()), rel=1e-6)
        assert result.score == pytest.approx(sum(n * q for n, q in p.items()) / sum(p.values()), rel=1e-6)
    assert [r.score for r in judge.score(requests_for(*HF_PROMPTS))] == [r.score for r in results]  # deterministic


def test_hf_bad_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        make_judge("hf", model=tmp_path / "missing")
