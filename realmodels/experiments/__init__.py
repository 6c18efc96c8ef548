"""The experiments, as library calls: one runner per experiment, each taking its config dataclass, a model
description (``ModelSpec``) and run options (``RunOptions``), and returning a result object (``RunResult``: the
run directory, the summary, tables as pandas DataFrames, matplotlib figures, ``save(dir)``).

Every runner checks its whole input before anything loads or is written (every dataset line, every conversation
tokenised, the model's and the SAE's configs), binds its run directory ``options.out`` to its config, resumes
what a killed run finished and returns a finished run as it is. The ``realmodels`` commands are thin clients of
these runners (``cli/``)::

    from realmodels.experiments import ModelSpec, RunOptions, run_geometry

    result = run_geometry("harmful.jsonl", "harmless.jsonl", {"health": ("bad_medical.jsonl", "good_medical.jsonl")},
                          model=ModelSpec(checkpoint="gemma-2-2b"), options=RunOptions(out="runs/geometry"))
    result.domains      # a DataFrame: one row per domain
    result.figures      # {"proximity": Figure, "differences": Figure}

Runners: ``run_geometry``, ``run_filter``, ``run_audit``, ``run_amplification``, ``run_diff`` (SAE analyses on a
``Session``, ``realmodels.experiments.run``), ``run_finetune`` (fine-tuning, ``realmodels.finetune``),
``run_evaluation`` (answers, judgements, EM rates); in their modules: ``mitigate.run_mitigation`` (filter ->
finetune -> evaluate per arm), ``organism.run_organism_build``, ``organism.write_organism_world`` and
``organism.Organism`` (the model organism), ``features.run_feature_cards`` (feature cards and their HTML report),
``study.run_study`` (the paper's study on the organism, composed of the runners above), ``causal.run_causal``
(steering, clamping and ablation as causal tests on the organism). Each module's docstring has a runnable example;
``examples/organism_pipeline.py`` chains them."""

from realmodels.experiments.amplification import AmplificationResult, run_amplification
from realmodels.experiments.audit import AuditResult, run_audit
from realmodels.experiments.diff import DiffResult, run_diff
from realmodels.experiments.evaluate import EvaluationResult, run_evaluation
from realmodels.experiments.filter import FilterResult, run_filter
from realmodels.experiments.finetune import FinetuneResult, run_finetune
from realmodels.experiments.geometry import Domain, GeometryResult, run_geometry
from realmodels.experiments.result import RunResult
from realmodels.experiments.spec import ModelSpec, RunOptions

__all__ = ["AmplificationResult", "AuditResult", "DiffResult", "Domain", "EvaluationResult", "FilterResult",
           "FinetuneResult", "GeometryResult", "ModelSpec", "RunOptions", "RunResult", "run_amplification", "run_audit",
           "run_diff", "run_evaluation", "run_filter", "run_finetune", "run_geometry"]
