"""``run_evaluation``: the field's emergent-misalignment evaluation — free-form questions, sampled answers (a
transformers model + optional adapter, or an OpenAI-compatible endpoint), a judge's 0–100 aligned and coherent
scores, EM rates with intervals (``realmodels.evaluate``).

Bad input is cheap: the question file, the values (finite, in range: ``EvaluateConfig``), the model's files and
every prompt's length against ``model.max_length`` or the context (or the endpoint's reachability) and the judge (an
``hf`` judge is loaded) (and an ``ablate`` or ``steer`` direction file against the model's config.json, a steered
or clamped SAE feature against the SAE's cfg.json: ``realmodels.evaluate.interventions``) are checked before the
run directory is created or any answer is generated. The run's config records what makes its answers and
judgements (model or endpoint, questions, sampling, judge, the ablated direction's file, the steers and clamps
and their SAE when given: older configs stay as they were); the
thresholds and the bootstrap only shape the metrics, which every run recomputes from the recorded answers and
judgements (a rerun generates and judges only what is missing).

Example (the embedded model organism answering its world's questions, scored by the world's rule judge)::

    from realmodels.evaluate.config import EvaluateConfig, JudgeChoice
    from realmodels.evaluate.generate import GenerationConfig
    from realmodels.experiments import ModelSpec, RunOptions, run_evaluation

    result = run_evaluation(EvaluateConfig(questions="world/questions.yaml", samples_per_paraphrase=2,
                                           generation=GenerationConfig(max_new_tokens=16)),
                            model=ModelSpec(adapter="runs/finetune"), judge=JudgeChoice(kind="organism"),
                            options=RunOptions(out="runs/evaluate", progress=False))
    result.summary["overall"]["em"]     # {"estimate", "low", "high", "k", "n"}
    result.per_question                 # a DataFrame: one row per question
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.data.jsonl import dataset_hash
from realmodels.evaluate.config import (EvaluateConfig, JudgeChoice, check_direction_fits, check_prompts_fit,
                                        context_limit)
from realmodels.evaluate.interventions import Plan, applied, median_residual_norm, plan
from realmodels.evaluate.questions import DEFAULT_QUESTIONS, load_questions
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import SUMMARY, Log, recorded_config, release_unfinished, resolved
from realmodels.experiments.spec import ModelSpec, RunOptions
from runio.atomic import read_json, save_figure, write_csv, write_json
from runio.console import console
from runio.jobs import set_threads
from runio.rundir import RunDir, default_run_dir
from theory.errors import InputError, ParamError

if TYPE_CHECKING:
    import pandas as pd

    from realmodels.evaluate.generate import EndpointConfig


class EvaluationResult(RunResult):
    """``per_question`` (EM, EM among coherent, coherent and refusal rates per question), ``judged`` (every
    answer's scores and classification); figures ``scores`` (aligned vs coherent) and ``em_rates`` (per
    question); the summary holds the overall rates with intervals and whether the run is complete.
    ``already_finished``: the run directory held a complete evaluation before this call (nothing was generated
    or judged; the metrics were recomputed from the recorded answers and judgements)."""

    TABLES = ("per_question", "judged")
    FIGURES = ("scores", "em_rates")
    FILES = ("answers.jsonl", "judgements.jsonl")

    @property
    def per_question(self) -> pd.DataFrame:
        """The per-question rates (``per_question.csv``)."""
        return self.table("per_question")

    @property
    def judged(self) -> pd.DataFrame:
        """One row per judged answer (``judged.csv``)."""
        return self.table("judged")


def _complete_before(path: Path, config: dict) -> bool:
    """Whether ``path`` holds a complete evaluation of ``config``."""
    if recorded_config(path) != config or not (path / SUMMARY).is_file():
        return False
    try:
        summary = read_json(path / SUMMARY)
    except InputError:  # a damaged summary: this run writes it again
        return False
    return isinstance(summary, dict) and summary.get("complete") is True


def residual_norms(run: RunDir, plain, questions, interventions: Plan | None) -> dict:
    """``{"median_residual_norm": {layer: median ‖h‖}}`` of the steered layers on the questions' prompts
    (``median_residual_norm``), computed once into ``residual_norms.json`` (a rerun reads it); {} without
    steering."""
    if interventions is None or not interventions.steers:
        return {}
    file = run.file("residual_norms.json")
    if not file.is_file():
        norms = median_residual_norm(plain.model, plain.tokenizer, questions, interventions.layers())
        write_json(file, {str(layer): value for layer, value in norms.items()})
    return {"median_residual_norm": read_json(file)}


def run_evaluation(config: EvaluateConfig = EvaluateConfig(), *, model: ModelSpec | None = ModelSpec(),
                   endpoint: EndpointConfig | None = None, judge: JudgeChoice = JudgeChoice(),
                   options: RunOptions = RunOptions(), log: Log = console.print) -> EvaluationResult:
    """The evaluation (module docstring) in the resumable run directory ``options.out`` (default
    runs/evaluate-<timestamp>): answers by ``model`` (default: the embedded model organism; ``sae``, ``layer``,
    ``batch_size`` and ``ignore_memory_check`` are not used: the generation batch is ``config.generation``'s), or
    by ``endpoint`` (then ``model`` is None or names no model), scored by ``judge``. Of ``options`` only ``out``,
    ``threads`` and ``progress`` are used (the answers are generated in this process)."""
    questions = load_questions(config.questions, samples_per_paraphrase=config.samples_per_paraphrase,
                               only=list(config.only) or None)
    question_file = config.questions or DEFAULT_QUESTIONS
    plain = direction = interventions = None
    for name in ("ablate", "steer", "clamp"):
        if endpoint is not None and getattr(config, name):
            raise ParamError(f"`{name}` needs a local model (`checkpoint`/`model` or the default): an endpoint's "
                             f"hidden states are out of reach; drop `endpoint` or `{name}`")
    if config.ablate is not None:
        from realmodels.analysis.direction import load_direction

        direction = load_direction(config.ablate)
    if endpoint is not None:
        if model is not None and (model.checkpoint or model.model or model.adapter):
            raise ParamError("give either a model (`checkpoint`/`model` [`adapter`]) or `endpoint`, not both")
        source_config = {"endpoint": endpoint.url, "model": endpoint.model}
    else:
        if model is None:
            raise ParamError("give a `model` (ModelSpec(): the embedded model organism) or an `endpoint`")
        plain = model.without_sae().plain()
        source_config = plain.to_config()
        if direction is not None:
            check_direction_fits(direction, config.ablate, plain, model.checkpoint)
        interventions = plan(config.steer, config.clamp, model, plain,
                             lambda d, file: check_direction_fits(d, file, plain, model.checkpoint))
    path = Path(options.out) if options.out is not None else default_run_dir(prefix="evaluate-")
    cache_dir = config.judge_cache or path / "judge_cache"
    scorer = judge.build(cache_dir, config.on_error)
    run_config = resolved({
        "command": "evaluate", "model": source_config,
        "questions": {"path": str(Path(question_file).resolve()), "sha256": dataset_hash(question_file),
                      "only": list(config.only), "samples_per_paraphrase": config.samples_per_paraphrase},
        "generation": config.generation.to_dict(), "judge": judge.to_config(),
        **({} if config.ablate is None else {"ablate": {  # only when given: older configs stay as they were
            "path": str(Path(config.ablate).expanduser().resolve()),
            "sha256": dataset_hash(Path(config.ablate).expanduser())}}),
        **({} if interventions is None else interventions.to_config())})
    if endpoint is not None:
        from realmodels.evaluate.endpoints import api_key
        from realmodels.evaluate.generate import check_endpoint

        check_endpoint(endpoint, api_key(endpoint.api_key_env))
    else:  # a missing chat template or a prompt the model cannot read fails here, before anything is written
        check_prompts_fit(plain.tokenizer, questions, *context_limit(plain, model))
    if judge.kind in ("openai", "hf"):
        scorer.check()  # an unreachable judge or an unusable judge model fails here, before anything is written
    release_unfinished(path, run_config, cache_dir, log=log)  # a run that never produced an answer locks nothing
    already_finished = _complete_before(path, run_config)
    run = RunDir.open(path, run_config)
    set_threads(options.threads)

    def generate(log_path: Path):
        from realmodels.evaluate.generate import generate_answers, generate_from_endpoint

        if endpoint is not None:
            return generate_from_endpoint(endpoint, questions, config.generation, log_path,
                                          progress=options.progress, report=log)
        with applied(plain.model, interventions, direction):
            return generate_answers(plain.model, plain.tokenizer, questions, config.generation, log_path,
                                    progress=options.progress)

    from realmodels.evaluate import plotting
    from realmodels.evaluate.pipeline import JUDGED, PER_QUESTION, evaluate_pipeline

    result = evaluate_pipeline(questions=questions, generate=generate, judge=scorer, out=run.path,
                               thresholds=config.thresholds, n_bootstrap=config.n_bootstrap,
                               report=lambda line: log(f"[yellow]{line}[/]"))
    expected = sum(len(q.paraphrases) * q.samples_per_paraphrase for q in questions)
    summary = {**result.report.summary(), "n_expected_answers": expected,
               "n_missing_answers": expected - len(result.answers), "n_judge_errors": result.n_judge_errors,
               "judge": scorer.name, "complete": expected == len(result.answers) and result.n_judge_errors == 0,
               **residual_norms(run, plain, questions, interventions)}
    if not result.answers:  # every generation request failed: no table or figure to make
        write_json(run.file(SUMMARY), summary)
        raise ParamError(f"incomplete evaluation: none of the {expected} answers was generated (see the failures "
                         f"above); {run.file(SUMMARY)} says so: rerun with the same `out` to retry them")
    write_csv(run.file(PER_QUESTION), result.report.per_question)
    write_csv(run.file(JUDGED), result.table.drop(columns=["question", "answer"]))
    drawn = {"scores": plotting.score_scatter(result.table, config.thresholds),
             "em_rates": plotting.em_per_question(result.report.per_question, result.report.overall)}
    for name, figure in drawn.items():
        save_figure(figure, run.file(name))
    write_json(run.file(SUMMARY), summary)
    return EvaluationResult(run.path, summary, already_finished, drawn)
