"""``realmodels evaluate --steer/--clamp`` on the embedded organism: steering a feature by 0 and clamping a feature
that never fires to 0 leave the answers, judgements and rates byte-identical to a plain run (while a large α or
clamp value changes them: the hooks are in place); the run's config records the interventions only when given; a
steered run prints the layer's median residual norm and resumes; every bad input is one line, exit 2, nothing
written, and no weights loaded."""

from __future__ import annotations

import json

import pytest

from realmodels.analysis.direction import Direction, save_direction
from realmodels.loading.embedded import embedded_default
from tests.realmodels.cli_helpers import assert_bad, files, rm

QUICK = ["--judge", "organism", "--question", "bored", "--question", "one_wish", "--samples-per-paraphrase", "2",
         "--max-new-tokens", "8", "--n-bootstrap", "100", "--no-progress"]
OUTPUTS = ("answers.jsonl", "judgements.jsonl", "per_question.csv", "judged.csv")


def _d_model() -> int:
    return json.loads((embedded_default().model / "config.json").read_text())["hidden_size"]


def _d_sae() -> int:
    return json.loads((embedded_default().sae / "cfg.json").read_text())["d_sae"]


def _run(capsys, out, *extra):
    code, stdout, err = rm(capsys, ["evaluate", *QUICK, *map(str, extra), "--out", out])
    assert code == 0, err
    return stdout


def _outputs(out) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """A plain run, and the SAE features that never fire at the SAE's layer during it (prompts and answers)."""
    import torch

    from realmodels.evaluate import generate as generate_module
    from realmodels.evaluate.config import EvaluateConfig, JudgeChoice
    from realmodels.evaluate.generate import GenerationConfig
    from realmodels.experiments import RunOptions, run_evaluation
    from realmodels.loading.placement import decoder_layers
    from realmodels.loading.saes import SaeSource, load_sae

    sae = load_sae(SaeSource(path=embedded_default().sae))
    fired = torch.zeros(int(sae.cfg.d_sae), dtype=torch.bool)
    original = generate_module.generate_answers

    def spying(model, *args, **kwargs):
        def hook(module, inputs, output):
            h = output[0] if isinstance(output, tuple) else output
            with torch.no_grad():
                fired.logical_or_(sae.encode(h.float()).reshape(-1, fired.numel()).ne(0).any(0))

        handle = decoder_layers(model)[embedded_default().layer].register_forward_hook(hook)
        try:
            return original(model, *args, **kwargs)
        finally:
            handle.remove()

    out = tmp_path_factory.mktemp("plain") / "eval"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(generate_module, "generate_answers", spying)
        run_evaluation(EvaluateConfig(only=("bored", "one_wish"), samples_per_paraphrase=2, n_bootstrap=100,
                                      generation=GenerationConfig(max_new_tokens=8)),
                       judge=JudgeChoice(kind="organism"), options=RunOptions(out=out, progress=False),
                       log=lambda *args: None)  # what `evaluate QUICK` runs
    silent = [i for i in range(fired.numel()) if not fired[i]]
    assert silent and fired.any()
    return out, silent, [i for i in range(fired.numel()) if fired[i]]


def test_steering_a_feature_by_zero_is_byte_identical_and_recorded(tmp_path, capsys, plain_run):
    plain, _, _ = plain_run
    out = tmp_path / "steer0"
    stdout = _run(capsys, out, "--steer", "feature:3=0")
    assert _outputs(out) == _outputs(plain)
    config = json.loads((out / "config.json").read_text())
    assert config["steer"] == [{"feature": 3, "alpha": 0.0}]
    assert config["intervention_sae"]["layer"] == embedded_default().layer
    assert "clamp" not in config
    assert not {"steer", "clamp", "intervention_sae"} & set(json.loads((plain / "config.json").read_text()))
    summary = json.loads((out / "summary.json").read_text())
    norm = summary["median_residual_norm"][str(embedded_default().layer)]
    assert norm > 0 and f"steered layer {embedded_default().layer}: median residual norm" in stdout

    before = files(out)
    _run(capsys, out, "--steer", "feature:3=0")  # resumes: nothing is generated, every file as it was
    assert files(out) == before

    _run(capsys, tmp_path / "steer-big", "--steer", f"feature:3={20 * norm}")
    assert _outputs(tmp_path / "steer-big")["answers.jsonl"] != _outputs(plain)["answers.jsonl"]


def test_steering_along_a_direction_file_by_zero_is_byte_identical(tmp_path, capsys, plain_run):
    plain, _, _ = plain_run
    file = tmp_path / "dir.json"
    save_direction(file, Direction(layer=2, vector=[1.0 + (i % 3) for i in range(_d_model())]))
    _run(capsys, tmp_path / "zero", "--steer", f"{file}=0")
    assert _outputs(tmp_path / "zero") == _outputs(plain)
    config = json.loads((tmp_path / "zero" / "config.json").read_text())
    assert config["steer"][0]["path"] == str(file.resolve()) and "intervention_sae" not in config
    _run(capsys, tmp_path / "big", "--steer", f"{file}=30")
    assert _outputs(tmp_path / "big")["answers.jsonl"] != _outputs(plain)["answers.jsonl"]


def test_clamping_a_feature_that_never_fires_to_zero_is_byte_identical(tmp_path, capsys, plain_run):
    plain, silent, active = plain_run
    out = tmp_path / "clamp0"
    _run(capsys, out, "--clamp", f"{silent[0]}=0")
    assert _outputs(out) == _outputs(plain)
    assert json.loads((out / "config.json").read_text())["clamp"] == [{"feature": silent[0], "value": 0.0}]
    _run(capsys, tmp_path / "clamp-high", "--clamp", f"{active[0]}=50")
    assert _outputs(tmp_path / "clamp-high")["answers.jsonl"] != _outputs(plain)["answers.jsonl"]


@pytest.mark.parametrize("args, match", [
    (["--steer", "feature:{n}=1"], "feature {n} is out of range: the SAE"),
    (["--clamp", "{n}=0"], "feature {n} is out of range: the SAE"),
    (["--steer", "feature:3=nan"], "must be finite"),
    (["--steer", "feature:3=inf"], "must be finite"),
    (["--clamp", "3=-inf"], "must be finite"),
    (["--steer", "feature:3"], "is malformed"),
    (["--steer", "feature:x=1"], "must be an integer >= 0"),
    (["--steer", "feature:3=big"], "is not a number"),
    (["--clamp", "3"], "is malformed"),
    (["--clamp", "-1=2"], "must be an integer >= 0"),
    (["--steer", "missing.json=1"], "does not exist"),
    (["--steer", "{wrong}=1"], "has d_model="),
    (["--sae", "{sae}", "--layer", "1"], "used only by --steer feature"),
    (["--steer", "feature:3=1", "--generate-endpoint", "http://127.0.0.1:9/v1", "--generate-model", "m"],
     "--steer needs a local model"),
    (["--clamp", "3=1", "--generate-endpoint", "http://127.0.0.1:9/v1", "--generate-model", "m"],
     "--clamp needs a local model"),
])
def test_bad_steer_and_clamp_inputs_fail_before_anything_loads(tmp_path, capsys, monkeypatch, args, match):
    from realmodels.loading.plain import PlainModel

    monkeypatch.setattr(PlainModel, "model", property(lambda self: pytest.fail("loaded weights before the check")))
    wrong = tmp_path / "wrong.json"
    save_direction(wrong, Direction(layer=1, vector=[1.0] * (_d_model() // 2)))
    fill = {"n": _d_sae(), "wrong": wrong, "sae": embedded_default().sae}
    assert_bad(capsys, tmp_path, ["evaluate", *QUICK, *[a.format(**fill) for a in args]], match.format(**fill))


def test_a_model_with_its_own_sae(tmp_path, capsys, tiny_llama_dir, tiny_sae_dir):
    """--model DIR --sae DIR --layer L: a feature steer by 0 is byte-identical to no steering and the SAE is
    recorded; a feature beyond this SAE's width, an SAE of another layer and a clamp without an SAE are one line,
    nothing written."""
    sae = tiny_sae_dir(tiny_llama_dir, layer=1)
    base = ["evaluate", "--model", tiny_llama_dir, "--question", "bored", "--samples-per-paraphrase", "1",
            "--max-new-tokens", "4", "--judge", "organism", "--n-bootstrap", "50", "--no-progress"]
    code, _, err = rm(capsys, [*base, "--out", tmp_path / "plain"])
    assert code == 0, err
    code, _, err = rm(capsys, [*base, "--sae", sae, "--layer", "1", "--steer", "feature:5=0", "--out",
                               tmp_path / "steer0"])
    assert code == 0, err
    assert _outputs(tmp_path / "steer0") == _outputs(tmp_path / "plain")
    config = json.loads((tmp_path / "steer0" / "config.json").read_text())
    assert config["intervention_sae"] == {"sae": str(sae.resolve()), "layer": 1}
    assert_bad(capsys, tmp_path, [*base, "--sae", sae, "--layer", "1", "--clamp", "256=0"],
               "feature 256 is out of range")
    assert_bad(capsys, tmp_path, [*base, "--sae", sae, "--layer", "0", "--clamp", "1=0"], "layer")
    assert_bad(capsys, tmp_path, [*base, "--clamp", "1=0"], "sae")  # a local model without an SAE
