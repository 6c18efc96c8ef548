"""realmodels.loading.session: a Session checks the whole choice when it opens (one resolution, no weights)
and loads the model only when activations are needed."""

from __future__ import annotations

import pytest

from realmodels.loading.bundle import BundleSources
from realmodels.loading.session import ModelChoice, Session
from tests.realmodels.tiny_models import TINY_D_MODEL, TINY_D_SAE
from theory.errors import InputError


def test_opening_resolves_once_and_loads_nothing(tiny_gemma2_dir, tiny_sae_dir, monkeypatch):
    sae_dir = tiny_sae_dir(tiny_gemma2_dir, layer=1)
    monkeypatch.setattr("realmodels.loading.bundle.load_resolved_bundle",
                        lambda *a, **k: pytest.fail("the model was loaded"))
    session = Session(ModelChoice(model=str(tiny_gemma2_dir), sae=str(sae_dir), layer=1), device_map="cpu")
    assert isinstance(session.sources, BundleSources)
    assert session.sources.layer == 1 and session.sources.sae.path == sae_dir.resolve()
    assert session.sources.dtype == "auto"  # a local model: its config decides
    assert session.device_map == "cpu"
    assert session.decoder.shape == (TINY_D_SAE, TINY_D_MODEL)  # read alone from the SAE directory
    assert "bundle" not in session.__dict__


def test_checkpoint_dtype_and_layer_default_come_from_the_registry(hub_cache):
    session = Session(ModelChoice(checkpoint="gemma-2-2b", layer=0))
    assert session.sources.dtype == "bfloat16" and session.sources.model.repo_id == "google/gemma-2-2b"
    with pytest.raises(InputError, match="`layer` is required for checkpoint 'gemma-2-2b'"):
        Session(ModelChoice(checkpoint="gemma-2-2b"))


@pytest.mark.parametrize(("options", "message"), [
    (dict(layer=None), "`layer` is required with `model`/`sae`"),
    (dict(dtype="fp8"), "unknown dtype 'fp8'"),
    (dict(chat_template="missing.jinja"), "chat template file missing.jinja does not exist"),
    (dict(sae="no/such/sae"), "SAE directory no/such/sae does not exist"),
])
def test_bad_choices_fail_when_the_session_opens(tiny_gemma2_dir, tiny_sae_dir, options, message):
    choice = dict(model=str(tiny_gemma2_dir), sae=str(tiny_sae_dir(tiny_gemma2_dir, layer=1)), layer=1)
    with pytest.raises(InputError, match=message):
        Session(ModelChoice(**{**choice, **options}))


def test_bad_session_options_fail_when_it_opens(tiny_gemma2_dir, tiny_sae_dir):
    choice = ModelChoice(model=str(tiny_gemma2_dir), sae=str(tiny_sae_dir(tiny_gemma2_dir, layer=1)), layer=1)
    with pytest.raises(InputError, match="`batch_size` must be at least 1"):
        Session(choice, batch_size=0)
    with pytest.raises(InputError, match="unknown device map"):
        Session(choice, device_map="everywhere")
