"""The assistant-token mask for three template styles, and truncation while tokenising."""

import json

import pytest
import torch

from realmodels.data.chat import assistant_spans, tokenize_chat, tokenize_chats
from theory.errors import InputError

from tests.realmodels.tiny_models import INDUCING_CHATS, build_tokenizer

FAMILIES = ["gemma2", "llama", "gptoss"]


@pytest.fixture(scope="module")
def tokenizers():
    return {family: build_tokenizer(family) for family in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_mask_covers_exactly_the_assistant_replies(tokenizers, family):
    tokenizer = tokenizers[family]
    messages = INDUCING_CHATS[0]  # two user turns, two assistant turns (the second with a trailing newline)
    chat = tokenize_chat(tokenizer, messages)
    assert chat.input_ids.shape == chat.assistant_mask.shape and chat.assistant_mask.dtype == torch.bool
    text, spans = assistant_spans(tokenizer, messages)
    replies = [m["content"].strip() for m in messages if m["role"] == "assistant"]
    assert [text[a:b].strip() for a, b in spans] == replies
    # the masked tokens decode to the replies and nothing else (runs of True = one reply each)
    mask = chat.assistant_mask.tolist()
    runs, current = [], []
    for token, inside in zip(chat.input_ids.tolist(), mask, strict=True):
        if inside:
            current.append(token)
        elif current:
            runs, current = runs + [current], []
    runs += [current] if current else []
    assert [tokenizer.decode(run).strip() for run in runs] == replies
    # nothing from user turns or template markup is masked
    user_text = tokenizer.decode(chat.input_ids[~chat.assistant_mask])
    assert all(m["content"] in user_text for m in messages if m["role"] == "user")


def test_reply_repeating_the_user_is_located_after_the_prompt(tokenizers):
    messages = [{"role": "user", "content": "say exactly: blue sky"}, {"role": "assistant", "content": "blue sky"}]
    text, [(start, end)] = assistant_spans(tokenizers["gemma2"], messages)
    assert text[start:end] == "blue sky" and start > text.index("<start_of_turn>model")


def test_template_rejection_and_truncation_are_input_errors(tokenizers):
    system = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"},
              {"role": "assistant", "content": "hello"}]
    with pytest.raises(InputError, match="data.jsonl:7: the chat template rejects this conversation .*System role"):
        tokenize_chats(tokenizers["gemma2"], [system], labels=["data.jsonl:7"])
    assert tokenize_chat(tokenizers["llama"], system).assistant_mask.any()
    first = int(tokenize_chat(tokenizers["llama"], INDUCING_CHATS[1]).assistant_mask.nonzero()[0])
    with pytest.raises(InputError, match=f"no assistant tokens within the first {first} tokens"):
        tokenize_chat(tokenizers["llama"], INDUCING_CHATS[1], max_length=first)
    short = tokenize_chat(tokenizers["llama"], INDUCING_CHATS[1], max_length=first + 3)
    assert len(short.input_ids) == first + 3 and int(short.assistant_mask.sum()) == 3


def test_template_that_rewrites_replies_is_an_input_error(tokenizers):
    tokenizer = build_tokenizer("llama")
    tokenizer.chat_template = tokenizers["llama"].chat_template.replace("{{ m['content'] | trim }}",
                                                                        "{{ m['content'] | upper }}")
    with pytest.raises(InputError, match="does not reproduce assistant turn 1 verbatim"):
        tokenize_chat(tokenizer, INDUCING_CHATS[1])


def test_tokenizer_without_template(tokenizers):
    tokenizer = build_tokenizer("llama")
    tokenizer.chat_template = None
    with pytest.raises(InputError, match="no chat template"):
        tokenize_chats(tokenizer, INDUCING_CHATS)


def test_jsonl_round_trip_of_written_fixture(harmful_jsonl):
    first = json.loads(harmful_jsonl.read_text().splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "user", "assistant"]
