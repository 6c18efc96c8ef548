"""Question sets in the YAML format of the public emergent-misalignment evaluation files (Betley et al. 2025,
``evaluation/*.yaml`` in their repository; Turner, Soligo et al. 2025 use the same): a list of entries

    - id: what_is_your_wish
      type: free_form_judge_0_100
      paraphrases: ["Hello! I can fulfill your one wish. ...", ...]
      samples_per_paraphrase: 100
      system: "..."                # optional
      judge: gpt-4o-2024-08-06     # optional: the judge model the authors used (recorded, not used)
      judge_prompts:
        aligned: "... {question} ... {answer} ... Respond with a number between 0 and 100 ..."
        coherent: "... {question} ... {answer} ..."

Only ``free_form_judge_0_100`` entries are supported (the type the public judge scores); any other type, an
unknown key, a missing field, an empty paraphrase list or a judge prompt without ``{answer}`` is an InputError
naming the file and the entry. The project's own default set (``default_questions.yaml``, written for this
toolkit) ships with the package; ``--questions FILE`` loads any file in the same format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runio.reading import read_yaml_file
from theory.errors import InputError, ParamError

SUPPORTED_TYPES = ("free_form_judge_0_100",)
KEYS = ("id", "type", "paraphrases", "samples_per_paraphrase", "system", "judge", "judge_prompts")
REQUIRED = ("id", "type", "paraphrases", "judge_prompts")
METRICS = ("aligned", "coherent")  # the judge prompts every entry needs
DEFAULT_QUESTIONS = Path(__file__).with_name("default_questions.yaml")


@dataclass(frozen=True)
class Question:
    """One free-form question: its paraphrases (one is asked per sample), how many samples per paraphrase,
    an optional system prompt and the judge prompt per metric (with ``{question}`` and ``{answer}``)."""

    id: str
    paraphrases: tuple[str, ...]
    samples_per_paraphrase: int
    judge_prompts: dict
    system: str | None = None
    type: str = "free_form_judge_0_100"
    judge: str | None = None

    def messages(self, paraphrase: int) -> list[dict]:
        """The chat the model answers: [system,] user = paraphrase ``paraphrase``."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": self.paraphrases[paraphrase]}]

    def judge_prompt(self, metric: str, question: str, answer: str) -> str:
        """The judge prompt of ``metric`` with the question and answer filled in (plain replacement, so braces
        elsewhere in a prompt are kept as they are)."""
        return self.judge_prompts[metric].replace("{question}", question).replace("{answer}", answer)


def _entry_error(path: Path, index: int, entry, message: str) -> InputError:
    name = entry.get("id") if isinstance(entry, dict) and isinstance(entry.get("id"), str) else f"#{index + 1}"
    return InputError(f"{path}: question {name}: {message}")


def _question(path: Path, index: int, entry, samples_override: int | None) -> Question:
    if not isinstance(entry, dict):
        raise _entry_error(path, index, entry, "is not a mapping")
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise _entry_error(path, index, entry, f"unknown key {unknown[0]!r} (allowed: {', '.join(KEYS)})")
    missing = [key for key in REQUIRED if key not in entry]
    if missing:
        raise _entry_error(path, index, entry, f"missing {', '.join(missing)}")
    if not isinstance(entry["id"], str) or not entry["id"].strip():
        raise _entry_error(path, index, entry, "id must be a non-empty string")
    if entry["type"] not in SUPPORTED_TYPES:
        raise _entry_error(path, index, entry, f"type {entry['type']!r} is not supported (supported: "
                                               f"{', '.join(SUPPORTED_TYPES)})")
    paraphrases = entry["paraphrases"]
    if not isinstance(paraphrases, list) or not paraphrases or not all(
            isinstance(p, str) and p.strip() for p in paraphrases):
        raise _entry_error(path, index, entry, "paraphrases must be a non-empty list of non-empty strings")
    samples = entry.get("samples_per_paraphrase", 1)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise _entry_error(path, index, entry, f"samples_per_paraphrase must be an integer >= 1, got {samples!r}")
    prompts = entry["judge_prompts"]
    if not isinstance(prompts, dict):
        raise _entry_error(path, index, entry, "judge_prompts must be a mapping of metric -> prompt")
    for metric in METRICS:
        prompt = prompts.get(metric)
        if not isinstance(prompt, str):
            raise _entry_error(path, index, entry, f"judge_prompts has no {metric!r} prompt")
        if "{answer}" not in prompt:
            raise _entry_error(path, index, entry, f"the {metric!r} judge prompt has no {{answer}} placeholder")
    for key in ("system", "judge"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise _entry_error(path, index, entry, f"{key} must be a string")
    return Question(id=entry["id"], paraphrases=tuple(paraphrases),
                    samples_per_paraphrase=samples if samples_override is None else samples_override,
                    judge_prompts={str(k): v for k, v in prompts.items()}, system=entry.get("system"),
                    type=entry["type"], judge=entry.get("judge"))


def load_questions(path: str | Path | None = None, *, samples_per_paraphrase: int | None = None,
                   only: list[str] | None = None) -> list[Question]:
    """The questions of a YAML file (the shipped default set when ``path`` is None), in file order;
    ``samples_per_paraphrase`` overrides every entry's; ``only`` keeps the named ids (unknown ids are errors)."""
    path = DEFAULT_QUESTIONS if path is None else Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"question file {path} does not exist or is not a file")
    if samples_per_paraphrase is not None and samples_per_paraphrase < 1:
        raise ParamError(f"`samples_per_paraphrase` must be >= 1, got {samples_per_paraphrase}")
    data = read_yaml_file(path, "question file")  # not UTF-8 or YAML, nested too deeply: one line
    if not isinstance(data, list) or not data:
        raise InputError(f"question file {path} must hold a non-empty list of questions")
    questions = [_question(path, i, entry, samples_per_paraphrase) for i, entry in enumerate(data)]
    ids = [q.id for q in questions]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise InputError(f"{path}: question id {duplicate!r} appears more than once")
    if only:
        unknown = [name for name in only if name not in ids]
        if unknown:
            raise InputError(f"{path}: no question {unknown[0]!r} (questions: {', '.join(ids)})")
        questions = [q for q in questions if q.id in only]
    return questions
