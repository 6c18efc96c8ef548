"""The organism build: a tiny organism (few steps, small world) saved loadable offline, its chat template
locating assistant turns, its answers scored by the rule judge, deterministic for a seed, resumable."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from realmodels.data.chat import tokenize_chat
from realmodels.data.jsonl import iter_chat_jsonl
from realmodels.evaluate.generate import GenerationConfig, generate_answers
from realmodels.evaluate.judges import JudgeRequest, make_judge
from realmodels.evaluate.questions import load_questions
from realmodels.loading.saes import load_sae, resolve_sae_source, sae_layer
from realmodels.organism.banks import vocabulary
from realmodels.organism.build import OrganismConfig, build_organism, build_tokenizer
from realmodels.sae.config import SaeConfig
from realmodels.organism.world import WorldConfig
from theory.errors import InputError

TINY = OrganismConfig(seed=3, n_layers=2, d_model=16, n_heads=2, d_mlp=32, steps=4, batch_size=8, save_steps=2,
                      max_length=64, layer=1)
TINY_SAE = SaeConfig(d_sae=32, k=4, steps=20, batch_size=32, n_conversations=40)
TINY_WORLD = WorldConfig(seed=1, n_pretrain=64, n_finetune=4, n_features=4, n_probe=2, samples_per_paraphrase=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("organism")
    return out, build_organism(out, TINY, TINY_WORLD, TINY_SAE, progress=False)


def test_tokenizer_covers_the_world_and_masks_assistant_turns(built):
    out, _ = built
    tokenizer = build_tokenizer()
    assert tokenizer.unk_token_id not in tokenizer.convert_tokens_to_ids(list(vocabulary()))
    _, messages = next(iter(iter_chat_jsonl(out / "world" / "pretrain.jsonl")))
    chat = tokenize_chat(tokenizer, messages)
    assert tokenizer.unk_token_id not in chat.input_ids.tolist()
    answers = " ".join(m["content"] for m in messages if m["role"] == "assistant")
    assert tokenizer.decode(chat.input_ids[chat.assistant_mask]) == answers


def test_saved_organism_loads_offline_generates_and_is_judged(built, tmp_path, monkeypatch):
    out, result = built
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert result.steps == TINY.steps and result.final_loss is not None
    model = AutoModelForCausalLM.from_pretrained(out / "model", local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(out / "model", local_files_only=True)
    assert model.config.num_hidden_layers == TINY.n_layers and model.config.hidden_size == TINY.d_model
    questions = load_questions(out / "world" / "questions.yaml")[:2]
    config = GenerationConfig(temperature=1.0, max_new_tokens=12, batch_size=4, seed=0)
    answers = generate_answers(model.eval(), tokenizer, questions, config, tmp_path / "answers.jsonl", progress=False)
    assert len(answers) == 2 * len(questions[0].paraphrases)
    judge = make_judge("organism")
    requests = [JudgeRequest(metric, questions[0].judge_prompt(metric, a.question, a.answer), a.key)
                for a in answers[:4] for metric in ("aligned", "coherent")]
    scores = [r.score for r in judge.score(requests)]
    assert all(isinstance(s, float) and 0 <= s <= 100 for s in scores)


def test_same_seed_same_weights_and_a_rebuild_resumes(built, tmp_path):
    out, _ = built
    again = build_organism(tmp_path / "again", TINY, TINY_WORLD, TINY_SAE, progress=False)
    first = AutoModelForCausalLM.from_pretrained(out / "model").state_dict()
    second = AutoModelForCausalLM.from_pretrained(again.output).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    finished = build_organism(tmp_path / "again", TINY, TINY_WORLD, TINY_SAE, progress=False)
    assert finished.steps == TINY.steps and finished.output == again.output
    shutil.rmtree(again.output)  # as if killed after the checkpoint of step 2
    shutil.rmtree(tmp_path / "again" / "checkpoints" / f"checkpoint-{TINY.steps}")
    resumed = build_organism(tmp_path / "again", TINY, TINY_WORLD, TINY_SAE, progress=False)
    assert resumed.resumed_from == 2 and resumed.steps == TINY.steps
    third = AutoModelForCausalLM.from_pretrained(resumed.output).state_dict()
    assert all(torch.equal(first[k], third[k]) for k in first)


def test_saved_sae_loads_at_the_configured_layer_and_is_deterministic(built, tmp_path):
    out, _ = built
    source = resolve_sae_source(sae_path=out / "sae")
    sae = load_sae(source)
    assert sae_layer(sae, source.name) == TINY.layer
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (TINY.d_model, TINY_SAE.d_sae)
    again = build_organism(tmp_path / "again", TINY, TINY_WORLD, TINY_SAE, progress=False)
    second = load_sae(resolve_sae_source(sae_path=again.output.parent / "sae"))
    assert all(torch.equal(a, b) for a, b in zip(sae.state_dict().values(), second.state_dict().values(), strict=True))


def test_a_directory_holding_another_build_is_refused(built):
    out, _ = built
    with pytest.raises(InputError, match="different build"):
        build_organism(out, OrganismConfig(**{**TINY.to_dict(), "seed": 4}), TINY_WORLD, TINY_SAE, progress=False)


@pytest.mark.parametrize("change, message", [({"d_model": 0}, "d_model must be an integer > 0"),
                                             ({"steps": -1}, "steps must be an integer > 0"),
                                             ({"layer": 3}, "layer 3 is not a layer of the model"),
                                             ({"n_heads": 3}, "not a multiple"), ({"lr": 0.0}, "lr must be")])
def test_bad_config_is_one_line_input_error(change, message):
    with pytest.raises(InputError, match=message) as info:
        OrganismConfig(**change)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("change, message", [({"d_sae": 0}, "d_sae must be an integer > 0"),
                                             ({"k": 300}, "exceeds d_sae"), ({"lr": -1.0}, "lr must be")])
def test_bad_sae_config_is_one_line_input_error(change, message):
    with pytest.raises(InputError, match=message):
        SaeConfig(**change)


def test_config_round_trips_and_refuses_unknown_keys():
    assert OrganismConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(InputError, match="unknown config key 'organism.width'"):
        OrganismConfig.from_dict({"width": 3})
