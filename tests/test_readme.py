"""The README's Python example runs as written, in a scratch directory: it is the block under "## From Python"."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_example() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("```python\n", text.index("## From Python")) + len("```python\n")
    return text[start:text.index("```", start)]


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_python_example(), str(README), "exec"), namespace)
    run = namespace["run"]
    assert run.path == Path("runs/sim") and (tmp_path / "runs" / "sim" / "summary.json").is_file()
    assert "agreement_preactivation" in run.summary and len(run.table("amplification")) > 0
