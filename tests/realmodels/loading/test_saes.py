"""SAEs in the three upstream layouts through sae-lens's real converters (offline, local hub cache), saved
SAE directories, decoder-only reads, and bad SAE inputs."""

import pytest
import torch
from sae_lens import SAE

from realmodels.loading.saes import load_decoder, load_sae, resolve_sae_source, sae_layer
from theory.errors import InputError

from tests.realmodels.tiny_models import TINY_D_MODEL, TINY_D_SAE, random_sae_weights

LAYOUTS = [  # release, sae_id, layer, conftest weight seed
    ("gemma-scope-2b-pt-res-canonical", "layer_1/width_16k/canonical", 1, 101),
    ("llama_scope_lxr_8x", "l1r_8x", 1, 101),
    ("gpt-oss-20b-andyrdt", "resid_post_layer_3_trainer_0", 3, 103),
]


@pytest.mark.parametrize(("release", "sae_id", "layer", "seed"), LAYOUTS, ids=[r for r, *_ in LAYOUTS])
def test_real_release_loads_offline_from_the_cache(hub_cache, release, sae_id, layer, seed):
    sae = SAE.from_pretrained(release, sae_id)
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (TINY_D_MODEL, TINY_D_SAE)
    assert sae_layer(sae, release) == layer
    expected = random_sae_weights(seed)["W_dec"]
    atol = 2e-2 if release == "llama_scope_lxr_8x" else 0  # llama scope files are bfloat16
    torch.testing.assert_close(sae.W_dec.detach(), expected, atol=atol, rtol=atol)


@pytest.mark.parametrize(("release", "sae_id", "layer", "seed"), LAYOUTS, ids=[r for r, *_ in LAYOUTS])
def test_load_decoder_reads_only_the_decoder_and_matches_sae_lens(hub_cache, monkeypatch, release, sae_id, layer,
                                                                   seed):
    full = SAE.from_pretrained(release, sae_id).W_dec.detach()
    monkeypatch.setattr(SAE, "from_pretrained", lambda *a, **k: pytest.fail("materialised the whole SAE"))
    decoder = load_decoder(sae_release=release, sae_id=sae_id)
    assert decoder.dtype == torch.float32 and decoder.shape == (TINY_D_SAE, TINY_D_MODEL)
    assert torch.equal(decoder, full)  # same ops as the converter, incl. llama scope's folded norm factor


def test_load_decoder_by_checkpoint_and_layer(hub_cache):
    torch.testing.assert_close(load_decoder(checkpoint="gemma-2-2b", layer=0), random_sae_weights(100)["W_dec"],
                               atol=0, rtol=0)
    torch.testing.assert_close(load_decoder(sae_release="llama_scope_lxr_8x", layer=0),
                               load_decoder(checkpoint="llama-3.1-8b", layer=0), atol=0, rtol=0)


def test_saved_sae_dir_round_trips(tiny_gemma2_dir, tiny_sae_dir):
    path = tiny_sae_dir(tiny_gemma2_dir, layer=1)
    sae = load_sae(resolve_sae_source(sae_path=path))
    assert sae_layer(sae, str(path)) == 1
    assert torch.equal(load_decoder(sae_path=path), sae.W_dec.detach())
    assert torch.equal(load_decoder(sae_path=path), random_sae_weights(10 + TINY_D_MODEL)["W_dec"])


def test_bad_sae_inputs_are_one_line_errors(hub_cache, tmp_path, tiny_gemma2_dir):
    with pytest.raises(InputError, match="not in release 'gemma-scope-2b-pt-res-canonical'.*valid ids: layer_0/"):
        load_decoder(sae_release="gemma-scope-2b-pt-res-canonical", sae_id="layer_99/width_16k/canonical")
    with pytest.raises(InputError, match="unknown SAE release 'nope'.*sae-lens knows: "):
        load_decoder(sae_release="nope", sae_id="x")
    with pytest.raises(InputError, match="not a directory written by sae-lens SAE.save_model"):
        load_decoder(sae_path=tiny_gemma2_dir)
    with pytest.raises(InputError, match="either an SAE path or an SAE release"):
        resolve_sae_source(sae_path=tmp_path, sae_release="llama_scope_lxr_8x")
    with pytest.raises(InputError, match="pass an SAE id for release 'gemma-scope-2b-pt-res'; valid ids: .*average_l0_105"):
        resolve_sae_source(sae_release="gemma-scope-2b-pt-res", layer=3)
    with pytest.raises(InputError, match="no SAE given"):
        resolve_sae_source()


def test_non_residual_sae_is_rejected(tiny_gemma2_dir, tiny_sae_dir):
    sae = load_sae(resolve_sae_source(sae_path=tiny_sae_dir(tiny_gemma2_dir)))
    sae.cfg.metadata.hook_name = "blocks.0.hook_mlp_out"
    with pytest.raises(InputError, match="reads hook 'blocks.0.hook_mlp_out', not a residual stream"):
        sae_layer(sae, "x")


def test_missing_sae_without_hub_says_how_to_download(empty_hub_cache):
    hint = r"`hf download fnlp/Llama3_1-8B-Base-LXR-8x --include 'Llama3_1-8B-Base-L5R-8x/\*'`"
    with pytest.raises(InputError, match=hint):
        load_decoder(checkpoint="llama-3.1-8b", layer=5)
