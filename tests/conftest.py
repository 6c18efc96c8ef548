"""Shared test setup: one torch thread (two threads on a busy 2-core box can be 100x slower),
deterministic hypothesis profile, matplotlib without a display."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

torch.set_num_threads(1)

settings.register_profile(
    "default", max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _one_ray_test_at_a_time(request):
    """Tests marked ``ray`` hold an exclusive lock while they run, so under ``pytest -n 2`` two of them never
    overlap: each checks that no Ray process outlives it by comparing this user's Ray processes before and after,
    which another test's local Ray would spoil."""
    if request.node.get_closest_marker("ray") is None:
        yield
        return
    import fcntl
    import tempfile

    with open(os.path.join(tempfile.gettempdir(), f"supergeom-ray-tests-{os.getuid()}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
