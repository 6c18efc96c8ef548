"""What a runner returns: its run directory, its summary (``summary.json``), its tables as pandas DataFrames and
its figures as matplotlib figures, and ``save(dir)`` to copy them elsewhere. Tables are read from the run
directory's CSV files when first asked for; figures are those the run drew (for a run that was already finished,
its saved PNG shown in a figure)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from runio.atomic import write_json

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


@dataclass
class RunResult:
    """A finished run: ``path`` (its run directory), ``summary`` (what ``summary.json`` holds) and
    ``already_finished`` (True when the directory held the result before this call: nothing was recomputed).
    Subclasses name their ``TABLES`` (``<name>.csv``), ``FIGURES`` (``<name>.png``/``.svg``) and ``FILES`` (other
    outputs) in the run directory."""

    path: Path
    summary: dict
    already_finished: bool = False
    drawn: dict = field(default_factory=dict, repr=False)
    """Name -> the matplotlib Figure this run drew."""

    TABLES: ClassVar[tuple[str, ...]] = ()
    FIGURES: ClassVar[tuple[str, ...]] = ()
    FILES: ClassVar[tuple[str, ...]] = ()

    def table(self, name: str) -> pd.DataFrame:
        """The table ``name`` (its ``<name>.csv`` in the run directory) as a DataFrame."""
        import pandas as pd

        if name not in self.TABLES:
            raise KeyError(f"{type(self).__name__} has no table {name!r} (tables: {', '.join(self.TABLES)})")
        return pd.read_csv(self.path / f"{name}.csv")

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table the run wrote, by name."""
        return {name: self.table(name) for name in self.TABLES if (self.path / f"{name}.csv").is_file()}

    def figure(self, name: str) -> Figure:
        """The figure ``name``: the one this run drew, else its saved PNG in a figure."""
        if name not in self.FIGURES:
            raise KeyError(f"{type(self).__name__} has no figure {name!r} (figures: {', '.join(self.FIGURES)})")
        if name in self.drawn:
            return self.drawn[name]
        import matplotlib.image as mpimg
        from matplotlib.figure import Figure

        image = mpimg.imread(self.path / f"{name}.png")
        fig = Figure(figsize=(image.shape[1] / 150, image.shape[0] / 150), dpi=150)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(image)
        ax.set_axis_off()
        return fig

    @property
    def figures(self) -> dict[str, Figure]:
        """Every figure the run saved, by name."""
        return {name: self.figure(name) for name in self.FIGURES if (self.path / f"{name}.png").is_file()}

    def save(self, directory: str | Path) -> Path:
        """Copy the summary, tables, figures (PNG and SVG) and other outputs into ``directory`` (created);
        returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / "summary.json", self.summary)
        names = [f"{t}.csv" for t in self.TABLES] + [f"{f}.{ext}" for f in self.FIGURES for ext in ("png", "svg")]
        for name in (*names, *self.FILES):
            if (self.path / name).is_file():
                shutil.copyfile(self.path / name, directory / name)
        return directory
