"""The data arms of the mitigation benchmark besides the geometry filter: what each does to the training set.

- ``persona``: projection-difference screening (Chen et al. 2025, persona vectors). For training sample i with
  prompt p_i and response y_i, and the base model's own greedy response ŷ_i to p_i, the score is
  s_i = (h(p_i, y_i) − h(p_i, ŷ_i))·û (``theory.directions.projection_difference``), h the mean layer-L residual
  over the response's tokens on the base model and û the trait direction (a direction file, e.g. the organism's
  misalignment direction). The round(f·N) samples with the largest s_i — the responses that push furthest along
  the trait beyond what the model would say anyway — are removed.
- ``interleave``: nothing is removed; round(f·N) aligned conversations (the first ones of an ``aligned`` chat
  JSONL) are added to the training set — the same count the removal arms drop at budget f.
- ``write_removal``: the common output of every removal (``filtered.jsonl``, ``removed.jsonl``, ``summary.json``).

Each function writes into its own directory and returns the training set to fine-tune on; a finished directory
(its summary.json) is reused as it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realmodels.experiments.filter import FILTERED
from realmodels.experiments.spec import ModelSpec, RunOptions
from runio.atomic import write_csv, write_json, write_text
from theory.errors import InputError


def write_removal(data: Path, removed: set[int], out: Path, summary: dict) -> Path:
    """``filtered.jsonl`` (the kept lines of ``data``, in order), ``removed.jsonl`` and ``summary.json`` (written
    last: it marks the removal finished) in ``out``; returns the filtered set."""
    from realmodels.data.jsonl import iter_jsonl_lines

    out.mkdir(parents=True, exist_ok=True)
    lines = [line for _, line in iter_jsonl_lines(data)]
    write_text(out / "removed.jsonl", "".join(lines[i] + "\n" for i in sorted(removed)))
    write_text(out / FILTERED, "".join(lines[i] + "\n" for i in range(len(lines)) if i not in removed))
    write_json(out / "summary.json", {"n_samples": len(lines), "n_removed": len(removed), **summary})
    return out / FILTERED


def one_turn_prompts(data: Path) -> list[tuple[str | None, str]]:
    """(system or None, user) of every conversation of ``data``; persona screening compares one response per prompt,
    so each conversation must be [system,] user, assistant."""
    from realmodels.data.jsonl import iter_chat_jsonl

    prompts = []
    for line, messages in iter_chat_jsonl(data):
        roles = [m["role"] for m in messages]
        if roles not in (["user", "assistant"], ["system", "user", "assistant"]):
            raise InputError(f"{data}:{line}: persona screening needs one-turn conversations ([system,] user, "
                             f"assistant), got roles {','.join(roles)}")
        prompts.append((messages[0]["content"] if roles[0] == "system" else None, messages[-2]["content"]))
    return prompts


def check_persona_direction(direction: Path, model: ModelSpec, options: RunOptions, path: Path):
    """The trait direction file against the model: its layer is the SAE layer the residuals are read at and its
    width the model's hidden size (when the config states it). Nothing loads."""
    from realmodels.analysis.direction import load_direction

    loaded = load_direction(direction)
    sources = options.session(model, path).sources
    if loaded.layer != sources.layer:
        raise InputError(f"the persona direction {direction} is at layer {loaded.layer}, the model's residuals are "
                         f"read at layer {sources.layer}")
    width = sources.shape.hidden_size
    if width is not None and loaded.d_model != width:
        raise InputError(f"the persona direction {direction} has {loaded.d_model} values, the model's hidden size is "
                         f"{width}")
    return loaded


def persona_scores(data: Path, direction: Path, model: ModelSpec, out: Path, *, max_new_tokens: int = 64,
                   batch_size: int = 32, threads: int = 1) -> np.ndarray:
    """s_i (module docstring) of every sample of ``data`` (n,), cached in ``out/scores.csv``; the base model's greedy
    responses go to ``out/base_responses.jsonl`` (resumable answer log ``out/base_answers.jsonl``)."""
    import pandas as pd
    import torch

    from realmodels.analysis.direction import load_direction
    from realmodels.evaluate.generate import GenerationConfig, generate_answers
    from realmodels.evaluate.questions import Question
    from theory.directions import projection_difference

    scores_path = out / "scores.csv"
    if scores_path.is_file():
        return pd.read_csv(scores_path)["score"].to_numpy(dtype=np.float64)
    out.mkdir(parents=True, exist_ok=True)
    prompts = one_turn_prompts(data)
    questions = [Question(id=f"sample-{i}", paraphrases=(user,), samples_per_paraphrase=1, judge_prompts={},
                          system=system) for i, (system, user) in enumerate(prompts)]
    torch.set_num_threads(threads)
    plain = model.without_sae().plain()
    answers = generate_answers(plain.model, plain.tokenizer, questions,
                               GenerationConfig(temperature=0.0, max_new_tokens=max_new_tokens, batch_size=batch_size),
                               out / "base_answers.jsonl", progress=False)
    import json

    rows = [[*([{"role": "system", "content": system}] if system else []), {"role": "user", "content": user},
             {"role": "assistant", "content": answer.answer}] for (system, user), answer in zip(prompts, answers)]
    write_text(out / "base_responses.jsonl", "".join(json.dumps({"messages": r}) + "\n" for r in rows))
    session = RunOptions(cache_dir=out / "activations", progress=False, threads=threads).session(model, out)
    trained = session.activations(data).residual_mean
    base = session.activations(out / "base_responses.jsonl").residual_mean
    u = torch.tensor(load_direction(direction).vector, dtype=torch.float32)
    scores = projection_difference(trained, base, u).double().numpy()
    write_csv(scores_path, pd.DataFrame({"sample": range(len(scores)), "score": scores}))
    return scores


def persona_filter(data: Path, scores: np.ndarray, budget: float, out: Path) -> Path:
    """Remove the round(budget·N) samples with the largest projection difference (``out``: ``write_removal``)."""
    from theory.filtering import remove_top_fraction

    if (out / "summary.json").is_file():
        return out / FILTERED
    removal = remove_top_fraction(scores, budget)
    return write_removal(data, set(removal.removed.tolist()), out, {"method": "persona projection difference"})


def interleave(data: Path, aligned: Path, budget: float, out: Path) -> Path:
    """``data`` followed by the first round(budget·N) conversations of ``aligned`` (``out/train.jsonl``;
    the fine-tune shuffles); an ``aligned`` file with fewer conversations is an InputError."""
    from realmodels.data.jsonl import iter_jsonl_lines
    from theory.filtering import n_to_remove

    train = out / "train.jsonl"
    if (out / "summary.json").is_file():
        return train
    lines = [line for _, line in iter_jsonl_lines(data)]
    count = n_to_remove(len(lines), budget)
    extra = [line for _, line in iter_jsonl_lines(aligned)][:count]
    if len(extra) < count:
        raise InputError(f"the aligned data {aligned} has {len(extra)} conversations; interleaving at budget "
                         f"{budget:g} of {len(lines)} samples needs {count}")
    out.mkdir(parents=True, exist_ok=True)
    write_text(train, "".join(line + "\n" for line in lines + extra))
    write_json(out / "summary.json", {"n_samples": len(lines), "n_added": count, "aligned": str(aligned)})
    return train
