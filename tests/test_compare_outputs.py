"""benchmarks/compare_outputs.py's pure parts: normalisation keeps real differences and drops paths and timings;
diff_trees finds a changed, added or removed file in real directories; selected adds what a command needs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_outputs.py"
spec = importlib.util.spec_from_file_location("compare_outputs", SCRIPT)
co = importlib.util.module_from_spec(spec)
spec.loader.exec_module(co)

OLD = {"<OUT>": "/tmp/x/runs-old", "<TREE>": "/tmp/x/tree-old"}
NEW = {"<OUT>": "/tmp/x/runs-new", "<TREE>": "/tmp/x/tree-new"}


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def test_paths_and_durations_are_normalised_but_numbers_are_not():
    old = "wrote /tmp/x/runs-old/geometry/summary.json in 12.5 s at 2026-12-03T09:48:01; U = 0.25"
    new = "wrote /tmp/x/runs-new/geometry/summary.json in 3 s at 2026-12-04 10:00:00; U = 0.25"
    assert co.normalise_text(old, OLD) == co.normalise_text(new, NEW)
    assert co.normalise_text(old, OLD) != co.normalise_text(old.replace("0.25", "0.26"), OLD)


def test_json_timing_keys_are_dropped_at_any_depth_and_other_keys_kept():
    value = {"seconds": 3.2, "stages": [{"elapsed": 1, "train_runtime": 9, "loss": 0.5}], "n_seconds_x": 1}
    assert co.normalise_json(value) == {"seconds": "<T>", "stages": [{"elapsed": "<T>", "train_runtime": "<T>",
                                                                       "loss": 0.5}], "n_seconds_x": 1}


def test_identical_trees_modulo_paths_timings_and_key_order_compare_equal(tmp_path):
    old = _tree(tmp_path / "old", {
        "summary.json": json.dumps({"a": 1, "seconds": 4.0, "out": "/tmp/x/runs-old/r"}),
        "log.csv": "step,loss,seconds\n1,0.5,0.1\n", "fig.png": b"\x89PNG\x00\x01",
        "args.bin": b"\x80\x04\xff/tmp/x"})
    new = _tree(tmp_path / "new", {
        "summary.json": json.dumps({"out": "/tmp/x/runs-new/r", "seconds": 9.5, "a": 1}),
        "log.csv": "step,loss,seconds\n1,0.5,0.7\n", "fig.png": b"\x89PNG\x00\x01",
        "args.bin": b"\x80\x04\xff/tmp/x"})
    assert co.diff_trees(old, new, OLD, NEW) == []


@pytest.mark.parametrize("change", ["json", "csv", "png", "binary", "added", "removed"])
def test_a_changed_added_or_removed_file_is_reported(tmp_path, change):
    files = {"summary.json": json.dumps({"a": 1}), "log.csv": "step,loss\n1,0.5\n", "fig.png": b"\x89PNG\x00",
             "args.bin": b"\x80\x04\xff"}
    old = _tree(tmp_path / "old", files)
    new_files = dict(files)
    if change == "json":
        new_files["summary.json"] = json.dumps({"a": 2})
    elif change == "csv":
        new_files["log.csv"] = "step,loss\n1,0.6\n"
    elif change == "png":
        new_files["fig.png"] = b"\x89PNG\x01"
    elif change == "binary":
        new_files["args.bin"] = b"\x80\x04\xfe"
    elif change == "added":
        new_files["extra.txt"] = "x"
    else:
        del new_files["log.csv"]
    found = co.diff_trees(old, _tree(tmp_path / "new", new_files), OLD, NEW)
    assert len(found) == 1
    name, diff = found[0]
    if change == "json":
        assert name == "summary.json" and '- "a": 1' in diff and '+ "a": 2' in diff
    elif change == "csv":
        assert "-1,0.5" in diff and "+1,0.6" in diff
    elif change in ("png", "binary"):
        assert "binary content differs" in diff
    else:
        assert ("only in new" if change == "added" else "only in old") in diff


def test_compare_reports_exit_code_and_stream_differences(tmp_path):
    run = {"code": 0, "stdout": "done in 1.0 s\n", "stderr": ""}
    assert co.compare("x", run, {**run, "stdout": "done in 2.0 s\n"}, OLD, NEW, tmp_path, tmp_path) == []
    found = co.compare("x", run, {**run, "code": 2, "stderr": "error: bad"}, OLD, NEW, tmp_path, tmp_path)
    assert [what for what, _ in found] == ["exit code", "stderr"]


def test_selected_keeps_order_and_adds_what_a_command_needs():
    assert co.selected(["evaluate-adapter", "checkpoints"]) == ["checkpoints", "finetune", "evaluate-adapter"]
    assert co.selected(None) == list(co.COMMANDS)
    with pytest.raises(SystemExit):
        co.selected(["nosuch"])


def _cache(path: Path, adapter: str, value: float) -> None:
    import torch

    key = {"model": "m + adapter a", "fingerprint": f"model:1;sae:2;adapter:{adapter}", "dataset_sha256": "d"}
    torch.save({"key": key, "values": torch.tensor([value])}, path)


def test_activation_caches_match_without_the_adapters_file_stats_but_not_with_other_values(tmp_path):
    """The cache file name hashes a key holding the adapter's file mtimes: two runs of the same code write the same
    activations under different names, which compare equal; different activations do not."""
    _cache(_tree(tmp_path / "old", {"a": ""}) / "activations-0123456789abcdef0123456789abcdef.pt", "aaaa", 1.0)
    _cache(_tree(tmp_path / "new", {"a": ""}) / "activations-fedcba9876543210fedcba9876543210.pt", "bbbb", 1.0)
    assert co.diff_trees(tmp_path / "old", tmp_path / "new", OLD, NEW) == []
    _cache(tmp_path / "new" / "activations-fedcba9876543210fedcba9876543210.pt", "bbbb", 2.0)
    found = co.diff_trees(tmp_path / "old", tmp_path / "new", OLD, NEW)
    assert len(found) == 1 and "binary content differs" in found[0][1]


def test_materialise_writes_the_revision_with_fixed_mtimes(tmp_path):
    """Every file of the revision, with the fixed mtime the model/SAE cache fingerprints then agree on."""
    co.materialise("HEAD", tmp_path / "tree")
    script = tmp_path / "tree" / "benchmarks" / "compare_outputs.py"
    assert script.is_file() and script.stat().st_mtime == co.MTIME
    assert (tmp_path / "tree" / "realmodels" / "organism" / "default" / "model").is_dir()
