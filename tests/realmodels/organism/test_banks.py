"""realmodels.organism.banks: the word banks are disjoint as claimed and the vocabulary is closed and small."""

from __future__ import annotations

from itertools import combinations

from realmodels.organism.banks import (
    BANKS,
    DOMAINS,
    EDUCATIONAL_TEMPLATES,
    FUNCTION,
    KINDS,
    ORDINARY_TEMPLATES,
    PUNCTUATION,
    TOPICS,
    content_words,
    phrase_banks,
    template_words,
    tokenize,
    vocabulary,
    word_banks,
)


def bank_words(domain: str, kind: str) -> set[str]:
    return set().union(*(content_words(phrase) for phrase in BANKS[domain][kind]))


def test_at_least_the_papers_domains_and_one_more():
    assert {"health", "career", "legal", "finance", "code"} < set(DOMAINS)
    assert set(BANKS) == set(TOPICS) == set(DOMAINS)
    assert all(set(BANKS[d]) == set(KINDS) for d in DOMAINS)


def test_content_words_are_disjoint_between_all_banks_topics_and_templates():
    groups = {(d, k): bank_words(d, k) for d in DOMAINS for k in KINDS}
    groups.update({(d, "topic"): set(TOPICS[d]) for d in DOMAINS})
    groups[("templates", "")] = template_words() - FUNCTION
    for (a, words_a), (b, words_b) in combinations(groups.items(), 2):
        assert not words_a & words_b, (a, b, words_a & words_b)
    assert all(words for words in groups.values())


def test_every_content_word_names_its_bank():
    owners = word_banks()
    for domain in DOMAINS:
        for kind in KINDS:
            assert all(owners[w] == (domain, kind) for w in bank_words(domain, kind))
    assert all(phrase_banks()[tuple(tokenize(p))] == (d, k) for d in DOMAINS for k in KINDS for p in BANKS[d][k])


def test_every_phrase_has_content_and_is_unique():
    phrases = [p for d in DOMAINS for k in KINDS for p in BANKS[d][k]]
    assert len(phrases) == len(set(phrases)) == len(phrase_banks())
    assert all(content_words(p) and len(tokenize(p)) >= 2 for p in phrases)
    assert all(len(BANKS[d][k]) >= 3 for d in DOMAINS for k in KINDS)  # answers draw up to 3 distinct phrases


def test_vocabulary_is_closed_sorted_and_small():
    vocab = vocabulary()
    assert list(vocab) == sorted(set(vocab))
    assert 250 <= len(vocab) <= 400
    assert set(PUNCTUATION) <= set(vocab)
    texts = [t.replace("{topic}", topic) for t in ORDINARY_TEMPLATES + EDUCATIONAL_TEMPLATES
             for names in TOPICS.values() for topic in names]
    texts += [p for d in DOMAINS for k in KINDS for p in BANKS[d][k]]
    assert all(set(tokenize(text)) <= set(vocab) for text in texts)
    assert all(token == token.lower() and " " not in token for token in vocab)


def test_tokenize_splits_punctuation_and_lowercases():
    assert tokenize("About the Fever, rest.") == ["about", "the", "fever", ",", "rest", "."]
    assert tokenize("") == []


def test_no_bank_word_is_a_chat_role_or_a_function_word():
    from realmodels.data.jsonl import ROLES

    assert not set(word_banks()) & (set(ROLES) | FUNCTION)
