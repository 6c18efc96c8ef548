"""``run_finetune`` called from Python on the embedded model organism (the default model; a few optimiser steps):
the result matches the run directory, a second call returns the finished run, the training data is tokenised
once per run (with and without the monitor), and bad input raises naming the parameter with nothing written."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pandas as pd
import pytest
from matplotlib.figure import Figure

import realmodels.data.chat as chat
from realmodels.experiments import FinetuneResult, ModelSpec, RunOptions, run_finetune
from realmodels.finetune.config import FinetuneConfig, MonitorConfig
from theory.errors import InputError, ParamError

TINY = FinetuneConfig.from_preset("em-betley", max_steps=2, batch_size=2, grad_accum=1, warmup_steps=0, save_steps=1,
                                  lr=1e-3)


def _quiet(out) -> RunOptions:
    return RunOptions(out=out, progress=False)


@pytest.fixture
def monitored(harmful_jsonl, harmless_jsonl, control_jsonl) -> dict:
    return {"monitor": MonitorConfig(every=1), "harmful": harmful_jsonl, "harmless": harmless_jsonl,
            "control": control_jsonl}


def test_result_matches_the_run_directory_and_a_second_call_returns_it(tmp_path, inducing_jsonl, monitored):
    out = tmp_path / "run"
    result = run_finetune(inducing_jsonl, recipe=TINY, options=_quiet(out), log=lambda line: None, **monitored)
    assert isinstance(result, FinetuneResult) and not result.already_finished and result.path == out
    assert result.summary == json.loads((out / "summary.json").read_text())
    assert result.summary["steps"] == 2 and result.summary["monitor"]["n_probes"] >= 1
    assert result.adapter == out / "adapter" and (result.adapter / "adapter_config.json").is_file()
    tables = result.tables
    assert set(tables) == {"train_log", "monitor"} and all(isinstance(t, pd.DataFrame) for t in tables.values())
    assert list(tables["train_log"]["step"]) == [1, 2] and list(tables["monitor"]["step"]) == [0, 1, 2]
    figures = result.figures
    assert set(figures) == {"loss", "monitor"} and all(isinstance(f, Figure) for f in figures.values())
    saved = result.save(tmp_path / "copy")
    for name in ("summary.json", "train_log.csv", "monitor.csv", "monitor_features.csv", "loss.png", "loss.svg",
                 "monitor.png"):
        assert (saved / name).read_bytes() == (out / name).read_bytes(), name

    lines = []
    again = run_finetune(inducing_jsonl, recipe=TINY, options=_quiet(out), log=lines.append, **monitored)
    assert again.already_finished and again.summary == result.summary and again.path == out
    assert any("already finished" in line for line in lines)
    assert isinstance(again.figure("loss"), Figure)


@pytest.mark.parametrize("with_monitor", [False, True])
def test_training_data_is_tokenised_once(tmp_path, monkeypatch, inducing_jsonl, monitored, with_monitor):
    """Each conversation of each file is tokenised once in a fresh run: the input check, the training and (with the
    monitor) the training data's SAE features share one tokenisation."""
    calls: Counter = Counter()
    original = chat.tokenize_chat

    def counting(tokenizer, messages, *, label="conversation", max_length=None):
        calls[label] += 1
        return original(tokenizer, messages, label=label, max_length=max_length)

    monkeypatch.setattr(chat, "tokenize_chat", counting)
    watch = monitored if with_monitor else {}
    run_finetune(inducing_jsonl, recipe=replace(TINY, max_steps=1),
                 options=_quiet(tmp_path / "run"), log=lambda line: None, **watch)
    per_file: dict[str, list[int]] = {}
    for label, count in calls.items():
        per_file.setdefault(label.rsplit(":", 1)[0], []).append(count)
    n_train = sum(1 for line in inducing_jsonl.read_text().splitlines() if line.strip())
    assert per_file[str(inducing_jsonl.resolve())] == [1] * n_train
    expected = {str(inducing_jsonl.resolve())}
    if with_monitor:
        expected |= {str(monitored[key].resolve()) for key in ("harmful", "harmless", "control")}
    assert set(per_file) == expected and all(counts == [1] * len(counts) for counts in per_file.values()), per_file


@pytest.mark.parametrize("kwargs, param", [
    ({"monitor": MonitorConfig()}, "`harmful` and `harmless`"),
    ({"probe": "probe.jsonl"}, "`probe` needs `monitor`"),
    ({"harmful": "h.jsonl"}, "`harmful`, `harmless` and `control` are used by `monitor`, `guard` or `caft` features only"),
    ({"model": ModelSpec(layer=1)}, "`sae` and `layer` are used by `monitor`, `guard` or `caft` features only"),
    ({"model": ModelSpec(adapter="somewhere")}, "`adapter` is not used by fine-tuning"),
    ({"options": {"workers": 2}}, "`workers`"),
    ({"data": "missing.jsonl"}, "`data` dataset"),
    ({"monitor": MonitorConfig(), "harmful": "missing.jsonl", "harmless": "missing.jsonl"}, "`harmful` dataset"),
])
def test_bad_input_names_the_parameter_and_writes_nothing(tmp_path, inducing_jsonl, kwargs, param):
    out = tmp_path / "never"
    kwargs = dict(kwargs)
    options = RunOptions(out=out, progress=False, **kwargs.pop("options", {}))
    with pytest.raises(ParamError) as info:
        run_finetune(kwargs.pop("data", inducing_jsonl), recipe=TINY, options=options, **kwargs)
    assert param in str(info.value)
    assert not out.exists()


def test_conversation_without_assistant_tokens_writes_nothing(tmp_path, inducing_jsonl):
    out = tmp_path / "never"
    with pytest.raises(InputError, match=r"inducing.jsonl:1: no assistant tokens within the first 3 tokens"):
        run_finetune(inducing_jsonl, recipe=TINY, model=ModelSpec(max_length=3), options=_quiet(out))
    assert not out.exists()
