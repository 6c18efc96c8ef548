"""``examples/`` runs: every example in a fresh interpreter, as a user would run it (exit 0, its key printed lines,
its figures, a rerun into the same OUT reusing the finished runs), and the examples as documentation: each a valid
jupytext notebook, each listed in the docs' Examples section and rendered there by ``docs/examples_hook.py`` with
its committed figures."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

# example -> (the line prefixes it prints, the figures it copies with --figures)
RUNS = {
    "toy_simulate": (("simulate:", "most amplified:"), ("amplification",)),
    "geometry_and_filtering": (("geometry health:", "geometry career:", "geometry legal:", "filter geometric:",
                                "filter random:"), ("differences", "removed_kinds")),
    "mitigation_benchmark": (("benchmark none:", "benchmark geometry:", "benchmark persona:", "benchmark kl:"),
                             ("pareto",)),
    "amplification": (("finetune:", "amplification first_order:", "amplification isotropic:", "harmful features:"),
                      ("measured_vs_predicted",)),
}


def _jupytext():
    if importlib.util.find_spec("jupytext") is None:
        if os.environ.get("CI"):
            pytest.fail('jupytext is not installed under CI: .ci/run installs ".[test,real,docs]"')
        pytest.skip('jupytext is not installed (pip install -e ".[docs]")')
    import jupytext

    return jupytext


def _hook():
    """``docs/examples_hook.py`` (``docs`` is not a package) loaded from its path."""
    spec = importlib.util.spec_from_file_location("docs_examples_hook", ROOT / "docs" / "examples_hook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(name: str, out: Path, figures: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "examples" / f"{name}.py"), str(out), "--figures", str(figures)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


def _key_lines(stdout: str, prefixes: tuple[str, ...]) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(prefixes)]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_example_runs_prints_its_numbers_writes_its_figures_and_resumes(name, tmp_path):
    prefixes, figures = RUNS[name]
    done = _run(name, tmp_path / "run", tmp_path / "figures")
    assert done.returncode == 0, done.stderr
    for prefix in prefixes:
        assert any(line.startswith(prefix) for line in done.stdout.splitlines()), (prefix, done.stdout)
    expected = {f"{name}_{figure}{suffix}" for figure in figures for suffix in (".png", ".svg")}
    assert {p.name for p in (tmp_path / "figures").iterdir()} == expected
    first = {p.name: p.read_bytes() for p in (tmp_path / "figures").iterdir()}
    assert all(len(data) > 1000 for data in first.values())

    again = _run(name, tmp_path / "run", tmp_path / "figures")
    assert again.returncode == 0, again.stderr
    if name == "mitigation_benchmark":  # its job map skips finished runs silently: no run prints its stages again
        assert "finetune-none:" in done.stdout and "finetune-" not in again.stdout, again.stdout
    else:  # the finished runs are reused, not recomputed
        assert "already finished" in again.stdout, again.stdout
    assert _key_lines(again.stdout, prefixes) == _key_lines(done.stdout, prefixes)
    assert {p.name: p.read_bytes() for p in (tmp_path / "figures").iterdir()} == first


@pytest.mark.slow
def test_the_organism_pipeline_example_runs_and_resumes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "examples" / "organism_pipeline.py"), str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for stage in ("geometry:", "filter:", "finetune:", "evaluate:", "amplification:"):
        assert any(line.startswith(stage) for line in lines), done.stdout
    for run in ("geometry", "filter", "finetune", "evaluate-base", "evaluate-finetuned", "amplification"):
        assert (tmp_path / "run" / run / "summary.json").is_file(), run
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stderr
    assert "already finished" in again.stdout
    summary_lines = [line for line in lines if line.startswith(("geometry:", "filter:", "amplification:"))]
    assert summary_lines == [line for line in again.stdout.splitlines()
                             if line.startswith(("geometry:", "filter:", "amplification:"))]


def test_every_example_runs_in_a_test():
    assert {p.stem for p in EXAMPLES} == set(RUNS) | {"organism_pipeline"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_is_a_jupytext_notebook_with_a_title(path):
    notebook = _jupytext().read(path)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds.count("markdown") >= 2 and kinds.count("code") >= 2, kinds
    assert kinds[0] == "markdown" and notebook.cells[0].source.startswith("# "), "the first cell is its # title"
    assert _hook().title(notebook)
    # canonical percent format: a notebook saved back by jupytext (Jupyter's "pair" workflow) rewrites nothing
    assert _jupytext().writes(notebook, fmt="py:percent") == path.read_text()


def test_every_example_is_in_the_docs_nav_and_every_nav_page_is_an_example():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = _hook().nav_examples(nav)
    assert sorted(listed) == sorted(p.stem for p in EXAMPLES)
    assert len(listed) == len(set(listed))


def test_every_committed_example_figure_belongs_to_an_example_in_png_and_svg_and_is_small():
    hook = _hook()
    names = [p.stem for p in EXAMPLES]
    pngs = sorted((ROOT / "figures" / "examples").glob("*.png"))
    assert pngs, "figures/examples/ holds the examples' figures"
    owned = [png for name in names for png in hook.figure_names(name, names)]
    assert sorted(owned) == [p.name for p in pngs]
    for name in RUNS:  # exactly what the example copies with --figures
        assert hook.figure_names(name, names) == [f"{name}_{figure}.png" for figure in sorted(RUNS[name][1])]
    for png in pngs:
        assert png.with_suffix(".svg").is_file(), png
        for path in (png, png.with_suffix(".svg")):
            assert path.stat().st_size < 120_000, (path, path.stat().st_size)


def test_the_hook_renders_cells_in_order_then_the_figures_and_the_commands(tmp_path):
    _jupytext()
    examples, figures = tmp_path / "examples", tmp_path / "figures"
    examples.mkdir()
    figures.mkdir()
    (examples / "toy.py").write_text('# %% [markdown]\n# # A toy\n#\n# Why, with `<d_j, d_t>`.\n\n'
                                     '# %%\nx = 1\n\n# %% [markdown]\n# ## Then\n\n# %%\nprint(x)\n')
    (examples / "toy_big.py").write_text("# %% [markdown]\n# # Big\n\n# %%\ny = 2\n")
    for png in ("toy_a.png", "toy_big_b.png", "other.png"):
        (figures / png).write_bytes(b"png")
    hook = _hook()
    names = hook.example_names(examples, order=["toy_big"])
    assert names == ["toy_big", "toy"]
    page = hook.example_markdown("toy", names, examples, figures)
    parts = ["# A toy", "Why, with `<d_j, d_t>`.", "```python\nx = 1\n```", "## Then", "```python\nprint(x)\n```",
             "![a](../figures/examples/toy_a.png)", "`python examples/toy.py [OUT]`",
             "`jupytext --to notebook examples/toy.py`"]
    positions = [page.index(part) for part in parts]
    assert positions == sorted(positions)
    assert "toy_big_b" not in page and "other" not in page  # the longest example name owns a figure
    assert "![b](../figures/examples/toy_big_b.png)" in hook.example_markdown("toy_big", names, examples, figures)
    index = hook.index_markdown(names, examples, figures)
    assert index.index("[Big](toy_big.md)") < index.index("[A toy](toy.md)")
    assert "for name in toy_big toy; do" in index  # the examples with figures, regenerated by one command


def test_the_hook_reads_the_examples_nav_in_order():
    nav = [{"Home": "index.md"}, {"Examples": ["examples/index.md", {"B": "examples/b.md"}, {"A": "examples/a.md"}]},
           {"Reference": [{"CLI": "reference/cli.md"}]}]
    assert _hook().nav_examples(nav) == ["b", "a"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_in_a_notebook_the_first_code_cell_ignores_the_kernel_arguments(path, tmp_path, monkeypatch):
    """Run as a notebook, an example's arguments cell uses the defaults instead of parsing the kernel's own
    ``-f kernel.json`` (argparse would exit)."""
    import types

    notebook = _jupytext().read(path)
    first = next(cell.source for cell in notebook.cells if cell.cell_type == "code")
    monkeypatch.chdir(tmp_path)  # the default OUT is relative: whatever the cell writes stays here
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py", "-f", str(tmp_path / "kernel.json")])
    namespace = {"__name__": "__main__"}
    exec(compile(first, str(path), "exec"), namespace)
    out = namespace["args"].out if "args" in namespace else namespace["out"]
    assert out == Path("runs/example" if path.stem == "organism_pipeline" else f"runs/examples/{path.stem}")
