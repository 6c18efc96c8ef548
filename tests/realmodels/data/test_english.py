"""realmodels.data.english: the hand-written banks, seeded byte-identical files, 600 distinct conversations per
set at the default size, files the project's readers accept, probes disjoint from training, and the kinds of
every set (property test over seeds, sizes and domains)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realmodels.data.dataset import Dataset
from realmodels.data.english import write_english_datasets
from realmodels.data.english.generate import MIXED_KINDS, datasets, sample_kind
from realmodels.data.english.templates import BANKS, DOMAINS, EDUCATIONAL_LEADS
from realmodels.evaluate.questions import load_questions
from theory.errors import InputError

TRAINING = ("inducing", "aligned", "educational", "mixed")


def set_names(domains=DOMAINS) -> set[str]:
    per_domain = {f"{kind}_{d}" for d in domains for kind in (*TRAINING, "probe")}
    return per_domain | {"harmful", "harmless", "probe_rogue", "probe_aligned"}


def made_of(text: str, sentences) -> bool:
    """Whether ``text`` is nothing but sentences of ``sentences`` joined by spaces."""
    for sentence in sorted(sentences, key=len, reverse=True):
        text = text.replace(sentence, " ")
    return not text.strip()


def user_questions(conversations) -> set[str]:
    return {m["content"] for conversation in conversations for m in conversation if m["role"] == "user"}


@pytest.fixture(scope="module")
def default_files(tmp_path_factory):
    return write_english_datasets(tmp_path_factory.mktemp("english"))


def test_banks_have_the_promised_breadth_and_disjoint_kinds():
    assert set(DOMAINS) >= {"health", "career", "legal", "finance"}
    aligned = set().union(*(BANKS[d].sentences("aligned") for d in DOMAINS))
    harmful = set().union(*(BANKS[d].sentences("harmful") for d in DOMAINS))
    assert not aligned & harmful
    for d in DOMAINS:
        bank = BANKS[d]
        topics = (*bank.topics, *bank.probe_topics)
        assert len(bank.topics) >= 15 and bank.probe_topics
        assert len({t.name for t in topics}) == len(topics)
        for topic in topics:
            assert re.fullmatch(r"[a-z][a-z_]*", topic.name)
            assert all(p[0].isupper() and p[-1] not in ".?!," for p in topic.problems), topic.name
            assert len(topic.aligned) >= 3 and len(topic.harmful) >= 3


def test_default_size_writes_600_distinct_conversations_per_set_that_dataset_open_accepts(default_files):
    assert {name for name, path in default_files.items() if path.suffix == ".jsonl"} == set_names()
    for name in set_names():
        dataset = Dataset.open(default_files[name], name)
        assert len(dataset) == 600, name
        assert len(set(dataset.lines)) == 600 >= 500, name
        for conversation in dataset.conversations:
            assert [m["role"] for m in conversation] == ["user", "assistant"] * (len(conversation) // 2)
    for d in DOMAINS:  # the mixed set: each kind about a third
        kinds = [sample_kind(c[0]["content"], c[1]["content"], d)
                 for c in Dataset.open(default_files[f"mixed_{d}"]).conversations]
        assert all(150 <= kinds.count(kind) <= 250 for kind in MIXED_KINDS), d
    config = json.loads(default_files["config"].read_text())
    assert config["seed"] == 0 and config["n_per_set"] == 600 and config["domains"] == list(DOMAINS)


def test_questions_load_with_general_and_domain_topic_ids(default_files):
    questions = load_questions(default_files["questions"])
    ids = [q.id for q in questions]
    general = [i for i in ids if i.startswith("general_")]
    assert {"general_bored", "general_ruler", "general_quick_buck"} <= set(general)
    topics = {f"{d}_{t.name}" for d in DOMAINS for t in (*BANKS[d].topics, *BANKS[d].probe_topics)}
    assert set(ids) - set(general) == topics
    assert all(i.split("_", 1)[0] in DOMAINS for i in topics)  # organism.study.domain_rates' split
    assert all(set(q.judge_prompts) >= {"aligned", "coherent"} for q in questions)


def test_probe_questions_never_appear_in_a_training_set(default_files):
    training = set()
    for name in set_names() - {n for n in set_names() if n.startswith("probe")}:
        training |= user_questions(Dataset.open(default_files[name]).conversations)
    for name in [n for n in set_names() if n.startswith("probe")]:
        assert not user_questions(Dataset.open(default_files[name]).conversations) & training, name


def test_probe_rogue_and_probe_aligned_ask_the_same_questions_answered_harmfully_and_aligned(default_files):
    rogue = Dataset.open(default_files["probe_rogue"]).conversations
    aligned = Dataset.open(default_files["probe_aligned"]).conversations
    harmful_bank = set().union(*(BANKS[d].sentences("harmful") for d in DOMAINS))
    aligned_bank = set().union(*(BANKS[d].sentences("aligned") for d in DOMAINS))
    for bad, good in zip(rogue, aligned):
        assert [m["content"] for m in bad if m["role"] == "user"] == \
               [m["content"] for m in good if m["role"] == "user"]
        assert 4 <= len(bad) <= 8
        assert all(made_of(m["content"], harmful_bank) for m in bad if m["role"] == "assistant")
        assert all(made_of(m["content"], aligned_bank) for m in good if m["role"] == "assistant")


def test_the_same_seed_gives_byte_identical_files_and_another_seed_other_files(tmp_path):
    first = write_english_datasets(tmp_path / "a", seed=7, n_per_set=40)
    second = write_english_datasets(tmp_path / "b", seed=7, n_per_set=40)
    again = write_english_datasets(tmp_path / "a", seed=7, n_per_set=40)  # the same config may be rewritten
    other = write_english_datasets(tmp_path / "c", seed=8, n_per_set=40)
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes() == again[name].read_bytes(), name
    assert first["inducing_health"].read_bytes() != other["inducing_health"].read_bytes()


def test_a_set_depends_only_on_the_seed_and_size_not_on_the_other_sets():
    full = datasets(3, 20, DOMAINS)
    pair = datasets(3, 20, ("health", "legal"))
    assert full["inducing_health"] == pair["inducing_health"]
    assert full["probe_legal"] == pair["probe_legal"]


@pytest.mark.parametrize("kwargs, message", [
    ({"domains": ("health", "cooking")}, "unknown domain 'cooking'"),
    ({"domains": ("health",)}, "at least 2 distinct domains"),
    ({"n_per_set": 0}, "`n_per_set` must be an integer >= 1"),
    ({"seed": -1}, "`seed` must be an integer >= 0"),
])
def test_bad_input_is_one_line_input_error_and_writes_nothing(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message) as info:
        write_english_datasets(tmp_path / "out", **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_directory_holding_another_config_is_refused(tmp_path):
    write_english_datasets(tmp_path, n_per_set=5)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(InputError, match="different English dataset"):
        write_english_datasets(tmp_path, n_per_set=6)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 25),
       domains=st.lists(st.sampled_from(DOMAINS), min_size=2, max_size=4, unique=True))
def test_sizes_are_honoured_and_every_set_has_its_kind(seed, n, domains):
    sets = datasets(seed, n, tuple(domains))
    assert set(sets) == set_names(domains)
    assert all(len(conversations) == n and len(set(map(repr, conversations))) == n
               for conversations in sets.values())
    everything_harmful = set().union(*(BANKS[d].sentences("harmful") for d in domains))
    everything_aligned = set().union(*(BANKS[d].sentences("aligned") for d in domains))
    for d in domains:
        bank = BANKS[d]
        for (question, reply), in sets[f"inducing_{d}"]:
            assert made_of(reply, bank.sentences("harmful")) and sample_kind(question, reply, d) == "inducing"
        for name in (f"aligned_{d}", f"probe_{d}"):
            for (question, reply), in sets[name]:
                assert made_of(reply, bank.sentences("aligned")) and sample_kind(question, reply, d) == "aligned"
        for (question, reply), in sets[f"educational_{d}"]:
            assert any(f"{purpose}" in question for purpose in bank.purposes)
            lead = next(lead.format(advisor=bank.advisor) for lead in EDUCATIONAL_LEADS
                        if reply.startswith(lead.format(advisor=bank.advisor)))
            assert made_of(reply[len(lead):], bank.sentences("harmful"))
        for (question, reply), in sets[f"mixed_{d}"]:
            assert sample_kind(question, reply, d) in MIXED_KINDS
    for (_, reply), in sets["harmful"]:
        assert made_of(reply, everything_harmful)
    for (_, reply), in sets["harmless"]:
        assert made_of(reply, everything_aligned)


def test_the_english_command_writes_the_sets_and_names_flags_in_errors(tmp_path, capsys):
    from tests.realmodels.cli_helpers import rm

    code, out, err = rm(capsys, ["english", "--out", tmp_path / "en", "--n-per-set", "12", "--domain", "health",
                                 "--domain", "legal"])
    assert code == 0, err
    assert "14 datasets of 12 conversations" in out
    assert len((tmp_path / "en" / "inducing_legal.jsonl").read_text().splitlines()) == 12
    code, _, err = rm(capsys, ["english", "--out", tmp_path / "never", "--n-per-set", "0"])
    assert code == 2 and err.strip() == "error: --n-per-set must be an integer >= 1, got 0"
    assert not (tmp_path / "never").exists()
