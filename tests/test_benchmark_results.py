"""Benchmark results files and the generated tables of the Benchmarks page: every benchmark script imports and writes
its results through ``benchmarks/results.py`` (metadata + rows, atomically), every one has a committed results file
and a marker on docs/benchmarks.md, and ``docs/bench_hook.py`` renders a results file as a table and stops the build
on a missing one."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.results import BenchmarkResults, check_results

ROOT = Path(__file__).resolve().parent.parent
NOT_BENCHMARKS = {"process_pool_baseline", "compare_outputs", "results"}  # a baseline, a diff tool, the helper
BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem not in NOT_BENCHMARKS)
MARKER = re.compile(r"<!--\s*benchmark-table:\s*([\w-]+)\s*-->")


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _hook():
    pytest.importorskip("mkdocs")
    return _load(ROOT / "docs" / "bench_hook.py", "docs_bench_hook")


def test_the_benchmark_list_is_the_thirteen_scripts():
    assert len(BENCHMARKS) == 13 and "train_throughput" in BENCHMARKS and "ray_activations" in BENCHMARKS


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_script_imports_and_writes_its_results_through_the_helper(name):
    """Importing catches a script broken by a library change (jvp_amplification imported a removed ``_captured``)."""
    path = ROOT / "benchmarks" / f"{name}.py"
    module = _load(path, f"bench_{name}")
    assert callable(module.main)
    source = path.read_text(encoding="utf-8")
    assert "add_results_option(parser)" in source and "BenchmarkResults(__file__)" in source
    assert re.search(r"bench\.write\((args|opts)\.results", source)


def test_the_cheapest_benchmark_writes_a_results_file_with_the_schema(tmp_path):
    out = tmp_path / "sub" / "judge.json"
    args = ["--requests", "16", "--delay-ms", "1", "--repeats", "1", "--results", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "judge_concurrency.py"), *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "speed-up 8 / 1" in proc.stdout  # the printed output is unchanged
    data = json.loads(out.read_text(encoding="utf-8"))
    check_results(data)
    meta = data["metadata"]
    assert meta["script"] == "judge_concurrency"
    assert meta["command"] == "python benchmarks/judge_concurrency.py " + " ".join(args)
    assert len(meta["load_average_before"]) == 3 and len(meta["load_average_after"]) == 3
    assert isinstance(meta["cpu"], str) and meta["cpu"].strip()  # the CPU model (older files may lack it)
    assert meta["cpu_count"] == os.cpu_count() and re.match(r"^[0-9a-f]{12}(\+dirty)?$|^unknown$", meta["revision"])
    names = [row["measurement"] for row in data["rows"]]
    assert names == ["concurrency 1", "concurrency 8", "speed-up, concurrency 8 / 1"]
    rows = {row["measurement"]: row["value"] for row in data["rows"]}
    assert math.isclose(rows["speed-up, concurrency 8 / 1"], rows["concurrency 8"] / rows["concurrency 1"])
    assert [p.name for p in out.parent.iterdir()] == ["judge.json"]  # no temp file left beside it


def test_the_helper_refuses_rows_that_are_not_measurements(tmp_path):
    bench = BenchmarkResults(ROOT / "benchmarks" / "demo.py", argv=[])
    for value in (math.nan, math.inf, True, "1.0"):
        with pytest.raises(ValueError, match="finite number"):
            bench.add("x", value, "s")  # float("1.0") would pass: strings are refused before conversion
    with pytest.raises(ValueError, match="target"):
        bench.add("x", 1.0, "×", target="at least 2")
    with pytest.raises(ValueError, match="no rows"):
        bench.write(tmp_path / "demo.json")
    assert not (tmp_path / "demo.json").exists()
    bench.add("x", 2, "×", target=">= 1.5", note="n")
    check_results(json.loads(bench.write(tmp_path / "demo.json").read_text()))
    with pytest.raises(ValueError, match="metadata lacks"):
        check_results({"metadata": {}, "rows": [{"measurement": "x", "value": 1.0, "unit": "s", "target": None,
                                                 "note": ""}]})


def test_every_benchmark_has_a_committed_results_file_and_a_marker_on_the_page():
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    markers = MARKER.findall(page)
    assert sorted(markers) == BENCHMARKS  # each script's table once, and no marker without a script
    for name in BENCHMARKS:
        path = ROOT / "benchmarks" / "results" / f"{name}.json"
        assert path.is_file(), f"run python benchmarks/{name}.py and commit {path.name}"
        data = json.loads(path.read_text(encoding="utf-8"))
        check_results(data)
        assert data["metadata"]["script"] == name
        assert data["metadata"]["command"].startswith(f"python benchmarks/{name}.py")
        assert "--results" not in data["metadata"]["command"]  # written where the page reads it


def test_the_hook_renders_a_results_file_as_a_captioned_table():
    hook = _hook()
    data = {"metadata": {"script": "demo", "date": "2026-12-03 18:00 UTC", "revision": "abcdef123456",
                         "command": "python benchmarks/demo.py --quick", "torch_threads": 1,
                         "load_average_before": [0.52, 1.0, 1.0], "load_average_after": [1.94, 1.2, 1.0],
                         "cpu_count": 2, "python": "3.11.7", "torch": "2.13.0"},
            "rows": [{"measurement": "toolkit / bare", "value": 0.9312, "unit": "×", "target": ">= 0.95",
                      "note": "a | b"},
                     {"measurement": "speed", "value": 1845.4, "unit": "steps/s", "target": None, "note": ""},
                     {"measurement": "ratio", "value": 1.009, "unit": "×", "target": "<= 1.3", "note": ""}]}
    table = hook.render_table(data, "benchmarks/results/demo.json")
    lines = table.splitlines()
    assert lines[0] == ("*`python benchmarks/demo.py --quick` — 2026-12-03 18:00 UTC, revision `abcdef123456`; load "
                        "average 0.52 before, 1.94 after, on 2 CPUs; torch 2.13.0, 1 torch thread(s) (generated from "
                        "`benchmarks/results/demo.json`).*")
    assert lines[2] == "| measurement | value | target | note |"
    named = hook.render_table({**data, "metadata": {**data["metadata"], "cpu": "AMD EPYC"}}, "x.json").splitlines()[0]
    assert "on 2 CPUs (AMD EPYC); torch" in named  # files with the CPU model name it
    assert lines[4] == "| toolkit / bare | **0.931×** | ≥ 0.95: **missed** | a \\| b |"
    assert lines[5] == "| speed | **1,845 steps/s** |  |  |"
    assert lines[6] == "| ratio | **1.009×** | ≤ 1.3: met |  |"


def test_the_hook_replaces_markers_and_stops_the_build_on_a_missing_results_file(tmp_path, monkeypatch):
    hook = _hook()
    from mkdocs.exceptions import PluginError

    bench = BenchmarkResults(ROOT / "benchmarks" / "demo.py", argv=["--quick"])
    bench.add("speed", 3.0, "steps/s")
    bench.write(tmp_path / "demo.json")
    monkeypatch.setattr(hook, "RESULTS_DIR", tmp_path)
    page = hook.on_page_markdown("before\n\n<!-- benchmark-table: demo -->\n\nafter", None, None, None)
    assert "| speed | **3 steps/s** |" in page and "benchmark-table" not in page and page.endswith("after")
    with pytest.raises(PluginError, match=r"benchmark table 'absent': no results file .*absent\.json; run "
                                          r"`python benchmarks/absent\.py`"):
        hook.on_page_markdown("<!-- benchmark-table: absent -->", None, None, None)
    (tmp_path / "broken.json").write_text('{"metadata": {}, "rows": [{"value": 1}]}')
    with pytest.raises(PluginError, match="broken.json is not a valid results file"):
        hook.on_page_markdown("<!-- benchmark-table: broken -->", None, None, None)
