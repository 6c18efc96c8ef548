"""`realmodels evaluate` against misbehaving endpoints (issue 19): a server echoing the API key never gets it
printed or written, every generation request failing is one line and an incomplete summary, and Ctrl-C while
requests trickle ends the command at once with the one-line interrupt message (a real subprocess and SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error
from tests.realmodels.cli_helpers import rm
from tests.realmodels.evaluate.fake_openai import FakeOpenAI, Reply, chat_reply
from tests.realmodels.evaluate.test_cli_evaluate import question_file  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[3]
KEY = "sk-proj-ECHO-ME-0123456789abcdef"
FAST = ["--n-bootstrap", "50", "--no-progress", "--max-new-tokens", "4"]


def _endpoint_args(question_file, url, out):
    return ["evaluate", "--questions", question_file, "--generate-endpoint", url, "--generate-model", "m",
            "--generate-api-key-env", "ECHO_TEST_KEY", "--judge", "openai", "--judge-model", "j", "--judge-endpoint",
            url, "--judge-api-key-env", "ECHO_TEST_KEY", *FAST, "--out", out]


def _assert_key_nowhere(key, texts, root: Path):
    assert key not in "".join(texts)
    for path in root.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("on_error", ["continue", "stop"])
def test_an_echoed_key_is_never_printed_or_written(tmp_path, capsys, monkeypatch, question_file, on_error):
    monkeypatch.setenv("ECHO_TEST_KEY", KEY)

    def handler(path, body):
        if body.get("max_tokens") == 1:  # the judge: an error body that echoes every header
            return Reply(status=400, echo_headers=True)
        return Reply(body=chat_reply("an answer"))

    out = tmp_path / "eval"
    with FakeOpenAI(handler) as server:
        code, stdout, err = rm(capsys, [*_endpoint_args(question_file, server.url, out), "--on-error", on_error])
    assert any(r["headers"].get("authorization") == f"Bearer {KEY}" for r in server.requests)
    assert "HTTP 400" in stdout + err and "***" in stdout + err
    if on_error == "stop":
        assert_one_line_error(code, err)
    else:
        assert code == 0, err
    _assert_key_nowhere(KEY, [stdout, err], out)


def test_every_generation_request_failing_is_one_line_and_an_incomplete_summary(tmp_path, capsys, question_file):
    replies = iter([Reply(status=422, body={"error": "no"}), Reply(status=400, body={"error": "bad"}),
                    Reply(raw=b"{not json")] * 100)  # not retried: every item fails at once

    out = tmp_path / "eval"
    with FakeOpenAI(lambda path, body: next(replies)) as server:
        args = [*_endpoint_args(question_file, server.url, out)]
        args[args.index("--judge"):args.index("--judge") + 2] = ["--judge", "organism"]
        code, stdout, err = rm(capsys, [*args, "--on-error", "continue"])
    assert_one_line_error(code, err)
    assert "incomplete evaluation: none of the 7 answers was generated" in err and "KeyError" not in err
    assert stdout.count("generation failed for") == 7
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["n_missing_answers"] == 7 and summary["n_answers"] == 0
    assert summary["overall"]["em"]["estimate"] is None


@pytest.mark.parametrize("stage", ["judge", "generation"])
def test_ctrl_c_while_requests_trickle_ends_the_command_at_once(tmp_path, question_file, stage):
    def trickle(path, body):  # the judge trickles one byte every 5 s; the generation endpoint says nothing for 60 s
        if body.get("max_tokens") == 1:
            return Reply(body=chat_reply("x"), trickle=5.0)
        return Reply(body=chat_reply("an answer"), delay=60.0 if stage == "generation" else 0.0)

    def stage_requests():
        return [r for r in server.requests if ((r["body"] or {}).get("max_tokens") == 1) == (stage == "judge")]

    out = tmp_path / "eval"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ECHO_TEST_KEY": KEY}
    with FakeOpenAI(trickle) as server:
        process = subprocess.Popen([sys.executable, "-m", "cli.realmodels_app",
                                    *map(str, _endpoint_args(question_file, server.url, out))],
                                   cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while len(stage_requests()) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert process.poll() is None and len(server.requests) >= 3, process.communicate()
            time.sleep(0.5)
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            stdout, err = process.communicate(timeout=30)
            took = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
    assert_one_line_error(process.returncode, err)
    assert "interrupted" in err and took < 5.0, (took, err)
    _assert_key_nowhere(KEY, [stdout, err], out)
