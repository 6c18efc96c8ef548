"""Cache-first hub access: offline first, a fast probe, one-line errors, no retry storm."""

import time

import pytest
from huggingface_hub import constants
from huggingface_hub.errors import LocalEntryNotFoundError

from realmodels.loading import hub
from theory.errors import InputError


def _loader(calls, *, fail_offline=True, result="loaded"):
    def load():
        calls.append(constants.HF_HUB_OFFLINE)
        if fail_offline and constants.HF_HUB_OFFLINE:
            raise LocalEntryNotFoundError("file not in the local cache")
        return result
    return load


def test_offline_mode_patches_and_restores_the_constant(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with hub.offline_mode():
        assert constants.HF_HUB_OFFLINE is True
    assert constants.HF_HUB_OFFLINE is False


def test_cached_load_never_goes_online(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    calls = []
    assert hub.cached_first(_loader(calls, fail_offline=False), what="SAE x", repo_id="org/x") == "loaded"
    assert calls == [True]


def test_cache_miss_with_unreachable_hub_is_one_fast_line(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # closed port: refused at once
    calls, start = [], time.perf_counter()
    with pytest.raises(InputError) as error:
        hub.cached_first(_loader(calls), what="SAE rel/id", repo_id="org/saes", include="layer_3/*")
    assert time.perf_counter() - start < 2.0 and calls == [True]
    message = str(error.value)
    assert "\n" not in message and "hub is unreachable" in message
    assert "`hf download org/saes --include 'layer_3/*'`" in message and "`model` PATH `sae` PATH `layer` L" in message


def test_offline_requested_means_no_probe_and_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub.socket, "create_connection", lambda *a, **k: pytest.fail("probed the network"))
    assert not hub.hub_reachable()
    with pytest.raises(InputError, match=r"disabled \(offline mode\)"):
        hub.cached_first(_loader([]), what="model org/m", repo_id="org/m")


def test_cache_miss_with_reachable_hub_loads_online(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    calls = []
    assert hub.cached_first(_loader(calls), what="model org/m", repo_id="org/m") == "loaded"
    assert calls == [True, False]


def test_probe_is_bounded_even_when_name_lookup_hangs(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    def hanging_lookup(*args, **kwargs):
        time.sleep(1)
        raise OSError("name lookup timed out")

    monkeypatch.setattr(hub.socket, "create_connection", hanging_lookup)
    start = time.perf_counter()
    assert not hub.hub_reachable(timeout=0.2)
    assert time.perf_counter() - start < 1.0
