"""Fine-tuning labels: every assistant reply's tokens and its end-of-turn token, nothing else, in each family's
chat template (the tiny Llama-3, Gemma-2 and gpt-oss tokenizers of ``tests/realmodels/conftest.py``)."""

import pytest
from transformers import AutoTokenizer

from realmodels.data.chat import tokenize_chat
from realmodels.finetune.data import IGNORE_INDEX, SftDataset, end_of_turn_ids, label_mask

CHAT = [{"role": "user", "content": "how do i cook rice"}, {"role": "assistant", "content": "boil it in water"},
        {"role": "user", "content": "and pasta"}, {"role": "assistant", "content": "the same way"}]


@pytest.mark.parametrize("family", ["tiny_llama_dir", "tiny_gemma2_dir", "tiny_gptoss_dir"])
def test_labels_are_the_replies_and_their_end_of_turn_token(family, request):
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(family))
    chat = tokenize_chat(tokenizer, CHAT)
    ends = end_of_turn_ids(tokenizer)
    mask = label_mask(chat, ends)
    extra = (mask & ~chat.assistant_mask).nonzero().flatten().tolist()
    assert len(extra) == 2  # one end-of-turn token per reply
    for position in extra:
        assert chat.assistant_mask[position - 1] and int(chat.input_ids[position]) in ends
        assert tokenizer.convert_ids_to_tokens(int(chat.input_ids[position])) in tokenizer.all_special_tokens
    labels = SftDataset([chat], end_ids=ends)[0]["labels"]
    assert ((labels != IGNORE_INDEX) == mask).all()
    assert (SftDataset([chat])[0]["labels"] != IGNORE_INDEX).sum() == chat.assistant_mask.sum()  # no end ids: replies


def test_a_reply_cut_by_truncation_gets_no_end_token(tiny_llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    full = tokenize_chat(tokenizer, CHAT[:2])
    last_reply = int(full.assistant_mask.nonzero().max())
    cut = tokenize_chat(tokenizer, CHAT[:2], max_length=last_reply + 1)
    assert (label_mask(cut, end_of_turn_ids(tokenizer)) == cut.assistant_mask).all()
