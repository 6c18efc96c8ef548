"""MkDocs hook that renders the executed examples (``examples/*.py``, jupytext percent scripts) as pages at build
time, so a page cannot drift from the script CI runs.

- ``examples/<name>.md``: the script read as a notebook by ``jupytext.read`` — markdown cells as markdown, code cells
  as ```` ```python ```` blocks, in order — then the figures committed for it (``figures/examples/<name>_*.png``,
  ``docs/figures`` being a symlink to ``../figures``), then the command that runs it and the one that opens it as a
  notebook.
- ``examples/index.md``: one line per example (its title, the first markdown heading; in ``nav``'s order) and the
  one command that reruns those with figures and regenerates ``figures/examples/``.

Every page must be in ``nav`` (mkdocs.yml's Examples section): a new example missing there fails the strict build,
and ``tests/test_examples.py`` checks the section lists every script. Nothing is written to ``docs/``
(``File.generated``).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIGURES = ROOT / "figures" / "examples"
PAGES = "examples"  # the pages' folder in the site
REGENERATE = ("for name in {names}; do\n"
              "    python examples/$name.py runs/examples/$name --figures figures/examples\n"
              "done")


def example_names(root: Path = EXAMPLES, order: list[str] = ()) -> list[str]:
    """The examples: every ``*.py`` in ``examples/``, by name, those in ``order`` first in its order, then the
    others sorted."""
    names = sorted(path.stem for path in root.glob("*.py"))
    return [n for n in order if n in names] + [n for n in names if n not in order]


def nav_examples(nav) -> list[str]:
    """The example names whose pages ``nav`` lists (``examples/<name>.md``, the index excluded), in its order."""
    if isinstance(nav, dict):
        return [n for value in nav.values() for n in nav_examples(value)]
    if isinstance(nav, list):
        return [n for item in nav for n in nav_examples(item)]
    if isinstance(nav, str) and nav.startswith(f"{PAGES}/") and nav.endswith(".md") and nav != f"{PAGES}/index.md":
        return [nav[len(PAGES) + 1:-3]]
    return []


def figure_names(name: str, names: list[str], figures: Path = FIGURES) -> list[str]:
    """The committed PNGs of example ``name``: ``<name>_<figure>.png`` in ``figures``, sorted; a file belongs to the
    example with the longest name it starts with (so ``toy_*`` files of an example ``toy_sim`` are not ``toy``'s)."""
    owned = []
    for path in sorted(figures.glob("*.png")):
        owners = [n for n in names if path.stem.startswith(f"{n}_")]
        if owners and max(owners, key=len) == name:
            owned.append(path.name)
    return owned


def title(notebook) -> str:
    """The example's title: the first markdown heading of its notebook (its first line without the ``#``)."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            return cell.source.lstrip().splitlines()[0].lstrip("#").strip()
    raise ValueError("an example starts with a markdown cell holding its title (`# %% [markdown]` then `# # Title`)")


def example_markdown(name: str, names: list[str], root: Path = EXAMPLES, figures: Path = FIGURES) -> str:
    """The page of example ``name`` (module docstring): its cells, its figures, how to run and open it."""
    import jupytext

    notebook = jupytext.read(root / f"{name}.py")
    blocks = []
    for cell in notebook.cells:
        source = cell.source.strip("\n")
        if not source:
            continue
        blocks.append(f"```python\n{source}\n```" if cell.cell_type == "code" else source)
    shown = figure_names(name, names, figures)
    if shown:
        blocks.append("## Figures (committed)")
        blocks += [f"![{png[len(name) + 1:-4]}](../figures/examples/{png})" for png in shown]
    blocks.append(f"**Run it:** `python examples/{name}.py [OUT]`. **Open it as a notebook:** "
                  f"`jupytext --to notebook examples/{name}.py` (then open `examples/{name}.ipynb` in Jupyter).")
    return "\n\n".join(blocks) + "\n"


def index_markdown(names: list[str], root: Path = EXAMPLES, figures: Path = FIGURES) -> str:
    """The Examples index: one line per example, how they run in CI, and the command regenerating the figures."""
    import jupytext

    lines = ["# Examples", "",
             "Each example is a plain Python script in `examples/` written as a jupytext percent notebook "
             "(`# %%` cells): it drives the library (`toysuper.runners`, `realmodels.experiments`) on the toy models "
             "or the embedded model organism, needs no download, prints its key numbers and writes its figures "
             "into its run directory OUT, which a rerun reuses. `tests/test_examples.py` runs every one in a fresh "
             "interpreter (marked slow) and checks that each is a valid notebook listed here. "
             "The pages are rendered from the scripts at build time (`docs/examples_hook.py`). Measured on the 2-core "
             "machine with other jobs running (load ~3): the four with figures take 94 s together on one thread, a "
             "rerun into the same OUTs 30 s.", ""]
    lines += [f"- [{title(jupytext.read(root / f'{name}.py'))}]({name}.md) (`examples/{name}.py`)" for name in names]
    with_figures = [name for name in names if figure_names(name, names, figures)]
    lines += ["", "The figures on these pages are committed in `figures/examples/`; this regenerates them:", "",
              "```bash", REGENERATE.format(names=" ".join(with_figures)), "```", ""]
    return "\n".join(lines)


def on_files(files, config):
    """Add the example pages and their index to the build."""
    from mkdocs.structure.files import File

    names = example_names(order=nav_examples(config.nav))
    files.append(File.generated(config, f"{PAGES}/index.md", content=index_markdown(names)))
    for name in names:
        files.append(File.generated(config, f"{PAGES}/{name}.md", content=example_markdown(name, names)))
    return files
