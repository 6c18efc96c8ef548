# %% [markdown]
# # Geometry and filtering on the model organism
#
# **Question.** Emergent misalignment follows fine-tuning on data whose features lie close to the model's
# harmful-behaviour features (the [toy model](toy_simulate.md) shows why: amplification is proportional to
# similarity). On the embedded model organism (a tiny transformer with its SAE, built from a synthetic world
# whose every sample's kind is known): (1) are the features of misalignment-inducing data closer to the harmful
# features than those of its aligned control, in each domain? (2) If so, does removing the training samples
# closest to the harmful features remove the inducing ones, better than removing the same number at random?
#
# **The maths.** The harmful features H are the `harmful_k` SAE features whose mean activation differs most
# between harmful and harmless responses. A dataset's proximity is the mean, over its most active features, of
# the largest cosine between that feature's decoder row and any row of H; a domain's difference is
# proximity(inducing) − proximity(control), with a permutation p-value over the two sets' samples. The filter
# scores each training sample by the max cosine of its mean residual to the harmful decoder rows and removes the
# top `fraction` (`realmodels.analysis`, `theory.filtering`).

# %%
"""Geometry and filtering example: per-domain proximity of inducing vs control data to the harmful SAE features,
then geometric vs random removal from a mixed training set, on the embedded model organism
(``realmodels.experiments.run_geometry``, ``run_filter``).

Run: ``python examples/geometry_and_filtering.py [OUT] [--figures DIR]`` (default OUT
``runs/examples/geometry_and_filtering``; a rerun reuses every finished run). Measured: 22 s on one thread (2-core
machine, load ~1.5), 28 s beside other jobs (load ~3)."""

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt

from realmodels.analysis.configs import FilterConfig, SelectionConfig
from realmodels.experiments import RunOptions, run_filter, run_geometry
from realmodels.experiments.organism import write_organism_world
from realmodels.experiments.study import removed_kinds
from runio.atomic import copy_figures, save_figure

parser = argparse.ArgumentParser(description="geometry and filtering on the model organism")
parser.add_argument("out", nargs="?", type=Path, default=Path("runs/examples/geometry_and_filtering"),
                    help="run directory")
parser.add_argument("--figures", type=Path, help="also copy the figures here (figures/examples: the docs' copies)")
args = parser.parse_args([] if "ipykernel" in sys.modules else None)  # in a notebook: the defaults
out = args.out

# %% [markdown]
# ## The organism's world
#
# `write_organism_world` writes the datasets the organism was built with (no model loads): per domain
# `inducing_D` (harmful answers to ordinary questions), `aligned_D` (its control: the same questions answered
# well), `educational_D` and `mixed_D` (300 conversations, a third of each), plus `harmful`/`harmless` responses
# and the evaluation questions. Every run below uses one torch thread and no progress bars.

# %%
world = write_organism_world(out / "world")  # {name: path}
domains = ("health", "career", "legal")
selection = SelectionConfig(harmful_k=20)
options = dict(threads=1, progress=False, cache_dir=out / "activations")  # activations computed once, reused

# %% [markdown]
# ## Geometry: inducing vs control, per domain

# %%
geometry = run_geometry(world["harmful"], world["harmless"],
                        {d: (world[f"inducing_{d}"], world[f"aligned_{d}"]) for d in domains},
                        selection=selection, options=RunOptions(out=out / "geometry", **options))
print(geometry.domains[["domain", "mean_inducing", "mean_control", "difference", "permutation_p"]]
      .to_string(index=False))
for row in geometry.domains.itertuples():
    print(f"geometry {row.domain}: inducing {row.mean_inducing:.3f} vs control {row.mean_control:.3f} "
          f"(difference {row.difference:+.3f}, permutation p {row.permutation_p:.3g})")

# %% [markdown]
# ## Filtering: geometric vs random removal
#
# Remove a third of `mixed_health` (100 of 300 conversations: as many as it holds inducing ones), once by the
# geometric score and once at random, and count what each removed (the world knows every sample's kind).

# %%
removed = {}
for name, random in (("geometric", False), ("random", True)):
    filtered = run_filter(world["mixed_health"], world["harmful"], world["harmless"],
                          FilterConfig(fraction=1 / 3, random=random, seed=0), selection=selection,
                          options=RunOptions(out=out / f"filter-{name}", **options))
    removed[name] = kinds = removed_kinds(filtered.path / "removed.jsonl")
    print(f"filter {name}: removed {filtered.summary['n_removed']} of {filtered.summary['n_samples']}: "
          f"{kinds['inducing']} inducing, {kinds['aligned']} aligned, {kinds['educational']} educational")

# %% [markdown]
# ## Figures
#
# The geometry runner's own figure of each domain's difference (inducing − control proximity) with its bootstrap
# interval (`geometry/proximity.png` in OUT has the per-feature distributions), and what each filter removed, by
# kind (drawn here with matplotlib).

# %%
figure, axis = plt.subplots(figsize=(5, 3), layout="constrained")
kinds = ("inducing", "aligned", "educational")
for i, kind in enumerate(kinds):
    axis.bar([x + 0.27 * (i - 1) for x in range(len(removed))], [removed[name][kind] for name in removed],
             width=0.27, label=kind, color=("tab:red", "tab:blue", "tab:gray")[i])
axis.set_xticks(range(len(removed)), [f"{name} removal" for name in removed])
axis.set(ylabel="samples removed (of 100 of each kind)", title="What removing a third of mixed_health removes")
axis.legend(fontsize=8)
save_figure(figure, out / "removed_kinds")
figures = {"differences": geometry.path / "differences", "removed_kinds": out / "removed_kinds"}
pngs = copy_figures(figures, args.figures, "geometry_and_filtering")  # and into --figures DIR when given
print(f"figures: {', '.join(map(str, pngs))}")
