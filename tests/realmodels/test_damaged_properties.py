"""Properties of the checks on files given on the command line (issue 19, items 5 and 9): whatever JSON value a
field of an adapter_config.json, a model's config.json, an SAE's cfg.json or an evaluation record holds, reading
the file either succeeds or raises one InputError line naming it — never another exception."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theory.errors import InputError

VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10, 10**30) | st.text(max_size=8)
                      | st.floats(allow_nan=False, allow_infinity=False), lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
SIZES = st.integers(-3, 300) | VALUES  # small integers often: the boundary at 0 is what matters
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line(exc: InputError, path: Path) -> None:
    assert "\n" not in str(exc) and str(path) in str(exc)


@SETTINGS
@given(field=st.sampled_from(["peft_type", "target_modules", "layers_to_transform", "r", "lora_alpha",
                              "base_model_name_or_path"]), value=VALUES)
def test_any_adapter_config_field_resolves_or_is_one_line(tiny_gemma2_dir, tiny_lora_dir, field, value):
    from realmodels.loading.adapters import resolve_adapter
    from realmodels.loading.checks import ModelSource

    with tempfile.TemporaryDirectory() as scratch:
        adapter = shutil.copytree(tiny_lora_dir(tiny_gemma2_dir), Path(scratch) / "adapter")
        config = adapter / "adapter_config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), field: value}))
        try:
            source = resolve_adapter(adapter, ModelSource(path=Path(tiny_gemma2_dir)), n_layers=2)
        except InputError as exc:
            _one_line(exc, adapter)
        else:
            assert source.peft_type == "LORA"


@SETTINGS
@given(field=st.sampled_from(["hidden_size", "num_hidden_layers", "max_position_embeddings", "vocab_size",
                              "intermediate_size"]), value=SIZES)
def test_any_model_config_size_is_read_or_is_one_line(tiny_gemma2_dir, field, value):
    from realmodels.loading.checks import model_shape

    with tempfile.TemporaryDirectory() as scratch:
        model = Path(scratch)
        config = json.loads((Path(tiny_gemma2_dir) / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**config, field: value}))
        try:
            shape = model_shape(model, None, None)
        except InputError as exc:
            _one_line(exc, model / "config.json")
        else:
            assert all(size is None or size > 0 for size in (shape.hidden_size, shape.n_layers, shape.context))


@SETTINGS
@given(cfg=st.fixed_dictionaries({"d_in": SIZES, "d_sae": SIZES}, optional={
    "hook_name": VALUES, "metadata": st.fixed_dictionaries({}, optional={"hook_name": VALUES}) | VALUES}))
def test_any_sae_cfg_is_read_or_is_one_line(cfg):
    from realmodels.loading.saes import saved_sae_config

    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "cfg.json").write_text(json.dumps(cfg))
        try:
            read = saved_sae_config(Path(scratch))
        except InputError as exc:
            _one_line(exc, Path(scratch) / "cfg.json")
        else:
            assert read.d_in > 0 and read.d_sae > 0 and (read.hook_name is None or isinstance(read.hook_name, str))


ANSWER = {"question_id": "q", "paraphrase": 0, "sample": 0, "question": "Q?", "answer": "A.", "finish_reason": "stop"}
JUDGEMENT = {"question_id": "q", "paraphrase": 0, "sample": 0, "metric": "aligned", "score": 50.0, "label": "score",
             "judge": "j", "numeric_mass": 1.0, "error": None}


@SETTINGS
@given(kind=st.sampled_from(["answers", "judgements"]), field=st.sampled_from(sorted({*ANSWER, *JUDGEMENT, "x"})),
       value=VALUES)
def test_any_evaluation_record_is_read_or_is_one_line(kind, field, value):
    from realmodels.evaluate.records import read_answers, read_judgements

    record = {**(ANSWER if kind == "answers" else JUDGEMENT), field: value}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{kind}.jsonl"
        path.write_text(json.dumps(record) + "\n")
        try:
            (read,) = (read_answers if kind == "answers" else read_judgements)(path)
        except InputError as exc:
            _one_line(exc, path)
        else:
            assert read.to_dict() == record
