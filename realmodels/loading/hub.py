"""Hugging Face hub access, cache first: every load is tried offline against the local cache; only when
that misses and the hub answers a 3 s connection probe is it retried online. Otherwise the user gets one
line saying how to pre-download or to pass local paths (instead of ~23 s of silent retries).

Offline mode is switched by patching ``huggingface_hub.constants.HF_HUB_OFFLINE``, which both
huggingface_hub and transformers read at call time (the HF_HUB_OFFLINE env var is read once at import)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlparse

from huggingface_hub import constants
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

from theory.errors import InputError, ParamError, first_line

T = TypeVar("T")
PROBE_TIMEOUT_S = 3.0
LOCAL_PATHS_HINT = "or pass local paths: `model` PATH `sae` PATH `layer` L"


@contextmanager
def offline_mode() -> Iterator[None]:
    """Within the block, huggingface_hub and transformers only read the local cache."""
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def offline_requested() -> bool:
    """True when the user asked for offline mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, env or constant)."""
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(f is not None and f.strip().upper() in {"1", "ON", "YES", "TRUE"}
                                           for f in flags)


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub endpoint opens within ``timeout`` seconds, name lookup included
    (run in a daemon thread, since ``getaddrinfo`` ignores socket timeouts). Never probes in offline mode."""
    if offline_requested():
        return False
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    opened: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((url.hostname, port), timeout=timeout).close()
            opened.append(True)
        except OSError:
            opened.append(False)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(opened and opened[0])


def download_command(repo_id: str, include: str | None = None) -> str:
    """The shell command that puts ``repo_id`` (or the files matching ``include``) in the HF cache."""
    return f"hf download {repo_id}" + (f" --include '{include}'" if include else "")


def cached_first(load: Callable[[], T], *, what: str, repo_id: str, include: str | None = None) -> T:
    """Run ``load`` offline; if the cache misses, run it online when the hub is reachable, else InputError.

    ``what`` names the thing in messages ("SAE gemma-scope-2b-pt-res-canonical/layer_12/..."); ``include``
    is the glob of its files in the repo, for the pre-download command."""
    with offline_mode():
        try:
            return load()
        except OSError as exc:  # transformers: OSError; huggingface_hub: LocalEntryNotFoundError(OSError)
            reason = first_line(exc)
    if not hub_reachable():
        raise ParamError(
            f"{what} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the hub is "
            f"{'disabled (offline mode)' if offline_requested() else 'unreachable'}; pre-download it on a machine "
            f"with network with `{download_command(repo_id, include)}` (older huggingface_hub: huggingface-cli "
            f"download) and point HF_HUB_CACHE at that cache, {LOCAL_PATHS_HINT} [cache miss: {reason}]")
    try:
        return load()
    except GatedRepoError:
        raise InputError(f"{what}: {repo_id} is gated; accept its licence on huggingface.co and run "
                         "`hf auth login` first") from None
    except RepositoryNotFoundError:
        raise InputError(f"{what}: repository {repo_id} does not exist on the hub (or is private)") from None
