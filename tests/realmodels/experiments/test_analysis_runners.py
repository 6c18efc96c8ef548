"""The SAE runners called from Python (``realmodels.experiments``): results equal what the run directory holds,
tables are DataFrames, figures matplotlib figures, ``save`` copies them, a second call returns the finished run,
bad input names the parameter and writes nothing, and each dataset is tokenised once per run."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from matplotlib.figure import Figure

from realmodels.analysis.configs import FilterConfig, SelectionConfig
from realmodels.experiments import RunOptions, run_audit, run_filter, run_geometry
from runio.atomic import read_json
from theory.errors import InputError, ParamError

SELECTION = SelectionConfig(k=10, harmful_k=10)


def _options(path) -> RunOptions:
    return RunOptions(out=path, progress=False)


def _check_result(result, *, tables, figures, tmp_path) -> None:
    assert result.summary == read_json(result.path / "summary.json")
    assert set(result.tables) == set(tables) and all(isinstance(t, pd.DataFrame) and len(t) for t in
                                                      result.tables.values())
    assert set(result.figures) == set(figures) and all(isinstance(f, Figure) for f in result.figures.values())
    saved = result.save(tmp_path / f"saved-{result.path.name}")
    for name in [*(f"{t}.csv" for t in tables), *(f"{f}.png" for f in figures), "summary.json"]:
        assert (saved / name).read_bytes() == (result.path / name).read_bytes()


def test_geometry_from_python_and_its_resume(small_world, tmp_path, capsys):
    w = small_world
    args = (w["harmful"], w["harmless"], {"health": (w["inducing_health"], w["aligned_health"])})
    result = run_geometry(*args, selection=SELECTION, options=_options(tmp_path / "geometry"))
    assert not result.already_finished and list(result.domains["domain"]) == ["health"]
    _check_result(result, tables=("domains", "features"), figures=("proximity", "differences"), tmp_path=tmp_path)
    again = run_geometry(*args, selection=SELECTION, options=_options(tmp_path / "geometry"))
    assert again.already_finished and again.summary == result.summary
    assert set(again.figures) == {"proximity", "differences"}  # the saved PNGs, shown in figures
    assert "already finished" in capsys.readouterr().out


def test_filter_and_audit_from_python(small_world, tmp_path):
    w = small_world
    filtered = run_filter(w["mixed_health"], w["harmful"], w["harmless"], FilterConfig(fraction=0.25),
                          selection=SELECTION, options=_options(tmp_path / "filter"))
    _check_result(filtered, tables=("scores",), figures=("scores",), tmp_path=tmp_path)
    kept = filtered.filtered.read_text(encoding="utf-8").splitlines()
    assert len(kept) == filtered.summary["n_kept"] == 60 - filtered.summary["n_removed"] == 45
    audit = run_audit(w["inducing_health"], w["harmful"], w["harmless"], selection=SELECTION, top=5,
                      options=_options(tmp_path / "audit"))
    _check_result(audit, tables=("audit",), figures=("audit",), tmp_path=tmp_path)
    assert len(audit.summary["top_harmful_features"]) == 5


def test_bad_input_names_the_parameter_and_writes_nothing(small_world, tmp_path):
    w = small_world
    out = tmp_path / "never"
    with pytest.raises(ParamError, match=r"^`data` dataset .*missing.jsonl does not exist") as caught:
        run_filter(tmp_path / "missing.jsonl", w["harmful"], w["harmless"], options=_options(out))
    assert caught.value.params == ["data"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.jsonl:1: conversation has no assistant turn"):
        run_audit(bad, w["harmful"], w["harmless"], options=_options(out))
    with pytest.raises(ParamError, match="`top` must be at least 1"):
        run_audit(w["inducing_health"], w["harmful"], w["harmless"], top=0, options=_options(out))
    with pytest.raises(ParamError, match="`batch_size` must be at least 1"):
        from realmodels.experiments import ModelSpec

        ModelSpec(batch_size=0)
    assert not out.exists()


def test_each_dataset_is_tokenised_once_per_run(small_world, tmp_path, monkeypatch):
    """A fresh audit reads four roles from three files (the control defaults to the harmless file): every
    conversation of each file is tokenised exactly once — by the input check, whose tokens the activations reuse."""
    import realmodels.data.chat as chat

    counts: Counter = Counter()
    original = chat.tokenize_chat

    def counting(tokenizer, messages, *, label="conversation", max_length=None):
        counts[label.rpartition(":")[0]] += 1
        return original(tokenizer, messages, label=label, max_length=max_length)

    monkeypatch.setattr(chat, "tokenize_chat", counting)
    w = small_world
    run_audit(w["inducing_health"], w["harmful"], w["harmless"], selection=SELECTION,
              options=_options(tmp_path / "audit"))
    sizes = {str(w[name].resolve()): len(w[name].read_text().splitlines())
             for name in ("inducing_health", "harmful", "harmless")}
    assert dict(counts) == sizes


def test_a_fresh_filter_reads_its_training_file_once(small_world, tmp_path, monkeypatch):
    """The training file is opened once (read, checked and hashed in one pass) by a fresh ``run_filter``: the
    input check, the activations' cache key and the filtered lines all come from that one ``Dataset``."""
    import builtins
    import io

    train = (tmp_path / "train.jsonl")
    train.write_bytes(small_world["mixed_health"].read_bytes())
    opened = []
    real_open, real_io_open = builtins.open, io.open

    def counting(file, *args, **kwargs):
        if str(file) == str(train):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting)
    monkeypatch.setattr(io, "open", lambda file, *a, **k: counting(file, *a, **k) if str(file) == str(train)
                        else real_io_open(file, *a, **k))
    w = small_world
    run_filter(train, w["harmful"], w["harmless"], FilterConfig(fraction=0.25), selection=SELECTION,
               options=_options(tmp_path / "filter"))
    assert len(opened) == 1, opened


def test_run_options_take_string_paths_as_the_docstring_examples_do(small_world, tmp_path, monkeypatch):
    """``RunOptions(out="runs/x")`` (a str, as every runner's docstring example writes it) is a path: it once
    failed with ``str / str`` when the runner placed its activation cache below the run directory."""
    w = small_world
    monkeypatch.chdir(tmp_path)
    options = RunOptions(out="runs/audit", cache_dir="cache", progress=False)
    assert options.out == tmp_path.joinpath("runs/audit").relative_to(tmp_path) and options.cache_dir.name == "cache"
    result = run_audit(w["inducing_health"], w["harmful"], w["harmless"], selection=SELECTION,
                       options=RunOptions(out="runs/audit", progress=False))
    assert (tmp_path / "runs" / "audit" / "summary.json").is_file() and result.path.name == "audit"
