"""Chat JSONL files: every line checked (errors name file:line: JSON, messages, roles, UTF-8), a BOM accepted,
lines split on newlines only, content hashed on raw bytes."""

import json

import pytest

from realmodels.data.jsonl import (ROLES, check_chat_jsonl, dataset_hash, iter_jsonl_lines, read_chat_jsonl,
                                   read_jsonl_lines)
from theory.errors import InputError

from tests.realmodels.tiny_models import INDUCING_CHATS

GOOD = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'


def test_reads_conversations_and_hashes_content(inducing_jsonl, tmp_path, write_chat_jsonl):
    assert read_chat_jsonl(inducing_jsonl) == INDUCING_CHATS
    copy = write_chat_jsonl(tmp_path / "copy.jsonl", INDUCING_CHATS)
    assert dataset_hash(copy) == dataset_hash(inducing_jsonl)
    changed = write_chat_jsonl(tmp_path / "changed.jsonl", INDUCING_CHATS[:-1])
    assert dataset_hash(changed) != dataset_hash(inducing_jsonl)


@pytest.mark.parametrize(("lines", "message"), [
    (['{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}', "", "{oops"],
     r"bad\.jsonl:3: not valid JSON"),
    (['{"messages": [{"role": "user", "content": "hi"}]}'], r"bad\.jsonl:1: conversation has no assistant turn"),
    (['{"text": "hi"}'], r'bad\.jsonl:1: expected an object \{"messages"'),
    (['[1, 2]'], r'bad\.jsonl:1: expected an object'),
    (['{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]}'],
     r"bad\.jsonl:1: message 0 needs string 'role' and 'content'"),
    (["", "  "], r"bad\.jsonl holds no conversations"),
])
def test_malformed_files_name_file_and_line(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message) as error:
        read_chat_jsonl(path)
    assert "\n" not in str(error.value)


def test_unknown_role_is_named_not_reported_as_a_missing_assistant_turn(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "\n" + GOOD.replace('"assistant"', '"asistant"') + "\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:2: message 1 has unknown role 'asistant' \(known roles: "):
        check_chat_jsonl(path)
    for role in ROLES:  # every known role passes (with an assistant turn)
        path.write_text(GOOD.replace('"user"', json.dumps(role)) + "\n")
        assert check_chat_jsonl(path) == 1


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + GOOD.replace("yo", "caf\u00e9").encode("latin-1") + b"\n")
    with pytest.raises(InputError, match=r"latin1\.jsonl:2: not valid UTF-8 .*save the file as UTF-8") as error:
        check_chat_jsonl(path)
    assert "\n" not in str(error.value)


def test_a_byte_order_mark_is_accepted_and_hashed_as_bytes(tmp_path, inducing_jsonl):
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + inducing_jsonl.read_bytes())
    assert read_chat_jsonl(bom) == read_chat_jsonl(inducing_jsonl)
    assert read_jsonl_lines(bom) == read_jsonl_lines(inducing_jsonl)  # no BOM in the first line
    assert dataset_hash(bom) != dataset_hash(inducing_jsonl)  # the hash stays on raw bytes


def test_lines_split_on_newlines_only(tmp_path):
    """A JSON string may hold a raw U+2028 or U+0085; str.splitlines would cut the record there."""
    path = tmp_path / "sep.jsonl"
    path.write_text(GOOD.replace("yo", "a\u2028b\u0085c") + "\r\n\n" + GOOD + "\n", encoding="utf-8")
    assert [number for number, _ in iter_jsonl_lines(path)] == [1, 3]
    assert read_chat_jsonl(path)[0][1]["content"] == "a\u2028b\u0085c"
    assert len(read_jsonl_lines(path)) == 2


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_chat_jsonl(tmp_path / "nope.jsonl")


