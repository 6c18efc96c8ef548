"""Resume and undefined values of the toy commands: a run killed after training (trained_model.pt written)
and rerun writes exactly the files of an uninterrupted run; an older trained_model.pt (bare state dict) still
loads; --steps 0 runs; undefined statistics (--ft-steps 0, flat density cells, a zero mitigation baseline) are
null with a note, never NaN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli.toysuper_app import main
from tests.cli.test_toysuper_studies import TINY
from tests.helpers import TINY_SIMULATE_ARGS, run_cli


def all_files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def strict_json(path: Path):
    """JSON as most parsers read it: NaN and Infinity are errors."""
    def refuse(constant):
        raise AssertionError(f"{path.name} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _kill_after_training(out: Path, keep: tuple[str, ...] = ("config.json", "trained_model.pt")) -> None:
    for path in out.rglob("*"):
        if path.is_file() and path.name not in keep:
            path.unlink()


def test_simulate_resumed_after_training_equals_uninterrupted(tmp_path, capsys):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for out in (clean, killed):
        assert run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", out], capsys)[0] == 0
    _kill_after_training(killed)  # summary.json, amplification.csv and the figures are gone
    code, stdout, err = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", killed], capsys)
    assert code == 0 and "reusing the trained model" in stdout, err
    assert strict_json(killed / "summary.json")["final_train_loss"] is not None
    assert all_files(killed) == all_files(clean)  # trained_model.pt too: byte-identical between identical runs


@pytest.mark.parametrize("study", ["inducing", "mitigate"])
def test_studies_resumed_after_training_equal_uninterrupted(study, tmp_path, capsys):
    config = tmp_path / f"{study}.toml"
    config.write_text(TINY[study])
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for out in (clean, killed):
        assert run_cli(main, [study, "--config", config, "--out", out], capsys)[0] == 0
    _kill_after_training(killed)
    code, stdout, err = run_cli(main, [study, "--config", config, "--out", killed], capsys)
    assert code == 0 and "reusing the trained model" in stdout, err
    assert all_files(killed) == all_files(clean)


def test_a_bare_state_dict_of_an_older_version_still_loads(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", out], capsys)[0] == 0
    reference = (out / "amplification.csv").read_bytes()
    payload = torch.load(out / "trained_model.pt")
    torch.save(payload["model"], out / "trained_model.pt")  # the old format: only the state dict
    _kill_after_training(out)
    code, _, err = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", out], capsys)
    assert code == 0, err
    assert "warning:" in err and "older version" in err
    assert (out / "amplification.csv").read_bytes() == reference
    assert strict_json(out / "summary.json")["final_train_loss"] is None


def test_steps_0_runs_with_a_null_final_loss_and_a_note(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--steps", "0", "--out", out], capsys)
    assert code == 0, err
    summary = strict_json(out / "summary.json")
    assert summary["final_train_loss"] is None
    assert any("train.steps = 0" in note for note in summary["notes"])
    assert (out / "amplification.csv").is_file() and "note:" in stdout


def test_ft_steps_0_writes_null_not_nan_and_says_why(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--ft-steps", "0", "--out", out], capsys)
    assert code == 0, err
    summary = strict_json(out / "summary.json")
    assert summary["agreement_preactivation"]["spearman"] is None and summary["agreement_output"]["r2"] is None
    assert summary["agreement_preactivation"]["n"] == 10  # defined values stay
    assert any("finetune.steps = 0" in note for note in summary["notes"])
    assert "n/a" in stdout


def test_default_summaries_have_no_notes(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(main, ["simulate", *TINY_SIMULATE_ARGS, "--out", out], capsys)[0] == 0
    assert "notes" not in strict_json(out / "summary.json")


def _study(study: str, text: str, tmp_path: Path, capsys) -> tuple[Path, str]:
    config = tmp_path / f"{study}.toml"
    config.write_text(text)
    out = tmp_path / "run"
    code, stdout, err = run_cli(main, [study, "--config", config, "--out", out], capsys)
    assert code == 0, err
    return out, stdout


def test_mitigate_with_a_zero_baseline_writes_null(tmp_path, capsys):
    out, stdout = _study("mitigate", TINY["mitigate"].replace("steps = 5\n", "steps = 0\n"), tmp_path, capsys)
    summary = strict_json(out / "summary.json")
    assert summary["methods"]["geometry"]["rise_reduction_percent"]["estimate"] is None
    assert "baseline sums to 0" in summary["notes"][0] and "n/a" in stdout


def test_density_flat_cells_write_null(tmp_path, capsys):
    out, _ = _study("density", TINY["density"].replace("ratios = [2]", "ratios = [1, 2]"), tmp_path, capsys)
    assert strict_json(out / "cells" / "ratio1_p0.1.json")["spearman_pooled"] is None
    summary = strict_json(out / "summary.json")
    assert summary["cells"][0]["spearman_pooled"] is None and "null where it is undefined" in summary["notes"][0]
