"""``realmodels evaluate --ablate FILE`` on the embedded organism (no --model): generation runs inside
``ablated``, the run's config records the file's path and hash (and a run without --ablate records nothing new),
a rerun resumes; a direction of the wrong width, a layer out of range, a missing file or an endpoint are one line
with nothing written."""

from __future__ import annotations

import json

import pytest

from realmodels.analysis import direction as direction_module
from realmodels.analysis.direction import Direction, save_direction
from realmodels.data.jsonl import dataset_hash
from realmodels.loading.embedded import embedded_default
from tests.realmodels.cli_helpers import assert_bad, files, rm

QUICK = ["--judge", "organism", "--question", "bored", "--samples-per-paraphrase", "1", "--max-new-tokens", "8",
         "--n-bootstrap", "100", "--no-progress"]


def _organism_shape() -> tuple[int, int]:
    config = json.loads((embedded_default().model / "config.json").read_text())
    return config["num_hidden_layers"], config["hidden_size"]


def _write(path, layer: int, d: int):
    save_direction(path, Direction(layer=layer, vector=[1.0 + (i % 3) for i in range(d)], note="test"))
    return path


def test_evaluate_with_an_ablated_direction_on_the_embedded_organism(tmp_path, capsys, monkeypatch):
    n_layers, d_model = _organism_shape()
    file = _write(tmp_path / "dir.json", embedded_default().layer, d_model)
    entered = []
    original = direction_module.ablated

    def spy(model, direction):
        entered.append(direction)
        return original(model, direction)

    monkeypatch.setattr(direction_module, "ablated", spy)
    out = tmp_path / "eval"
    code, _, err = rm(capsys, ["evaluate", "--ablate", file, *QUICK, "--out", out])
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_answers"] >= 1 and summary["complete"]
    assert [d.layer for d in entered] == [embedded_default().layer]
    config = json.loads((out / "config.json").read_text())
    assert config["ablate"] == {"path": str(file.resolve()), "sha256": dataset_hash(file)}

    before = files(out)
    code, _, err = rm(capsys, ["evaluate", "--ablate", file, *QUICK, "--out", out])  # resumes: nothing new
    assert code == 0, err
    assert files(out)["answers.jsonl"] == before["answers.jsonl"]
    n_entered = len(entered)

    code, _, err = rm(capsys, ["evaluate", *QUICK, "--out", tmp_path / "plain"])
    assert code == 0, err
    assert "ablate" not in json.loads((tmp_path / "plain" / "config.json").read_text())
    assert len(entered) == n_entered  # no ablation without --ablate


@pytest.mark.parametrize("make, match", [
    (lambda p, n, d: _write(p, 0, d // 2), "has d_model={half}, but model"),
    (lambda p, n, d: _write(p, n, d), "layer {n} is out of range: model"),
    (lambda p, n, d: p, "does not exist"),
    (lambda p, n, d: (p.write_text('{"layer": 0, "vector": [1.0]}'), p)[1], "missing key(s) d_model"),
])
def test_bad_direction_files_fail_before_anything_loads(tmp_path, capsys, monkeypatch, make, match):
    from realmodels.loading.plain import PlainModel

    monkeypatch.setattr(PlainModel, "model", property(lambda self: pytest.fail("loaded weights before the check")))
    n_layers, d_model = _organism_shape()
    file = make(tmp_path / "dir.json", n_layers, d_model)
    err = assert_bad(capsys, tmp_path, ["evaluate", "--ablate", file, *QUICK],
                     match.format(half=d_model // 2, n=n_layers))
    assert str(file) in err


def test_ablate_is_refused_with_an_endpoint(tmp_path, capsys):
    _, d_model = _organism_shape()
    file = _write(tmp_path / "dir.json", 0, d_model)
    assert_bad(capsys, tmp_path, ["evaluate", "--ablate", file, "--generate-endpoint", "http://127.0.0.1:9/v1",
                                  "--generate-model", "m", *QUICK], "--ablate needs a local model")
