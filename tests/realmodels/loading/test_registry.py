"""Registry of the five checkpoints and Gemma 3 270M, the sae-lens release directory, and the memory estimate."""

import pytest

from realmodels.loading.memory import MemoryEstimate, check_memory, estimate_memory
from realmodels.loading.registry import REGISTRY, CheckpointSpec, get_checkpoint, memory_estimate_gb
from realmodels.loading.sae_releases import release_info, release_names
from theory.errors import InputError


def test_registry_has_the_six_checkpoints_with_their_releases():
    assert set(REGISTRY) == {"gemma-2-2b", "gemma-2-9b", "gemma-2-27b", "llama-3.1-8b", "gpt-oss-20b", "gemma-3-270m"}
    gemma3 = get_checkpoint("gemma-3-270m")
    assert (gemma3.model_id, gemma3.sae_release) == ("google/gemma-3-270m", "gemma-scope-2-270m-pt-res")
    assert (gemma3.hidden_size, gemma3.n_layers, gemma3.d_sae) == (640, 18, 16_384)
    assert release_info(gemma3.sae_release).model == gemma3.model_id
    assert get_checkpoint("gemma-2-27b").sae_release == "gemma-scope-27b-pt-res-canonical"
    assert get_checkpoint("llama-3.1-8b").model_id == "meta-llama/Llama-3.1-8B"
    assert get_checkpoint("gpt-oss-20b").sae_release == "gpt-oss-20b-andyrdt"
    assert all(isinstance(spec, CheckpointSpec) and spec.name == name for name, spec in REGISTRY.items())


def test_layers_are_exactly_the_sae_ids_sae_lens_can_load():
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    for spec in REGISTRY.values():
        assert spec.layers, spec.name
        assert all(0 <= layer < spec.n_layers for layer in spec.layers)
        for layer in spec.layers:
            assert spec.sae_id(layer) in directory[spec.sae_release].saes_map
    assert get_checkpoint("gemma-2-2b").layers == tuple(range(26))
    assert get_checkpoint("gemma-2-27b").layers == (10, 22, 34)
    assert get_checkpoint("llama-3.1-8b").layers == tuple(range(32))
    assert get_checkpoint("gpt-oss-20b").layers == (3, 7, 11, 15, 19, 23)
    assert get_checkpoint("gemma-3-270m").layers == (5, 9, 12, 15)
    assert get_checkpoint("gemma-3-270m").sae_id(12) == "layer_12_width_16k_l0_big"


def test_release_reader_agrees_with_sae_lens_on_every_release():
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    assert set(release_names()) == set(directory)
    for release in {spec.sae_release for spec in REGISTRY.values()}:
        ours, theirs = release_info(release), directory[release]
        assert (ours.repo_id, ours.conversion_func, ours.sae_paths, ours.norm_scaling_factors) == (
            theirs.repo_id, theirs.conversion_func, theirs.saes_map, theirs.norm_scaling_factor)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(InputError, match="did you mean 'gemma-2-2b'.*valid checkpoints: gemma-2-2b, gemma-2-9b"):
        get_checkpoint("gemma-2-2")
    with pytest.raises(InputError, match="unknown SAE release 'gemma-scope-2b-res'.*knows: .*llama_scope_lxr_8x"):
        release_info("gemma-scope-2b-res")
    with pytest.raises(InputError, match="valid ids: l0r_8x, l1r_8x"):
        release_info("llama_scope_lxr_8x").folder("l99r_8x")
    with pytest.raises(InputError, match="no SAE at layer 5.*layers with an SAE: 3, 7, 11, 15, 19, 23"):
        get_checkpoint("gpt-oss-20b").sae_id(5)


def test_memory_estimate_is_params_times_dtype_bytes():
    spec = get_checkpoint("gemma-2-2b")
    assert memory_estimate_gb(spec) == pytest.approx(spec.n_params * 2 / 1e9)  # default bfloat16
    assert memory_estimate_gb(spec, "float32") == pytest.approx(10.457, abs=1e-3)
    assert memory_estimate_gb(1_000_000_000, "float16") == 2.0
    assert memory_estimate_gb(1_000_000_000) == 4.0  # auto without a spec: float32 upper bound
    with pytest.raises(InputError, match="unknown dtype 'int3'"):
        memory_estimate_gb(spec, "int3")


def test_check_memory_refuses_oversize_cpu_loads_unless_overridden():
    estimate = estimate_memory(n_params=10**9, dtype="float32", d_in=1000, d_sae=1000)
    assert estimate.model_gb == 4.0 and estimate.sae_gb == pytest.approx(0.012) and estimate.on_cpu
    big = MemoryEstimate(model_gb=50.0, sae_gb=2.0, available_gb=20.0, on_cpu=True)
    message = r"needs ~52.0 GB \(model 50.0 GB \+ SAE 2.0 GB\); 20.0 GB RAM .*`ignore_memory_check`"
    with pytest.raises(InputError, match=message):
        check_memory(big)
    check_memory(big, ignore=True)
    check_memory(MemoryEstimate(model_gb=50.0, sae_gb=2.0, available_gb=20.0, on_cpu=False))  # device_map
    assert "model unknown" in MemoryEstimate(None, None, 1.0, True).summary()
