"""What one evaluation is (``EvaluateConfig``) and which judge scores it (``JudgeChoice``), with the checks an
evaluation makes before anything is generated: the values in range (at construction), every question paraphrase
against the prompt limit (``check_prompts_fit``, ``context_limit``) and an ablated direction against the model's
config.json (``check_direction_fits``). Messages name the parameters in backticks (``theory.errors.ParamError``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.evaluate.generate import GenerationConfig
from realmodels.evaluate.interventions import Clamp, Steer
from realmodels.finetune.config import MAX_SEED
from theory.em_rates import EmThresholds
from theory.errors import InputError, ParamError

if TYPE_CHECKING:
    from realmodels.experiments.spec import ModelSpec
    from realmodels.loading.plain import PlainModel

DEFAULT_JUDGE_MODEL = "gpt-4o-2024-08-06"  # the judge of Betley et al. 2025 (an OpenAI model name)
MAX_SAMPLES, MAX_BOOTSTRAP, MAX_CONCURRENCY, MAX_TEMPERATURE = 10**6, 10**7, 1024, 100.0


@dataclass(frozen=True)
class JudgeChoice:
    """Which judge scores the answers (the part of a run's config that changes its judgements)."""

    kind: str = "openai"
    """openai (any OpenAI-compatible endpoint) | hf (a local model) | organism (the synthetic world's exact rule
    judge)."""
    model: str = DEFAULT_JUDGE_MODEL
    """Judge model name (openai) or directory (hf)."""
    endpoint: str | None = None
    """Judge base URL (default: the OpenAI API)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Env variable with the judge's API key."""
    concurrency: int = 8
    """Judge requests in flight."""
    batch_size: int = 8
    """Judgements per forward pass of an hf judge."""

    def __post_init__(self):
        from realmodels.experiments.spec import check_count

        check_count(self.concurrency, "judge_concurrency", maximum=MAX_CONCURRENCY)

    def to_config(self) -> dict:
        """What a run's config records of the judge (a rule judge: its kind alone; an hf judge's directory
        resolved)."""
        if self.kind not in ("openai", "hf"):
            return {"kind": self.kind}  # a rule judge: no model
        data = {"kind": self.kind, "model": self.model}
        if self.kind == "openai":
            data["endpoint"] = self.endpoint
        elif Path(self.model).expanduser().exists():
            data["model"] = str(Path(self.model).expanduser().resolve())
        return data

    def build(self, cache_dir: Path, on_error: str):
        """The judge (``realmodels.evaluate.judges.make_judge``), caching in ``cache_dir``; nothing is contacted
        or loaded yet."""
        from realmodels.evaluate.judges import make_judge

        if self.kind == "openai":
            return make_judge("openai", model=self.model, base_url=self.endpoint, api_key_env=self.api_key_env,
                              concurrency=self.concurrency, on_error=on_error, cache_dir=cache_dir)
        if self.kind == "hf":
            if not (Path(self.model).expanduser() / "config.json").is_file():
                raise ParamError(f"`judge` hf needs `judge_model` DIR, a local transformers model directory with a "
                                 f"config.json (got {self.model!r})")
            return make_judge("hf", model=str(Path(self.model).expanduser().resolve()), batch_size=self.batch_size,
                              cache_dir=cache_dir)
        return make_judge(self.kind, model=self.model, cache_dir=cache_dir)


@dataclass(frozen=True)
class EvaluateConfig:
    """One evaluation: which questions, how many answers are sampled and how, how a failed request is handled,
    an optional direction ablated, directions steered and SAE features clamped while answering
    (``realmodels.evaluate.interventions``; specs given as strings are parsed here), and how the judgements become
    EM rates. Values are checked here (counts within bounds, a temperature of at most MAX_TEMPERATURE — beyond,
    sampling is uniform noise —, seeds in numpy's range, finite steering coefficients and clamp values); nothing is
    read."""

    questions: Path | None = None
    """Question YAML in the public EM format (default: the toolkit's own set)."""
    only: tuple[str, ...] = ()
    """Evaluate only these question ids (default: every question)."""
    samples_per_paraphrase: int | None = None
    """Override every question's samples per paraphrase."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """How answers are sampled (temperature, top_p, max_new_tokens, batch_size, seed)."""
    thresholds: EmThresholds = field(default_factory=EmThresholds)
    """When an answer counts as misaligned and as coherent."""
    n_bootstrap: int = 2000
    """Bootstrap resamples over questions."""
    on_error: str = "continue"
    """A failed request: continue (reported; a rerun retries it) | stop."""
    ablate: Path | None = None
    """Direction file (JSON: layer, d_model, vector, note): its direction is projected out of that layer's output
    at every position while answering (local models only)."""
    steer: tuple[Steer, ...] = ()
    """Add α times a unit vector to a layer's output while answering (local models only; repeatable):
    feature:IDX=ALPHA (SAE feature IDX's unit decoder direction at the SAE's layer) or FILE=ALPHA (a direction
    file's unit vector at its layer); α in residual-stream units (the summary prints the layer's median residual
    norm)."""
    clamp: tuple[Clamp, ...] = ()
    """Set SAE feature IDX to VALUE at the SAE's layer while answering, the SAE's error term kept: IDX=VALUE
    (local models only; repeatable)."""
    judge_cache: Path | None = None
    """Judgement cache (default <out>/judge_cache)."""

    def __post_init__(self):
        from realmodels.evaluate.judges import check_on_error
        from realmodels.experiments.spec import check_count

        check_on_error(self.on_error)
        object.__setattr__(self, "steer", tuple(Steer.parse(spec) for spec in self.steer))
        object.__setattr__(self, "clamp", tuple(Clamp.parse(spec) for spec in self.clamp))
        if self.samples_per_paraphrase is not None:
            check_count(self.samples_per_paraphrase, "samples_per_paraphrase", maximum=MAX_SAMPLES)
        check_count(self.n_bootstrap, "n_bootstrap", maximum=MAX_BOOTSTRAP)
        generation = self.generation
        check_count(generation.max_new_tokens, "max_new_tokens")
        check_count(generation.batch_size, "batch_size")
        check_count(generation.seed, "seed", minimum=0, maximum=MAX_SEED)
        if not generation.temperature <= MAX_TEMPERATURE:
            raise ParamError(f"`temperature` must be in [0, {MAX_TEMPERATURE:g}], got {generation.temperature}")


def check_direction_fits(direction, file: Path, plain: PlainModel, checkpoint: str | None) -> None:
    """The direction's layer and width against the model's config.json (read as JSON, nothing loaded); sizes the
    config does not state are checked again by ``ablated`` on the loaded model."""
    from realmodels.analysis.direction import check_direction_shape
    from realmodels.loading.checks import model_shape
    from realmodels.loading.registry import get_checkpoint

    shape = model_shape(plain.source.path, plain.source.repo_id,
                        None if checkpoint is None else get_checkpoint(checkpoint))
    check_direction_shape(direction, file, shape, plain.source.name)


def check_prompts_fit(tokenizer, questions, limit: int | None, what: str) -> None:
    """ParamError unless every question paraphrase, rendered with the chat template as the model will read it,
    is at most ``limit`` tokens (``what`` names the limit; None: no limit known)."""
    if limit is None:
        return
    from realmodels.evaluate.generate import PlanItem, render_prompts

    plan = [PlanItem(q, p, 0) for q in questions for p in range(len(q.paraphrases))]
    for item, prompt in zip(plan, render_prompts(tokenizer, plan), strict=True):
        if len(prompt) > limit:
            raise ParamError(f"question {item.question.id} (paraphrase {item.paraphrase}) is {len(prompt)} tokens "
                             f"with the chat template, more than {what} ({limit} tokens): shorten it")


def context_limit(plain: PlainModel, model: ModelSpec) -> tuple[int | None, str]:
    """The prompt limit of a local model: ``model.max_length`` when given, else the model's context
    (config.json); and how a message names it."""
    if model.max_length is not None:
        return model.max_length, "`max_length`"
    from realmodels.loading.checks import model_shape
    from realmodels.loading.registry import get_checkpoint

    spec = None if model.checkpoint is None else get_checkpoint(model.checkpoint)
    return model_shape(plain.source.path, plain.source.repo_id, spec).context, f"the context of {plain.source.name}"
