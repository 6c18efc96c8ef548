"""Out-of-memory guard: estimate RAM for a model + SAE before loading, refuse on CPU when it cannot fit.

Model: n_params x bytes per parameter (transformers memory-maps safetensors, so the peak is about the
weights). SAE: sae-lens holds W_enc and W_dec in float32 and the converters keep one transient copy while
loading, so the peak is ~3 x d_in x d_sae x 4 bytes (a 131k x 3584 Gemma Scope SAE: ~5.6 GB; measured ~6)."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from realmodels.loading.registry import dtype_bytes
from realmodels.loading.placement import DeviceMap, runs_on_cpu_only
from theory.errors import ParamError

SAE_PEAK_COPIES = 3
OVERRIDE_HINT = "`ignore_memory_check`"


@dataclass(frozen=True)
class MemoryEstimate:
    """RAM needed (GB, 1e9 bytes) to load a model and its SAE, next to the RAM available now."""

    model_gb: float | None
    """The model's weights (None: parameter count unknown)."""
    sae_gb: float | None
    """The SAE while it loads (None: SAE width unknown)."""
    available_gb: float
    on_cpu: bool
    """False when accelerate places the model (device_map), so host RAM is not the limit."""

    @property
    def total_gb(self) -> float:
        """Model plus SAE estimate, in GB (an unknown part counts 0)."""
        return (self.model_gb or 0.0) + (self.sae_gb or 0.0)

    def summary(self) -> str:
        """One line, e.g. "needs ~5.7 GB (model 5.2 GB + SAE 0.5 GB); 24.8 GB RAM available"."""
        def part(gb: float | None) -> str:
            return "unknown" if gb is None else f"{gb:.1f} GB"

        return (f"needs ~{self.total_gb:.1f} GB (model {part(self.model_gb)} + SAE {part(self.sae_gb)}); "
                f"{self.available_gb:.1f} GB RAM available")


def available_ram_gb() -> float:
    """RAM the OS can give this process without swapping, in GB."""
    return psutil.virtual_memory().available / 1e9


def estimate_memory(*, n_params: int | None, dtype: str, d_in: int | None, d_sae: int | None,
                    device_map: DeviceMap = None) -> MemoryEstimate:
    """Estimate for ``n_params`` weights stored in ``dtype`` plus a (d_in x d_sae) float32 SAE."""
    model_gb = None if n_params is None else n_params * dtype_bytes(dtype) / 1e9
    sae_gb = None if d_in is None or d_sae is None else SAE_PEAK_COPIES * d_in * d_sae * 4 / 1e9
    return MemoryEstimate(model_gb=model_gb, sae_gb=sae_gb, available_gb=available_ram_gb(),
                          on_cpu=runs_on_cpu_only(device_map))


def check_memory(estimate: MemoryEstimate, *, ignore: bool = False) -> None:
    """Raise InputError when loading on CPU would need more RAM than is available (unless ``ignore``)."""
    if ignore or not estimate.on_cpu or estimate.total_gb <= estimate.available_gb:
        return
    raise ParamError(f"loading on CPU {estimate.summary()}; use a smaller checkpoint or dtype, a GPU "
                     f"(device_map='auto'), or override with {OVERRIDE_HINT} if you know it fits")
