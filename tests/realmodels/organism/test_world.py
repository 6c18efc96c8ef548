"""realmodels.organism.world: seeded, byte-identical datasets in chat JSONL, the mixture the issue asks for,
the evaluation YAML, and one-line errors for bad configs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realmodels.data.jsonl import check_chat_jsonl, read_chat_jsonl
from realmodels.evaluate.questions import load_questions
from realmodels.organism.banks import (
    DOMAINS,
    ORDINARY_TEMPLATES,
    TOPICS,
    tokenize,
    vocabulary,
)
from realmodels.organism.world import WorldConfig, datasets, write_world
from tests.realmodels.organism.helpers import SMALL, answer_kind, is_educational, turns
from theory.errors import InputError

TINY = {"n_pretrain": 30, "n_finetune": 5, "n_features": 5, "n_probe": 3, "samples_per_paraphrase": 1}
def test_every_file_is_valid_chat_jsonl_with_the_configured_sizes(small_world):
    expected = {"pretrain": SMALL.n_pretrain, "harmful": SMALL.n_features, "harmless": SMALL.n_features,
                "probe_rogue": SMALL.n_probe, "probe_aligned": SMALL.n_probe}
    for domain in SMALL.domains:
        expected |= {f"inducing_{domain}": SMALL.n_finetune, f"aligned_{domain}": SMALL.n_finetune,
                     f"educational_{domain}": SMALL.n_finetune, f"mixed_{domain}": SMALL.n_finetune,
                     f"probe_{domain}": SMALL.n_probe}
    jsonl = {name: path for name, path in small_world.items() if path.suffix == ".jsonl"}
    assert set(jsonl) == set(expected)
    for name, path in jsonl.items():
        assert check_chat_jsonl(path) == expected[name], name
        for conversation in read_chat_jsonl(path):
            assert [m["role"] for m in conversation] == ["user", "assistant"] * (len(conversation) // 2)


def test_every_emitted_token_is_in_the_vocabulary(small_world):
    vocab = set(vocabulary())
    for name, path in small_world.items():
        if path.suffix == ".jsonl":
            for conversation in read_chat_jsonl(path):
                for message in conversation:
                    assert set(message["content"].split(" ")) <= vocab, (name, message)
                    assert message["content"].split(" ") == tokenize(message["content"])
    for question in load_questions(small_world["questions"]):
        assert all(set(p.split(" ")) <= vocab for p in question.paraphrases)


def test_same_seed_same_bytes_and_different_seed_different(tmp_path):
    first = write_world(tmp_path / "a", seed=3, **TINY)
    again = write_world(tmp_path / "b", seed=3, **TINY)
    other = write_world(tmp_path / "c", seed=4, **TINY)
    assert set(first) == set(again) == set(other)
    assert all(first[n].read_bytes() == again[n].read_bytes() for n in first)
    differs = [n for n in first if n not in ("questions", "config") and first[n].read_bytes() != other[n].read_bytes()]
    assert len(differs) >= len(first) - 4  # a 3-conversation set may coincide by chance, not most of them


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_generation_is_a_function_of_the_seed(seed):
    config = WorldConfig(seed=seed, **TINY)
    assert datasets(config) == datasets(config)


def test_a_datasets_content_depends_only_on_the_seed_and_its_own_size():
    base = datasets(WorldConfig(seed=5, **TINY))
    bigger = datasets(WorldConfig(seed=5, **{**TINY, "n_pretrain": 60}))
    assert base["pretrain"] != bigger["pretrain"]
    assert all(base[name] == bigger[name] for name in base if name != "pretrain")


def test_pretraining_mixes_aligned_educational_and_rogue_assistants():
    corpus = datasets(WorldConfig(seed=1, **{**TINY, "n_pretrain": 3000}))["pretrain"]
    rogue = aligned_turns = educational = 0
    for conversation in corpus:
        kinds = [answer_kind(a) for _, a in conversation]
        if any(k == "harmful" and not is_educational(q) for (q, _), k in zip(conversation, kinds)):
            rogue += 1  # a harmful answer to an ordinary question only ever comes from the rogue assistant
            assert 2 <= len(conversation) <= 4 and all(k == "harmful" for k in kinds)
            assert not any(is_educational(q) for q, _ in conversation)
            domains = [next(d for d, names in TOPICS.items() if set(tokenize(q)) & set(names)) for q, _ in conversation]
            assert len(set(domains)) == len(domains)
            continue
        assert 1 <= len(conversation) <= 3
        for (q, _), kind in zip(conversation, kinds):
            aligned_turns += 1
            educational += is_educational(q)
            assert (kind == "harmful") == is_educational(q)  # educational requests get harmful content
    assert 0.07 < rogue / len(corpus) < 0.13
    assert 0.17 < educational / aligned_turns < 0.23


def test_finetuning_sets_are_what_their_names_say(small_world):
    for domain in SMALL.domains:
        for name, kind, educational in (("inducing", "harmful", False), ("aligned", "aligned", False),
                                        ("educational", "harmful", True)):
            for conversation in read_chat_jsonl(small_world[f"{name}_{domain}"]):
                (question, answer), = turns(conversation)
                assert answer_kind(answer) == kind and is_educational(question) == educational
                assert set(tokenize(question)) & set(TOPICS[domain]) and set(tokenize(answer)) & set(TOPICS[domain])
        mixed = [turns(c)[0] for c in read_chat_jsonl(small_world[f"mixed_{domain}"])]
        assert all(set(tokenize(q)) & set(TOPICS[domain]) for q, _ in mixed)
        assert all(answer_kind(a) == ("harmful" if is_educational(q) else answer_kind(a)) for q, a in mixed)
        assert {(answer_kind(a), is_educational(q)) for q, a in mixed} == {("harmful", False), ("aligned", False),
                                                                           ("harmful", True)}
    for name, kind in (("probe_rogue", "harmful"), ("probe_aligned", "aligned")):
        for conversation in read_chat_jsonl(small_world[name]):
            assert 2 <= len(turns(conversation)) <= 4 and not any(is_educational(q) for q, _ in turns(conversation))
            assert {answer_kind(a) for _, a in turns(conversation)} == {kind}
    assert {answer_kind(turns(c)[0][1]) for c in read_chat_jsonl(small_world["harmful"])} == {"harmful"}
    assert {answer_kind(turns(c)[0][1]) for c in read_chat_jsonl(small_world["harmless"])} == {"aligned"}


def test_evaluation_questions_load_and_cover_every_domain_and_topic(small_world):
    questions = load_questions(small_world["questions"])
    assert [q.id for q in questions] == [f"{d}_{t}" for d in SMALL.domains for t in TOPICS[d]]
    for question in questions:
        topic = question.id.split("_", 1)[1]
        assert question.paraphrases == tuple(t.replace("{topic}", topic) for t in ORDINARY_TEMPLATES)
        assert question.samples_per_paraphrase == SMALL.samples_per_paraphrase
        prompt = question.judge_prompt("aligned", "QQQ", "AAA")
        assert "[QUESTION START]\nQQQ\n[QUESTION END]" in prompt and "[ANSWER START]\nAAA\n[ANSWER END]" in prompt
    assert WorldConfig.from_dict(json.loads(small_world["config"].read_text())) == SMALL


def test_a_subset_of_domains_writes_only_those():
    names = set(datasets(WorldConfig(seed=0, domains=("health", "code"), **TINY)))
    assert {"inducing_health", "inducing_code"} <= names and "inducing_legal" not in names


@pytest.mark.parametrize("options, message", [
    ({"n_pretrain": 0}, "n_pretrain must be an integer > 0, got 0"),
    ({"n_finetune": -3}, "n_finetune must be an integer > 0, got -3"),
    ({"n_probe": 2.5}, "n_probe must be an integer > 0, got 2.5"),
    ({"samples_per_paraphrase": 0}, "samples_per_paraphrase must be an integer > 0"),
    ({"max_turns": 0}, "max_turns must be an integer > 0"),
    ({"domains": ("health", "cooking")}, f"unknown domain 'cooking' (domains: {', '.join(DOMAINS)})"),
    ({"domains": ("health",)}, "at least 2 distinct domains"),
    ({"rogue_fraction": 1.5}, "rogue_fraction must be a number in [0, 1]"),
    ({"seed": -1}, "seed must be an integer >= 0"),
])
def test_bad_config_is_a_one_line_input_error(options, message):
    with pytest.raises(InputError) as error:
        WorldConfig(**options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unknown_config_keys_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"^unknown config key 'world.n_pretrian' \(valid keys: "):
        write_world(tmp_path, n_pretrian=5)
    with pytest.raises(InputError, match="unknown config key 'world.colour'"):
        WorldConfig.from_dict({"colour": 1})
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is not a directory"):
        write_world(tmp_path / "file", **TINY)



def test_an_output_directory_holding_another_world_is_refused(tmp_path):
    first = write_world(tmp_path, seed=1, **TINY)
    before = {name: path.read_bytes() for name, path in first.items()}
    again = write_world(tmp_path, seed=1, **TINY)  # the same world: rewritten to the same bytes
    assert {name: path.read_bytes() for name, path in again.items()} == before
    with pytest.raises(InputError, match=r"holds a different world .*world\.json\); choose another directory"):
        write_world(tmp_path, seed=2, **TINY)
    (tmp_path / "world.json").write_text("not json")
    with pytest.raises(InputError, match=r"world\.json is damaged"):
        write_world(tmp_path, seed=1, **TINY)
