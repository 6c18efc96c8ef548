"""Residual capture, per-sample SAE activations averaged over assistant tokens, and the disk cache."""

import pytest
import torch

from realmodels.data.activations import SampleActivations, compute_activations, dataset_activations
from realmodels.data.chat import tokenize_chat
from realmodels.data.jsonl import read_chat_jsonl
from realmodels.loading.bundle import load_bundle
from realmodels.data.residual import residual_stream
from theory.errors import InputError

FAMILIES = ["gemma2", "llama", "gptoss"]


@pytest.fixture
def model_dirs(tiny_gemma2_dir, tiny_llama_dir, tiny_gptoss_dir):
    return {"gemma2": tiny_gemma2_dir, "llama": tiny_llama_dir, "gptoss": tiny_gptoss_dir}


def _local_bundle(model_dirs, tiny_sae_dir, family, layer=0):
    model_dir = model_dirs[family]
    return load_bundle(model_path=model_dir, sae_path=tiny_sae_dir(model_dir, layer=layer), layer=layer,
                       dtype="float32")


def _manual(bundle, dataset, residual_of):
    """Per conversation, unbatched: mean residual and mean SAE code over its assistant tokens."""
    resid_means, code_means = [], []
    for messages in read_chat_jsonl(dataset):
        chat = tokenize_chat(bundle.tokenizer, messages)
        tokens = residual_of(chat.input_ids[None])[0][chat.assistant_mask]  # (n_assistant, d_model)
        resid_means.append(tokens.mean(0))
        code_means.append(bundle.sae.encode(tokens).mean(0))
    return torch.stack(resid_means), torch.stack(code_means)


@pytest.mark.parametrize("family", FAMILIES)
def test_hook_output_is_resid_post_of_the_layer(model_dirs, tiny_sae_dir, family):
    bundle = _local_bundle(model_dirs, tiny_sae_dir, family)
    model, n_layers = bundle.model, bundle.model.config.num_hidden_layers
    input_ids = torch.randint(5, 300, (2, 12))
    attention_mask = torch.ones_like(input_ids)
    with torch.no_grad():
        hidden = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
    for layer in range(n_layers - 1):
        torch.testing.assert_close(residual_stream(model, input_ids, attention_mask, layer), hidden[layer + 1])
    last = residual_stream(model, input_ids, attention_mask, n_layers - 1)  # hidden_states[-1] is after the norm
    torch.testing.assert_close(model.model.norm(last), hidden[-1])


@pytest.mark.parametrize("family", FAMILIES)
def test_mean_over_assistant_tokens_matches_a_direct_computation(model_dirs, tiny_sae_dir, inducing_jsonl, family):
    bundle = _local_bundle(model_dirs, tiny_sae_dir, family, layer=0)
    acts = dataset_activations(bundle, inducing_jsonl, batch_size=4, progress=False)  # padded batches
    with torch.no_grad():
        expected_resid, expected_codes = _manual(
            bundle, inducing_jsonl, lambda ids: bundle.model(input_ids=ids, output_hidden_states=True).hidden_states[1])
    assert isinstance(acts, SampleActivations) and len(acts) == len(read_chat_jsonl(inducing_jsonl))
    torch.testing.assert_close(acts.residual_mean, expected_resid, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(acts.dense_features(), expected_codes, atol=1e-5, rtol=1e-4)
    assert (acts.dense_features() > 0).any(dim=1).all()  # every sample has active features
    conversations = read_chat_jsonl(inducing_jsonl)
    assert acts.n_tokens.tolist() == [int(tokenize_chat(bundle.tokenizer, m).assistant_mask.sum()) for m in conversations]


def test_storage_is_sparse_coo_float32(model_dirs, tiny_sae_dir, harmful_jsonl):
    acts = dataset_activations(_local_bundle(model_dirs, tiny_sae_dir, "llama"), harmful_jsonl, progress=False)
    features = acts.feature_acts
    assert features.layout == torch.sparse_coo and features.is_coalesced() and features.dtype == torch.float32
    assert features.shape == (5, 256) and acts.residual_mean.shape == (5, 64) and acts.n_tokens.dtype == torch.long
    assert features._nnz() == int((acts.dense_features() != 0).sum())


@pytest.mark.parametrize(("checkpoint", "layer"), [("gemma-2-2b", 1), ("llama-3.1-8b", 0), ("gpt-oss-20b", 3)])
def test_registry_checkpoints_end_to_end(hub_cache, control_jsonl, checkpoint, layer):
    bundle = load_bundle(checkpoint=checkpoint, layer=layer, dtype="float32", ignore_memory_check=True)
    acts = dataset_activations(bundle, control_jsonl, batch_size=3, progress=False)
    expected_resid, expected_codes = _manual(
        bundle, control_jsonl, lambda ids: residual_stream(bundle.model, ids, torch.ones_like(ids), layer))
    torch.testing.assert_close(acts.residual_mean, expected_resid, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(acts.dense_features(), expected_codes, atol=1e-5, rtol=1e-4)


def test_second_run_reads_the_cache_and_runs_nothing(model_dirs, tiny_sae_dir, inducing_jsonl, tmp_path, monkeypatch,
                                                     write_chat_jsonl):
    bundle = _local_bundle(model_dirs, tiny_sae_dir, "gemma2")
    first = dataset_activations(bundle, inducing_jsonl, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("activations-")  # no temp files left behind

    def boom(*args, **kwargs):
        raise AssertionError("the model ran although the activations are cached")

    monkeypatch.setattr(bundle.model, "forward", boom)
    monkeypatch.setattr("realmodels.data.chat.tokenize_chats", boom)
    second = dataset_activations(bundle, inducing_jsonl, cache_dir=tmp_path, progress=False)
    assert torch.equal(second.dense_features(), first.dense_features())
    assert torch.equal(second.residual_mean, first.residual_mean) and torch.equal(second.n_tokens, first.n_tokens)

    changed = write_chat_jsonl(tmp_path / "data" / "changed.jsonl", read_chat_jsonl(inducing_jsonl)[:-1])
    with pytest.raises(AssertionError, match="the model ran"):  # other content: a cache miss
        dataset_activations(bundle, changed, cache_dir=tmp_path, progress=False)


def test_cache_key_separates_layers_and_recovers_from_a_corrupt_file(model_dirs, tiny_sae_dir, inducing_jsonl,
                                                                     tmp_path):
    layer0 = _local_bundle(model_dirs, tiny_sae_dir, "gemma2", layer=0)
    layer1 = _local_bundle(model_dirs, tiny_sae_dir, "gemma2", layer=1)
    acts0 = dataset_activations(layer0, inducing_jsonl, cache_dir=tmp_path, progress=False)
    acts1 = dataset_activations(layer1, inducing_jsonl, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("activations-*.pt"))) == 2
    assert not torch.equal(acts0.residual_mean, acts1.residual_mean)
    for path in tmp_path.glob("activations-*.pt"):
        path.write_bytes(b"truncated")
    again = dataset_activations(layer0, inducing_jsonl, cache_dir=tmp_path, progress=False)
    assert torch.equal(again.dense_features(), acts0.dense_features())


@pytest.mark.parametrize("every_s", [0.0, 3600.0])  # checkpoint after every batch / only on interruption
def test_killed_run_resumes_from_its_partial_checkpoint_without_recomputing(model_dirs, tiny_sae_dir, inducing_jsonl,
                                                                             tmp_path, monkeypatch, every_s):
    """Interrupt the model after 2 of 3 batches: the finished samples are in ``<cache>.partial``; the rerun
    runs only the missing batch, gives exactly the uninterrupted result, and removes the checkpoint."""
    import realmodels.data.activations as activations

    bundle = _local_bundle(model_dirs, tiny_sae_dir, "llama")
    reference = dataset_activations(bundle, inducing_jsonl, batch_size=2, progress=False)  # 6 samples, 3 batches
    monkeypatch.setattr(activations, "PARTIAL_EVERY_S", every_s)
    real, calls = activations.residual_stream, []

    def interrupted_after_two(*args, **kwargs):
        calls.append(args[1].shape[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(activations, "residual_stream", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        dataset_activations(bundle, inducing_jsonl, batch_size=2, cache_dir=tmp_path, progress=False)
    assert [p.name.endswith(".pt.partial") for p in tmp_path.iterdir()] == [True]  # no final file, no temp file

    calls.clear()
    monkeypatch.setattr(activations, "residual_stream", lambda *a, **k: calls.append(a[1].shape[0]) or real(*a, **k))
    resumed = dataset_activations(bundle, inducing_jsonl, batch_size=2, cache_dir=tmp_path, progress=False)
    assert calls == [2]  # only the third batch ran
    assert torch.equal(resumed.dense_features(), reference.dense_features())
    assert torch.equal(resumed.residual_mean, reference.residual_mean)
    assert [p.name.endswith(".pt") for p in tmp_path.iterdir()] == [True]  # final cache only


def test_progress_bar_reports_tokens_per_second(model_dirs, tiny_sae_dir, harmless_jsonl, capsys):
    bundle = _local_bundle(model_dirs, tiny_sae_dir, "llama")
    chats = [tokenize_chat(bundle.tokenizer, m) for m in read_chat_jsonl(harmless_jsonl)]
    compute_activations(bundle, chats, batch_size=2, progress=True, description="harmless")
    assert "tok/s" in capsys.readouterr().err


def test_bad_inputs(model_dirs, tiny_sae_dir, tmp_path, inducing_jsonl):
    bundle = _local_bundle(model_dirs, tiny_sae_dir, "llama")
    with pytest.raises(InputError, match="batch size must be >= 1"):
        dataset_activations(bundle, inducing_jsonl, batch_size=0, progress=False)
    bad = tmp_path / "no_assistant.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hello"}]}\n')
    with pytest.raises(InputError, match=r"no_assistant\.jsonl:1: conversation has no assistant turn"):
        dataset_activations(bundle, bad, progress=False)
    with pytest.raises(InputError, match=r"inducing\.jsonl:\d+: no assistant tokens within the first 4 tokens"):
        dataset_activations(bundle, inducing_jsonl, max_length=4, progress=False)



def test_device_map_with_disk_offload_dispatches_and_gives_the_same_activations(model_dirs, tiny_sae_dir,
                                                                               inducing_jsonl, tmp_path):
    """An explicit device map that offloads the embeddings and the hooked layer to disk: transformers
    dispatches the model with accelerate's hooks (weights on the meta device), the SAE and the input ids
    go to where those modules compute (not to "meta"), and the activations equal those of a plain load."""
    model_dir = model_dirs["llama"]
    kwargs = dict(model_path=model_dir, sae_path=tiny_sae_dir(model_dir, layer=1), layer=1, dtype="float32")
    device_map = {"model.embed_tokens": "disk", "model.layers.0": "cpu", "model.layers.1": "disk",
                  "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "disk"}
    plain = load_bundle(**kwargs)
    mapped = load_bundle(**kwargs, device_map=device_map, offload_folder=tmp_path / "offload")
    assert mapped.model.hf_device_map == device_map  # accelerate dispatched it
    assert next(mapped.model.model.layers[1].parameters()).device.type == "meta"
    assert mapped.sae.W_dec.device.type == "cpu"
    a = dataset_activations(plain, inducing_jsonl, batch_size=3, progress=False)
    b = dataset_activations(mapped, inducing_jsonl, batch_size=3, progress=False)
    torch.testing.assert_close(b.residual_mean, a.residual_mean)
    torch.testing.assert_close(b.dense_features(), a.dense_features())


def test_device_map_auto_on_a_cpu_only_machine_is_a_plain_cpu_load(model_dirs, tiny_sae_dir, inducing_jsonl):
    model_dir = model_dirs["gemma2"]
    kwargs = dict(model_path=model_dir, sae_path=tiny_sae_dir(model_dir, layer=0), layer=0, dtype="float32")
    a = dataset_activations(load_bundle(**kwargs), inducing_jsonl, progress=False)
    b = dataset_activations(load_bundle(**kwargs, device_map="auto"), inducing_jsonl, progress=False)
    torch.testing.assert_close(b.dense_features(), a.dense_features())


@pytest.mark.parametrize(("device_map", "message"), [
    ("everywhere", "unknown device map 'everywhere': use one of auto"),
    ({}, "the device map is empty"),
    ({"model.layers.0": ["cpu"]}, "is not 'module name': device"),
    ({"model.layers.0": "disk"}, "offloads modules to \"disk\": give an offload folder"),
])
def test_bad_device_maps_are_input_errors(model_dirs, tiny_sae_dir, device_map, message):
    model_dir = model_dirs["llama"]
    with pytest.raises(InputError, match=message):
        load_bundle(model_path=model_dir, sae_path=tiny_sae_dir(model_dir, layer=0), layer=0, device_map=device_map)
