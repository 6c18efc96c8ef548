"""The in-training defences (``realmodels.finetune.defences``) on the embedded model organism, a few optimiser steps:
CAFT removes the concept from the training residual and from the adapters' gradient at its layer, steering adds
α û to the training residual, steering by 0 and a KL weight of 0 equal the plain run byte for byte, a large KL
weight keeps the fine-tune near the base model, the one-sided guard is zero (and the run plain) when the harmful
features only fall; the saved adapter runs without any hook."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

import realmodels.finetune.defences as defences
import realmodels.finetune.guard as guard_module
from realmodels.analysis.direction import Direction, save_direction
from realmodels.data.dataset import as_dataset
from realmodels.experiments import ModelSpec, RunOptions, run_finetune
from realmodels.finetune.config import DefenceConfig, FinetuneConfig, GuardConfig
from realmodels.finetune.data import SftDataset, end_of_turn_ids
from realmodels.finetune.defences import DefenceState, kl_to_base
from realmodels.finetune.lora import make_trainable
from realmodels.finetune.train import run_training
from realmodels.loading.placement import decoder_layers

TINY = FinetuneConfig.from_preset("em-betley", max_steps=2, batch_size=2, grad_accum=1, warmup_steps=0, save_steps=1,
                                  lr=1e-3)
LAYER = 1  # the organism has 3 decoder layers of width 64


def _quiet(out) -> RunOptions:
    return RunOptions(out=out, progress=False)


def _direction(path: Path, seed: int = 0, layer: int = LAYER) -> Path:
    vector = torch.randn(64, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    save_direction(path, Direction(layer=layer, vector=vector.tolist(), note="test"))
    return path


def _unit(path: Path) -> torch.Tensor:
    vector = torch.tensor(json.loads(path.read_text())["vector"], dtype=torch.float64)
    return vector / vector.norm()


def _same_run(a: Path, b: Path) -> None:
    """Byte-identical adapters; train logs equal but for the wall-clock column tokens_per_s."""
    assert (a / "adapter" / "adapter_model.safetensors").read_bytes() == \
        (b / "adapter" / "adapter_model.safetensors").read_bytes()
    log_a, log_b = pd.read_csv(a / "train_log.csv"), pd.read_csv(b / "train_log.csv")
    assert list(log_a.columns) == list(log_b.columns)
    pd.testing.assert_frame_equal(log_a.drop(columns="tokens_per_s"), log_b.drop(columns="tokens_per_s"),
                                  check_exact=True)


class Recorder:
    """Wraps ``realmodels.finetune.defences.edited``: records each edit's (h, h') and, through a hook appended
    after the edit, the layer output the forward pass went on with."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        real = defences.edited

        def recording(model, layer, edit):
            record: dict = {}

            def wrapped(h):
                out = edit(h)
                record["in"], record["out"] = h.detach().clone(), out.detach().clone()
                return out

            def after(module, args, output):
                h = output[0] if isinstance(output, tuple) else output
                self.calls.append((record["in"], record["out"], h.detach().float().clone()))

            handle = decoder_layers(model)[layer].register_forward_hook(after)
            context = real(model, layer, wrapped)

            class Both:
                def __enter__(self_inner):
                    return context.__enter__()

                def __exit__(self_inner, *exc):
                    handle.remove()
                    return context.__exit__(*exc)

            return Both()

        monkeypatch.setattr(defences, "edited", recording)


def test_steering_by_zero_and_kl_weight_zero_equal_the_plain_run(tmp_path, inducing_jsonl):
    direction = _direction(tmp_path / "u.json")
    plain = run_finetune(inducing_jsonl, recipe=TINY, options=_quiet(tmp_path / "plain"), log=lambda line: None)
    steer0 = run_finetune(inducing_jsonl, recipe=TINY, options=_quiet(tmp_path / "steer0"), log=lambda line: None,
                          defence=DefenceConfig(direction=direction, steer_alpha=0.0))
    kl0 = run_finetune(inducing_jsonl, recipe=TINY, options=_quiet(tmp_path / "kl0"), log=lambda line: None,
                       defence=DefenceConfig(kl_weight=0.0))
    assert steer0.summary["defence"]["edits"] == [LAYER], "the steering hook ran (with α = 0)"
    _same_run(plain.path, steer0.path)
    _same_run(plain.path, kl0.path)
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert "defence" not in config, "a run without defences records none (older configs unchanged)"
    recorded = json.loads((tmp_path / "steer0" / "config.json").read_text())["defence"]
    assert recorded["direction"]["path"] == str(direction.resolve()) and len(recorded["direction"]["sha256"]) == 64


def test_steering_adds_alpha_u_to_the_training_residual(tmp_path, inducing_jsonl, monkeypatch):
    direction = _direction(tmp_path / "u.json", seed=1)
    recorder = Recorder(monkeypatch)
    alpha = 3.0
    result = run_finetune(inducing_jsonl, recipe=TINY, options=_quiet(tmp_path / "run"), log=lambda line: None,
                          defence=DefenceConfig(direction=direction, steer_alpha=alpha))
    u_hat = _unit(direction).float()
    assert len(recorder.calls) == 2, "one training forward pass per step, each steered"
    for h, h_out, seen in recorder.calls:
        assert torch.equal(seen, h_out), "the layers above read the steered residual"
        torch.testing.assert_close(h_out - h, (alpha * u_hat).expand_as(h), rtol=0, atol=1e-5)
    layer = decoder_layers(_load_adapter(result.path))[LAYER]
    assert not layer._forward_hooks and not layer._forward_pre_hooks, "the deployed model runs without the hook"


def _load_adapter(run: Path):
    from peft import PeftModel

    plain = ModelSpec().plain()
    return PeftModel.from_pretrained(plain.model, run / "adapter")


class Gradients(TrainerCallback):
    """The LoRA B gradients of every module before each optimiser step."""

    def __init__(self):
        self.grads: list[dict[str, torch.Tensor]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads.append({name: p.grad.detach().clone() for name, p in model.named_parameters()
                           if "lora_B" in name and p.grad is not None})


def _train_with(tmp_path, inducing_jsonl, state: DefenceState, extra_callbacks=()):
    """``run_training`` of the organism with the em-betley adapters and ``state``; returns the trained model."""
    plain = ModelSpec().plain()
    chats = as_dataset(inducing_jsonl).tokenized(plain.tokenizer, 256)
    model = make_trainable(plain.model, TINY)
    run_training(model, plain.tokenizer, SftDataset(chats, end_ids=end_of_turn_ids(plain.tokenizer)), TINY,
                 tmp_path / "run", callbacks=list(extra_callbacks), defence=state, progress=False, use_cpu=True)
    return model


@pytest.mark.parametrize("mode", ["direction", "features"])
def test_caft_removes_the_concept_from_the_residual_and_the_gradient_at_its_layer(tmp_path, inducing_jsonl,
                                                                                  monkeypatch, mode):
    recorder = Recorder(monkeypatch)
    if mode == "direction":
        path = _direction(tmp_path / "u.json", seed=2)
        basis = _unit(path)[:, None]
        from realmodels.analysis.direction import load_direction

        state = DefenceState.build(DefenceConfig(caft="direction", direction=path), base_model=None, full=False,
                                   direction=load_direction(path))
    else:  # a constructed 3-dimensional concept span at the layer
        basis, _ = torch.linalg.qr(torch.randn(64, 3, generator=torch.Generator().manual_seed(3),
                                               dtype=torch.float64))
        state = DefenceState.build(DefenceConfig(caft="features"), base_model=None, full=False,
                                   caft_basis=basis.float(), caft_layer=LAYER)
    gradients = Gradients()
    model = _train_with(tmp_path, inducing_jsonl, state, [gradients])
    q = basis.float()
    assert len(recorder.calls) == 2
    for h, h_out, seen in recorder.calls:
        assert torch.equal(seen, h_out)
        assert (h @ q).abs().max() > 1e-2, "the residual had a component along the concept"
        assert (h_out @ q).abs().max() < 1e-5 * h.abs().max(), "none is left"
    for step in gradients.grads:
        at_layer, = [name for name in step if f"layers.{LAYER}.mlp.down_proj" in name]
        others = [name for name in step if "o_proj" in name or ("down_proj" in name and name != at_layer)]
        grad = step[at_layer]  # B of layer L's MLP output projection writes straight into the layer-L residual
        assert grad.norm() > 0 and (q.T @ grad).norm() < 1e-5 * grad.norm(), at_layer
        assert len(others) == 5 and all((q.T @ step[name]).norm() > 1e-3 * step[name].norm() for name in others), \
            "the adapters writing elsewhere (below, mid-layer, above) are not constrained"
    assert not decoder_layers(model)[LAYER]._forward_hooks, "the trained model runs without the hook"
    with torch.no_grad():
        batch = as_dataset(inducing_jsonl).tokenized(ModelSpec().plain().tokenizer, 256)[0].input_ids[None]
        deployed = model(input_ids=batch, output_hidden_states=True).hidden_states[LAYER + 1][0].float()
    assert (deployed @ q).abs().max() > 1e-2, "deployed, the residual keeps its component along the concept"


def test_caft_features_in_a_run_projects_out_the_harmful_span(tmp_path, inducing_jsonl, harmful_jsonl,
                                                              harmless_jsonl, monkeypatch):
    captured: dict = {}
    real_build = DefenceState.build.__func__

    def build(cls, config, **kwargs):
        captured.update(kwargs)
        return real_build(cls, config, **kwargs)

    monkeypatch.setattr(DefenceState, "build", classmethod(build))
    recorder = Recorder(monkeypatch)
    result = run_finetune(inducing_jsonl, recipe=replace(TINY, max_steps=1), options=_quiet(tmp_path / "run"),
                          log=lambda line: None, harmful=harmful_jsonl, harmless=harmless_jsonl,
                          defence=DefenceConfig(caft="features", harmful_k=4))
    q = captured["caft_basis"]
    assert captured["caft_layer"] == 1 and q.shape[1] == result.summary["defence"]["caft_rank"] >= 1
    assert len(result.summary["features"]["harmful"]) >= 1
    (h, h_out, seen), = recorder.calls
    assert (h @ q).abs().max() > 1e-3 and (h_out @ q).abs().max() < 1e-5 * h.abs().max()


def _kl_to_base(run: Path, data: Path) -> float:
    """Mean over assistant positions of KL(p_base ‖ p_tuned) of the run's adapter on ``data``."""
    model = _load_adapter(run).eval()
    tokenizer = ModelSpec().plain().tokenizer
    dataset = SftDataset(as_dataset(data).tokenized(tokenizer, 256), end_ids=end_of_turn_ids(tokenizer))
    total = count = 0.0
    with torch.no_grad():
        for i in range(len(dataset)):
            example = dataset[i]
            ids, labels = example["input_ids"][None], example["labels"][None]
            tuned = model(input_ids=ids).logits
            with model.disable_adapter():
                base = model(input_ids=ids).logits
            total += float(kl_to_base(tuned, base, labels))
            count += int((labels[:, 1:] != -100).sum())
    return total / count


def test_a_large_kl_weight_keeps_the_fine_tune_near_the_base(tmp_path, inducing_jsonl):
    recipe = replace(TINY, max_steps=10, lr=5e-4)  # Adam: the first step (KL 0, no KL gradient) moves every weight
    # by about lr, and momentum carries it on; with lr 5e-4 and 12 steps this toy measured KL 5.4 (plain) vs 0.22
    plain = run_finetune(inducing_jsonl, recipe=recipe, options=_quiet(tmp_path / "plain"), log=lambda line: None)
    kl = run_finetune(inducing_jsonl, recipe=recipe, options=_quiet(tmp_path / "kl"), log=lambda line: None,
                      defence=DefenceConfig(kl_weight=30.0))
    drift_plain, drift_kl = _kl_to_base(plain.path, inducing_jsonl), _kl_to_base(kl.path, inducing_jsonl)
    assert drift_plain > 0.05 and drift_kl < 0.2 * drift_plain, (drift_plain, drift_kl)
    log = pd.read_csv(kl.path / "train_log.csv")
    assert log["kl_penalty"].iloc[0] == 0, "step 1: B = 0, the model is the base model"
    assert (log["kl_penalty"].iloc[1:] > 0).all()
    assert (log["task_loss"] - (log["loss"] - log["kl_penalty"])).abs().max() < 1e-9
    assert "kl_penalty" not in pd.read_csv(plain.path / "train_log.csv").columns


def test_kl_for_full_fine_tuning_compares_with_a_frozen_copy(tmp_path, inducing_jsonl):
    recipe = FinetuneConfig.from_preset("full", max_steps=2, batch_size=2, grad_accum=1, warmup_steps=0,
                                        save_steps=1, lr=1e-3)
    result = run_finetune(inducing_jsonl, recipe=recipe, options=_quiet(tmp_path / "full"), log=lambda line: None,
                          defence=DefenceConfig(kl_weight=1.0))
    log = pd.read_csv(result.path / "train_log.csv")
    assert abs(log["kl_penalty"].iloc[0]) < 1e-7 and log["kl_penalty"].iloc[1] > 1e-7, list(log["kl_penalty"])


def _shift_cached_pre(monkeypatch, offset: float) -> None:
    """The guard's cached base pre-activations moved by ``offset``: +large, every harmful feature has fallen below
    its base value; −large, every one has risen."""
    real = guard_module.guard_cache

    def shifted(*args, **kwargs):
        cache = real(*args, **kwargs)
        cache[guard_module.PRE] = [pre + offset for pre in cache[guard_module.PRE]]
        return cache

    monkeypatch.setattr(guard_module, "guard_cache", shifted)


@pytest.mark.parametrize("offset, zero", [(1e3, True), (-1e3, False)])
def test_the_one_sided_guard_only_penalises_rises(tmp_path, inducing_jsonl, harmful_jsonl, harmless_jsonl,
                                                  monkeypatch, offset, zero):
    watch = {"harmful": harmful_jsonl, "harmless": harmless_jsonl}
    _shift_cached_pre(monkeypatch, offset)
    rise = run_finetune(inducing_jsonl, recipe=TINY, options=_quiet(tmp_path / "rise"), log=lambda line: None,
                        guard=GuardConfig(kind="rise", weight=1.0), **watch)
    log = pd.read_csv(rise.path / "train_log.csv")
    if zero:  # every feature fell: no penalty, no gradient: the plain projection-free run, byte for byte
        assert (log["guard_penalty"] == 0).all()
        plain = run_finetune(inducing_jsonl, recipe=TINY, options=_quiet(tmp_path / "plain"), log=lambda line: None)
        assert load_file(rise.path / "adapter" / "adapter_model.safetensors").keys() == \
            load_file(plain.path / "adapter" / "adapter_model.safetensors").keys()
        assert (rise.path / "adapter" / "adapter_model.safetensors").read_bytes() == \
            (plain.path / "adapter" / "adapter_model.safetensors").read_bytes()
    else:
        assert (log["guard_penalty"] > 1e3).all()
