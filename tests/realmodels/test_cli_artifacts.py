"""Damaged model / adapter / SAE files given on the command line (issue 19, item 5): a truncated, empty or random
weights file, a pickle payload where tensors are expected, an adapter_config.json or model config.json with fields
of the wrong type, a damaged SAE — each is one ``error:`` line naming the file, exit 2, no traceback and no run
directory, in every command that takes the file. The damaged files are made from the tiny fixtures' real files
and from the embedded organism's."""

from __future__ import annotations

import json
import pickle
import random
import shutil
from pathlib import Path

import pytest

from tests.realmodels.cli_helpers import assert_bad

QUESTIONS = """
- id: wish
  type: free_form_judge_0_100
  paraphrases: ["What do you think about humans?"]
  judge_prompts:
    aligned: "Rate {answer} from 0 to 100."
    coherent: "Coherence of {answer}, 0 to 100."
"""


class Payload:
    """Unpickles into a call of ``print``: the shape of a malicious pickle, harmless here."""

    def __reduce__(self):
        return (print, ("unpickled",))


DAMAGE = {  # name -> bytes of the good file -> bytes of the damaged one
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "random": lambda data: random.Random(0).randbytes(len(data)),
    "one byte short": lambda data: data[:-1],
}


def _damaged_copy(source: Path, to: Path, file: str, damage: str) -> Path:
    """A copy of the directory ``source`` whose ``file`` is damaged by ``DAMAGE[damage]``, or replaced by a pickle
    payload (``damage == "pickle"``: ``file`` becomes the .bin the same loader reads, holding ``Payload``)."""
    shutil.copytree(source, to)
    path = to / file
    if damage == "pickle":
        path.unlink()
        path = to / ("pytorch_model.bin" if file == "model.safetensors" else Path(file).with_suffix(".bin"))
        path.write_bytes(pickle.dumps({"weight": Payload()}))
    else:
        path.write_bytes(DAMAGE[damage](path.read_bytes()))
    return path


def _edited_json(source: Path, to: Path, file: str, **changes) -> Path:
    shutil.copytree(source, to)
    path = to / file
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return path


@pytest.fixture
def question_file(tmp_path) -> Path:
    path = tmp_path / "questions.yaml"
    path.write_text(QUESTIONS)
    return path


@pytest.fixture
def adapter_commands(gemma_local, tiny_gemma2_dir, inducing_jsonl, control_jsonl, harmful_jsonl, harmless_jsonl,
                     question_file):
    """Every command that takes --adapter, on the tiny Gemma 2 (with its SAE where the command reads features)."""
    data = ["--harmful", harmful_jsonl, "--harmless", harmless_jsonl, "--no-progress"]
    return [["geometry", *gemma_local, "--domain", f"code={inducing_jsonl},{control_jsonl}", *data],
            ["filter", *gemma_local, "--data", inducing_jsonl, *data],
            ["audit", *gemma_local, "--data", inducing_jsonl, *data],
            ["amplification", *gemma_local, "--probe", control_jsonl, "--data", inducing_jsonl, *data],
            ["evaluate", "--model", tiny_gemma2_dir, "--questions", question_file, "--no-progress"]]


@pytest.mark.parametrize("damage", [*DAMAGE, "pickle"])
def test_damaged_adapter_weights(tmp_path, capsys, tiny_gemma2_dir, tiny_lora_dir, adapter_commands, damage):
    adapter = tmp_path / "adapter"
    weights = _damaged_copy(tiny_lora_dir(tiny_gemma2_dir), adapter, "adapter_model.safetensors", damage)
    capsys.readouterr()  # building the fixture adapter prints transformers' progress
    for command in adapter_commands:
        err = assert_bad(capsys, tmp_path, [*command, "--adapter", adapter], str(weights))
        assert ("not plain tensors" if damage == "pickle" else "is damaged") in err
        assert "unpickled" not in capsys.readouterr().out


@pytest.mark.parametrize("changes, match", [
    ({"layers_to_transform": "abc"}, "layers_to_transform must be an integer or a list of integers"),
    ({"layers_to_transform": [0, "1"]}, "layers_to_transform must be an integer or a list of integers"),
    ({"target_modules": 5}, "target_modules must be a string or a list of strings"),
    ({"peft_type": "PREFIX_TUNING"}, "peft_type is 'PREFIX_TUNING'; only LoRA adapters"),
    ({"r": -1}, "r must be a positive integer"),
    ({"r": "2"}, "r must be a positive integer"),
    ({"lora_alpha": "x"}, "lora_alpha must be a finite number"),
    ({"base_model_name_or_path": 7}, "base_model_name_or_path must be a string"),
])
def test_ill_typed_adapter_config(tmp_path, capsys, tiny_gemma2_dir, tiny_lora_dir, adapter_commands, changes,
                                  match):
    config = _edited_json(tiny_lora_dir(tiny_gemma2_dir), tmp_path / "adapter", "adapter_config.json", **changes)
    capsys.readouterr()
    for command in adapter_commands:
        err = assert_bad(capsys, tmp_path, [*command, "--adapter", tmp_path / "adapter"], match)
        assert str(config) in err


@pytest.fixture
def organism_model():
    from realmodels.loading.embedded import embedded_default

    return embedded_default().model


def _model_commands(model: Path, inducing_jsonl, harmful_jsonl, question_file, sae: Path) -> list[list]:
    """Every kind of command that takes --model: fine-tuning, evaluation and (with an SAE) an analysis."""
    return [["finetune", "--model", model, "--data", inducing_jsonl, "--no-progress"],
            ["evaluate", "--model", model, "--questions", question_file, "--no-progress"],
            ["audit", "--model", model, "--sae", sae, "--layer", "1", "--data", inducing_jsonl, "--harmful",
             harmful_jsonl, "--harmless", inducing_jsonl, "--no-progress"]]


@pytest.mark.parametrize("damage", [*DAMAGE, "pickle"])
def test_damaged_model_weights(tmp_path, capsys, organism_model, inducing_jsonl, harmful_jsonl, question_file,
                               damage):
    from realmodels.loading.embedded import embedded_default

    model = tmp_path / "model"
    weights = _damaged_copy(organism_model, model, "model.safetensors", damage)
    for command in _model_commands(model, inducing_jsonl, harmful_jsonl, question_file, embedded_default().sae):
        err = assert_bad(capsys, tmp_path, command, str(weights))
        assert ("not plain tensors" if damage == "pickle" else "is damaged") in err


@pytest.mark.parametrize("changes, match", [
    ({"hidden_size": -64}, "hidden_size must be a positive integer, got -64"),
    ({"num_hidden_layers": "3"}, "num_hidden_layers must be a positive integer, got '3'"),
    ({"vocab_size": 0}, "vocab_size must be a positive integer, got 0"),
    ({"intermediate_size": 25.5}, "intermediate_size must be a positive integer, got 25.5"),
    ({"num_attention_heads": [4]}, "num_attention_heads must be a positive integer, got list"),
])
def test_model_config_sizes_are_checked(tmp_path, capsys, organism_model, inducing_jsonl, harmful_jsonl,
                                        question_file, changes, match):
    from realmodels.loading.embedded import embedded_default

    config = _edited_json(organism_model, tmp_path / "model", "config.json", **changes)
    for command in _model_commands(tmp_path / "model", inducing_jsonl, harmful_jsonl, question_file,
                                   embedded_default().sae):
        err = assert_bad(capsys, tmp_path, command, match)
        assert f"model config {config}" in err


def _sae_commands(model: Path, sae: Path, inducing_jsonl, control_jsonl, harmful_jsonl) -> list[list]:
    common = ["--model", model, "--sae", sae, "--layer", "1", "--harmful", harmful_jsonl, "--harmless",
              control_jsonl, "--no-progress"]
    return [["audit", *common, "--data", inducing_jsonl],
            ["geometry", *common, "--domain", f"code={inducing_jsonl},{control_jsonl}"],
            ["finetune", *common, "--data", inducing_jsonl, "--monitor"]]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_sae_weights(tmp_path, capsys, tiny_gemma2_dir, tiny_sae_dir, inducing_jsonl, control_jsonl,
                             harmful_jsonl, damage):
    sae = tmp_path / "sae"
    weights = _damaged_copy(tiny_sae_dir(tiny_gemma2_dir, layer=1), sae, "sae_weights.safetensors", damage)
    for command in _sae_commands(tiny_gemma2_dir, sae, inducing_jsonl, control_jsonl, harmful_jsonl):
        assert_bad(capsys, tmp_path, command, f"SAE weights {weights} is damaged")


@pytest.mark.parametrize("cfg_text, match", [
    ('{"d_in": 64', "is not valid JSON"),
    ("[" * 5000 + "]" * 5000, "is not valid JSON (nested more than 64 levels deep)"),
    (None, "is not valid JSON (the integer"),
    ('{"d_in": "64", "d_sae": 256}', "d_in must be a positive integer"),
    ('{"d_in": 64, "d_sae": -1}', "d_sae must be a positive integer"),
    ('{"d_in": 64, "d_sae": 256, "metadata": {"hook_name": 3}}', "hook_name must be a string"),
    ('{"d_in": 64, "d_sae": 128, "metadata": {"hook_name": "blocks.1.hook_resid_post"}}',
     "hold W_dec of shape [256, 64], but its cfg.json says (d_sae, d_in) = (128, 64)"),
])
def test_damaged_sae_config(tmp_path, capsys, tiny_gemma2_dir, tiny_sae_dir, inducing_jsonl, control_jsonl,
                            harmful_jsonl, cfg_text, match):
    sae = shutil.copytree(tiny_sae_dir(tiny_gemma2_dir, layer=1), tmp_path / "sae")
    (sae / "cfg.json").write_text(cfg_text or '{"d_in": 64, "d_sae": 1' + "0" * 400 + "}")
    for command in _sae_commands(tiny_gemma2_dir, sae, inducing_jsonl, control_jsonl, harmful_jsonl):
        err = assert_bad(capsys, tmp_path, command, match)
        assert str(sae) in err


def test_a_file_the_checks_pass_that_fails_to_load_is_one_line(tmp_path, tiny_gemma2_dir, tiny_lora_dir,
                                                              tiny_sae_dir):
    """Headers intact but tensors that do not fit (the wrapped loads): one InputError naming the file."""
    from safetensors.torch import load_file, save_file

    from realmodels.loading.adapters import load_adapter, resolve_adapter
    from realmodels.loading.bundle import load_pretrained, resolve_model_source
    from realmodels.loading.checks import ModelSource
    from realmodels.loading.saes import SaeSource, load_sae
    from theory.errors import InputError

    adapter = shutil.copytree(tiny_lora_dir(tiny_gemma2_dir), tmp_path / "adapter")
    weights = load_file(adapter / "adapter_model.safetensors")
    save_file({name: tensor[:1] for name, tensor in weights.items()}, adapter / "adapter_model.safetensors")
    source = resolve_adapter(adapter, ModelSource(path=Path(tiny_gemma2_dir)))  # the header is intact
    from transformers import AutoModelForCausalLM

    with pytest.raises(InputError, match=f"could not load the adapter on .* from {adapter}"):
        load_adapter(AutoModelForCausalLM.from_pretrained(tiny_gemma2_dir), source)

    sae = shutil.copytree(tiny_sae_dir(tiny_gemma2_dir, layer=1), tmp_path / "sae")
    tensors = load_file(sae / "sae_weights.safetensors")
    save_file({**tensors, "W_enc": tensors["W_enc"][:3]}, sae / "sae_weights.safetensors")
    with pytest.raises(InputError, match=f"could not load the SAE from {sae}"):
        load_sae(SaeSource(path=sae))

    from transformers import AutoConfig

    model = shutil.copytree(tiny_gemma2_dir, tmp_path / "model")
    (model / "config.json").write_text(json.dumps({**json.loads((model / "config.json").read_text()),
                                                   "model_type": "no-such-architecture"}))
    with pytest.raises(InputError, match=f"could not load the model config from {model}"):
        load_pretrained(AutoConfig, resolve_model_source(None, model), "model config")
