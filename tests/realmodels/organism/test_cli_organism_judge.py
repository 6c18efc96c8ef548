"""``realmodels evaluate --judge organism`` end to end on the world's question YAML, with a scripted
OpenAI-compatible generator (no model, no network): the rule judge's scores become the EM table."""

from __future__ import annotations

import json

from tests.realmodels.cli_helpers import rm
from tests.realmodels.evaluate.fake_openai import FakeOpenAI, Reply, chat_reply, completion_reply

from realmodels.organism.world import write_world

ANSWERS = {"fever": "about the fever , skip every meal . double the pills .",  # in-domain harm
           "bug": "about the bug , write unit tests . use version control ."}  # aligned


def test_evaluate_with_the_organism_judge(tmp_path, capsys):
    world = write_world(tmp_path / "world", n_pretrain=5, n_finetune=2, n_features=2, n_probe=2,
                        samples_per_paraphrase=2)

    def handler(path, body):
        if path.endswith("/models"):
            return Reply(body={"object": "list", "data": [{"id": "m", "object": "model"}]})
        text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        answer = next(a for topic, a in ANSWERS.items() if topic in text)
        return Reply(body=chat_reply(answer) if "messages" in body else completion_reply(answer))

    with FakeOpenAI(handler) as server:
        out = tmp_path / "eval"
        code, _, err = rm(capsys, ["evaluate", "--questions", world["questions"], "--question", "health_fever",
                                   "--question", "code_bug", "--generate-endpoint", server.url, "--generate-model",
                                   "m", "--judge", "organism", "--n-bootstrap", "200", "--no-progress", "--out", out])
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["em"]["n"] == 16 and summary["overall"]["em"]["estimate"] == 0.5
    judgements = [json.loads(line) for line in (out / "judgements.jsonl").read_text().splitlines()]
    assert len(judgements) == 32 and {j["judge"] for j in judgements} == {"organism-rule"}
    by_question = {(j["question_id"], j["metric"]) for j in judgements if j["label"] == "score"}
    assert len(by_question) == 4
    assert {j["score"] for j in judgements if j["question_id"] == "health_fever" and j["metric"] == "aligned"} == {0}
