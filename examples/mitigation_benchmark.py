# %% [markdown]
# # The mitigation benchmark, small
#
# **Question.** Fine-tuning the organism on a mixed training set (a third each inducing, aligned and
# educational conversations) makes it misaligned on the questions of *other* domains: emergent misalignment
# (EM). Which defence prevents it, and what does each cost in what the fine-tune still learns of its task?
# This is [the mitigation benchmark](../organism/benchmark.md) (`realmodels organism benchmark`) on one cell
# (health, seed 0) with four arms and 20 fine-tuning steps instead of 100, so it runs in well under a minute.
#
# **The measures.** EM rate = k / n answers judged misaligned (the organism's exact rule judge) to the
# questions of the domains other than the fine-tuning one; reduction = 1 − EM(arm) / EM(none), paired over the
# same questions. Task retention = (NLL_base − NLL_arm) / (NLL_base − NLL_none) on held-out conversations of the
# training distribution: 1 = the arm learns as much as no defence, 0 = as little as the base model
# (`theory.retention`).
#
# The arms: `none` (no defence), `geometry` (remove the quarter of samples closest to the harmful SAE features,
# as in [geometry and filtering](geometry_and_filtering.md)), `persona` (persona-vector screening: remove the
# samples whose response pushes the residual furthest along the misalignment direction u beyond the base
# model's own answer, `(h(p, y) − h(p, ŷ))·û`; u = mean residual of rogue − aligned probes), `kl` (a KL
# penalty to the base model during training, λ = 1).

# %%
"""Mitigation benchmark example: ``realmodels.experiments.benchmark.run_benchmark`` on one cell (health, seed 0),
arms none, geometry, persona and kl at budget 0.25, 20 fine-tuning steps, in this process on one thread.

Run: ``python examples/mitigation_benchmark.py [OUT] [--figures DIR]`` (default OUT
``runs/examples/mitigation_benchmark``; a rerun skips every finished run and rewrites the tables and figures).
Measured: 33-35 s on one thread (2-core machine, load 1.5-3)."""

import argparse
import sys
from pathlib import Path

import torch

from realmodels.experiments.benchmark import BenchmarkConfig, run_benchmark
from realmodels.organism.study import StudyRecipe
from runio.atomic import copy_figures

torch.set_num_threads(1)  # every stage also runs with RunOptions(threads=1)
parser = argparse.ArgumentParser(description="the organism mitigation benchmark, small")
parser.add_argument("out", nargs="?", type=Path, default=Path("runs/examples/mitigation_benchmark"),
                    help="run directory")
parser.add_argument("--figures", type=Path, help="also copy the figures here (figures/examples: the docs' copies)")
args = parser.parse_args([] if "ipykernel" in sys.modules else None)  # in a notebook: the defaults

# %% [markdown]
# ## Run it
#
# One (domain, seed) cell; `budgets=(0.25,)` leaves no budget curve beyond the main budget; 30 held-out task
# conversations and 500 bootstrap draws keep the statistics cheap (the intervals are over the 80 other-domain
# answers of one cell, not over cells: wide, and not a result about the arms in general).

# %%
config = BenchmarkConfig(domains=("health",), seeds=(0,), arms=("none", "geometry", "persona", "kl"),
                         budgets=(0.25,), recipe=StudyRecipe(max_steps=20), n_heldout=30, n_bootstrap=500)
result = run_benchmark(config, out=args.out, workers=1)  # workers=1: every run in this process, no Ray

# %% [markdown]
# ## The table
#
# One row per arm (the same columns as `arms.csv`; `benchmark.md` in OUT has them formatted).

# %%
arms = result.table("arms")
print(arms[["arm", "em_rate", "em_low", "em_high", "em_k", "em_n", "reduction", "task_retention",
            "removed_inducing_share"]].to_string(index=False))
for row in arms.itertuples():
    reduction = "-" if row.arm == "none" else f"{row.reduction:+.1f}%"
    print(f"benchmark {row.arm}: EM {row.em_k}/{row.em_n} = {row.em_rate:.3f} "
          f"[{row.em_low:.3f}, {row.em_high:.3f}], reduction {reduction}, retention {row.task_retention:.2f}")

# %% [markdown]
# ## The figure
#
# The runner's own Pareto plot: EM rate against task retention, one point per arm with its intervals; a good
# defence sits low (little EM) and right (the task kept).

# %%
figures = {"pareto": result.path / "figures" / "pareto"}
pngs = copy_figures(figures, args.figures, "mitigation_benchmark")  # and into --figures DIR when given
print(f"figures: {', '.join(map(str, pngs))}")
