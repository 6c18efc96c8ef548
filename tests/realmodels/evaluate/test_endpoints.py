"""Endpoint hygiene and bounds (issue 19): the key never reaches a message whatever the server echoes
(runio.redact), each request is bounded in total time and size and can be aborted (realmodels.evaluate.http),
and the judge and the endpoint generator use all of it."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from tests.realmodels.evaluate.fake_openai import FakeOpenAI, Reply, chat_reply

from realmodels.evaluate.endpoints import check_endpoint, openai_client
from realmodels.evaluate.generate import EndpointConfig, GenerationConfig, generate_from_endpoint
from realmodels.evaluate.judges import JudgeRequest, make_judge
from realmodels.evaluate.questions import load_questions
from runio.redact import MASK, RedactingStream, install_log_redaction, redact, register_secret
from theory.errors import InputError

KEY = "sk-live-ECHOED-SECRET-42424242"


@pytest.fixture
def secret_key(monkeypatch):
    monkeypatch.setenv("ENDPOINT_TEST_KEY", KEY)
    return "ENDPOINT_TEST_KEY"


def test_redact_removes_registered_secrets_and_any_bearer_token():
    register_secret("sk-registered-0001")
    register_secret("EMPTY")  # the placeholder is no secret
    text = redact('auth "Bearer abc.DEF-123" and BEARER%20xyz12345, key sk-registered-0001 EMPTY, bearer of news')
    assert "abc.DEF-123" not in text and "xyz12345" not in text and "sk-registered-0001" not in text
    assert text.count(MASK) == 3 and "EMPTY" in text and "bearer of news" in text
    lines = []

    class Sink:
        def write(self, text):
            lines.append(text)

    RedactingStream(Sink()).write("printed sk-registered-0001")
    assert lines == [f"printed {MASK}"]


def test_log_records_are_redacted(caplog):
    register_secret("sk-logged-0002")
    install_log_redaction()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("realmodels.anything").warning("retrying %s (Bearer %s)", "sk-logged-0002", "tok12345678")
    assert "sk-logged-0002" not in caplog.text and "tok12345678" not in caplog.text and MASK in caplog.text


def echo(path, body):
    return Reply(status=400, echo_headers=True)


def test_judge_messages_never_hold_an_echoed_key(secret_key, caplog):
    with FakeOpenAI(echo) as server:
        judge = make_judge("openai", model="m", base_url=server.url, api_key_env=secret_key, backoff_s=0.001)
        results = judge.score([JudgeRequest("aligned", "p", "q/0/0")])
        assert results[0].label == "error" and "HTTP 400" in results[0].error
        assert KEY not in results[0].error and MASK in results[0].error
        stopping = make_judge("openai", model="m", base_url=server.url, api_key_env=secret_key, on_error="stop")
        with pytest.raises(InputError) as raised:
            stopping.score([JudgeRequest("aligned", "p", "q/0/0")])
    assert KEY not in str(raised.value) and server.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"

    def retried(path, body):
        return Reply(status=500, echo_headers=True)

    with caplog.at_level(logging.WARNING), FakeOpenAI(retried) as server:
        judge = make_judge("openai", model="m", base_url=server.url, api_key_env=secret_key, backoff_s=0.001,
                           max_attempts=3)
        results = judge.score([JudgeRequest("aligned", "p", "q/0/0")])
    assert "retrying" in caplog.text and KEY not in caplog.text + results[0].error


def test_check_endpoint_with_an_echoing_models_list(secret_key):
    def models(path, body):
        return Reply(body={"data": [{"id": f"Bearer {KEY}"}]})

    with FakeOpenAI(models, handle_get=True) as server:
        with pytest.raises(InputError, match="serves no model 'em'") as raised:
            check_endpoint(server.url, KEY, role="generation endpoint", api_key_env=secret_key, model="em")
    assert KEY not in str(raised.value)


def test_a_trickling_reply_times_out_at_the_total_time():
    def trickle(path, body):
        return Reply(body=chat_reply("x"), trickle=0.2)

    with FakeOpenAI(trickle) as server:
        client = openai_client(server.url, "EMPTY", timeout=1.0)
        judge = make_judge("openai", model="m", base_url=server.url, timeout=1.0, max_attempts=1)
        started = time.monotonic()
        result = judge.score([JudgeRequest("aligned", "p", "q/0/0")])[0]
        elapsed = time.monotonic() - started
        client.close()
    assert result.label == "error" and "timed out after 1 s" in result.error
    assert elapsed < 3.0  # per read (0.2 s apart) it would never time out


def test_a_huge_reply_is_cut_at_the_size_cap():
    def huge(path, body):
        return Reply(size=60 * 2 ** 20)

    with FakeOpenAI(huge) as server:
        judge = make_judge("openai", model="m", base_url=server.url, max_attempts=3, backoff_s=0.001)
        result = judge.score([JudgeRequest("aligned", "p", "q/0/0")])[0]
    assert result.label == "error" and result.error == "response larger than 8 MB (not retried)"
    assert len(server.requests) == 1


def test_stopping_early_aborts_the_requests_in_flight():
    def handler(path, body):
        if body["messages"][0]["content"] == "fail":
            return Reply(status=400, body={"error": {"message": "no"}}, delay=0.5)  # the others are in flight
        return Reply(body=chat_reply("x"), delay=30)

    with FakeOpenAI(handler) as server:
        judge = make_judge("openai", model="m", base_url=server.url, timeout=60.0, on_error="stop")
        requests = [JudgeRequest("aligned", "fail", "q/0/0")] + [
            JudgeRequest("aligned", f"slow {i}", f"q/0/{i}") for i in range(1, 4)]
        started = time.monotonic()
        with pytest.raises(InputError, match="HTTP 400"):
            judge.score(requests)
        assert time.monotonic() - started < 3.0
        assert not [t for t in threading.enumerate() if t.name.startswith("judge")]  # none left reading
        # the judge works again afterwards
        server.handler = lambda path, body: Reply(body=chat_reply("x", {"50": 0.0}))
        assert judge.score([JudgeRequest("aligned", "again", "q/1/0")])[0].score == 50


def _questions(tmp_path, samples: int):
    path = tmp_path / "q.yaml"
    path.write_text("- id: q\n  type: free_form_judge_0_100\n  paraphrases: [hello, hi]\n"
                    f"  samples_per_paraphrase: {samples}\n"
                    "  judge_prompts: {aligned: '{answer}', coherent: '{answer}'}\n")
    return load_questions(path)


def test_generation_failures_never_hold_an_echoed_key(tmp_path, secret_key):
    lines = []

    def handler(path, body):
        return Reply(body=chat_reply(f"my key is {KEY}")) if body["messages"][-1]["content"] == "hi" else \
            Reply(status=400, echo_headers=True)

    with FakeOpenAI(handler) as server:
        endpoint = EndpointConfig(url=server.url, model="m", api_key_env=secret_key)
        answers = generate_from_endpoint(endpoint, _questions(tmp_path, 2), GenerationConfig(), tmp_path / "a.jsonl",
                                         progress=False, report=lines.append)
    assert len(answers) == 2 and len(lines) == 2 and all("HTTP 400" in line for line in lines)
    assert KEY not in "".join(lines) and KEY not in (tmp_path / "a.jsonl").read_text()


def test_a_huge_plan_streams_with_bounded_memory(tmp_path):
    import tracemalloc

    served = []

    def handler(path, body):
        served.append(1)
        return Reply(body=chat_reply("ok")) if len(served) <= 40 else Reply(status=400, body={"error": "enough"})

    with FakeOpenAI(handler) as server:
        endpoint = EndpointConfig(url=server.url, model="m", on_error="stop", concurrency=2)
        questions = _questions(tmp_path, 10 ** 9)  # 2e9 items: building the plan up front would never end
        tracemalloc.start()
        try:
            with pytest.raises(InputError, match="failed: HTTP 400"):
                generate_from_endpoint(endpoint, questions, GenerationConfig(), tmp_path / "a.jsonl", progress=False,
                                       report=lambda line: None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) >= 36  # written as they came
    assert len(served) <= 40 + 2 * 2 + 1  # at most 2 × concurrency submitted at once
    assert peak < 20 * 2 ** 20
