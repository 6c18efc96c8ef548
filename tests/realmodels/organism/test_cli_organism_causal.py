"""``realmodels organism causal`` on the embedded organism: every condition is evaluated on tiny settings, the tables
hold one row per evaluation and per condition, the stages' command lines carry the interventions, a rerun skips
everything (every evaluation and fine-tune byte-identical), a run killed inside an evaluation reruns to the same
files, and bad input is one line with nothing written."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.realmodels.cli_helpers import assert_bad, files, rm

TINY = ["--seeds", "0", "--max-steps", "2", "--train-batch-size", "4", "--samples-per-paraphrase", "1",
        "--max-new-tokens", "8", "--harmful-k", "5"]
CONDITIONS = [("base", "plain"), ("base", "harmful+"), ("base", "u0+"), ("base", "u1+"), ("base", "u2+"),
              ("inducing", "plain"), ("inducing", "harmful=0"), ("inducing", "u0-ablated"),
              ("inducing", "u1-ablated"), ("inducing", "u2-ablated")]  # the organism has 3 layers


@pytest.mark.slow
def test_causal_runs_every_condition_and_resumes(tmp_path, capsys):
    out = tmp_path / "causal"
    args = ["organism", "causal", *TINY, "--out", out]
    code, stdout, err = rm(capsys, args)
    assert code == 0, err
    rates = pd.read_csv(out / "rates.csv")
    assert list(zip(rates["model"], rates["condition"])) == CONDITIONS and (rates["seed"] == 0).all()
    assert (rates["other_n"] == 20 * 4).all()  # 5 other domains x 4 topics x 4 paraphrases x 1 sample
    table = pd.read_csv(out / "conditions.csv")
    assert list(zip(table["model"], table["condition"])) == CONDITIONS
    plain = rates.set_index(["model", "condition"])["other_rate"]
    for _, row in table[table["condition"] != "plain"].iterrows():
        assert row["diff_vs_plain"] == pytest.approx(plain[(row["model"], row["condition"])]
                                                     - plain[(row["model"], "plain")])
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["harmful_features"]) == 5 and set(summary["alpha_by_layer"]) == {"0", "1", "2"}
    for name in ("harmful.json", "u0.json", "u1.json", "u2.json"):
        assert json.loads((out / "directions" / name).read_text())["d_model"] == 64
    commands = (out / "commands.sh").read_text().splitlines()
    assert commands[0].startswith("realmodels finetune --data")
    assert sum("--steer" in c for c in commands) == 4 and sum("--ablate" in c for c in commands) == 3
    assert sum(c.count("--clamp") == 5 for c in commands) == 1
    for name in ("causal.png", "causal.svg", "causal.md"):
        assert (out / name).is_file()
    assert "harmful=0" in stdout and "already finished" not in stdout

    before = {k: v for k, v in files(out).items() if k.startswith(("evaluations/", "finetune-s0/", "directions/"))}
    code, stdout, err = rm(capsys, args)  # resume: every stage is finished
    assert code == 0, err
    assert "everything was already finished" in stdout
    after = {k: v for k, v in files(out).items() if k.startswith(("evaluations/", "finetune-s0/", "directions/"))}
    assert after == before
    assert pd.read_csv(out / "rates.csv").equals(rates)
    rerun = (out / "commands.sh").read_text().splitlines()[len(commands):]
    assert rerun and not [c for c in rerun if c.split()[1] == "evaluate"]  # finished evaluations are not reopened

    # a run killed inside one evaluation (no summary, half of its answers): the rerun gives the same files
    clamped = out / "evaluations" / "inducing-harmful=0-s0"
    (clamped / "summary.json").unlink()
    answers = (clamped / "answers.jsonl").read_text().splitlines(keepends=True)
    (clamped / "answers.jsonl").write_text("".join(answers[: len(answers) // 2]))
    code, stdout, err = rm(capsys, args)
    assert code == 0, err
    assert "already finished" not in stdout
    again = {k: v for k, v in files(out).items() if k.startswith(("evaluations/", "finetune-s0/", "directions/"))}
    assert again == before
    assert pd.read_csv(out / "rates.csv").equals(rates)


@pytest.mark.parametrize("args, match", [
    (["--domain", "space"], "unknown domain 'space'"),
    (["--seeds", "0,0"], "--seeds must be distinct"),
    (["--seeds", "0,x"], "--seeds must be comma-separated integers"),
    (["--alpha", "0"], "--alpha must be in (0, 1000]"),
    (["--alpha", "nan"], "--alpha must be in (0, 1000]"),
    (["--alpha", "inf"], "--alpha must be in (0, 1000]"),
    (["--max-steps", "0"], "max-steps must be > 0"),
    (["--lr", "inf"], "learning rate"),
    (["--harmful-k", "257"], "--harmful-k 257 exceeds the organism's SAE width (256 features)"),
    (["--samples-per-paraphrase", "0"], "--samples-per-paraphrase"),
])
def test_bad_causal_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, match):
    assert_bad(capsys, tmp_path, ["organism", "causal", *args], match)


def test_a_directory_that_is_not_an_organism_build_is_refused(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    assert_bad(capsys, tmp_path, ["organism", "causal", "--organism", tmp_path / "half"],
               "not a finished organism build")
