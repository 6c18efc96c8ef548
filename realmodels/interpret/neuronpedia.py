"""Neuronpedia pages of registered SAEs: sae-lens's ``pretrained_saes.yaml`` gives each SAE of a release its
Neuronpedia id (``model/source``, e.g. ``gemma-2-2b/12-gemmascope-res-16k``); feature i's page is
https://www.neuronpedia.org/<id>/<i>. A local SAE, or one Neuronpedia does not host, has none."""

from __future__ import annotations

from realmodels.loading.sae_releases import release_info
from realmodels.loading.saes import SaeSource

NEURONPEDIA = "https://www.neuronpedia.org"


def neuronpedia_id(sae: SaeSource) -> str | None:
    """The Neuronpedia id of a release SAE (None for a local SAE or an SAE without one)."""
    if sae.release is None or sae.sae_id is None:
        return None
    return release_info(sae.release).neuronpedia.get(sae.sae_id)


def feature_url(neuronpedia: str | None, feature: int) -> str | None:
    """The page of ``feature`` under the Neuronpedia id ``neuronpedia`` (None without one)."""
    return None if neuronpedia is None else f"{NEURONPEDIA}/{neuronpedia}/{int(feature)}"
