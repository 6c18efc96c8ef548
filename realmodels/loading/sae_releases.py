"""The SAE releases sae-lens knows, read from its ``pretrained_saes.yaml`` without importing sae-lens.

Importing sae-lens costs ~9 s (it pulls in TransformerLens); parsing one release's block of the YAML
costs milliseconds, so listing checkpoints and validating ids stay instant. The file read is the one
that ``SAE.from_pretrained`` itself uses, so names and paths cannot drift from what sae-lens loads."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import yaml

from theory.errors import InputError


@dataclass(frozen=True)
class ReleaseInfo:
    """One release: its hub repo, sae-lens converter, and ``sae_paths`` (sae_id -> folder in the repo)."""

    release: str
    repo_id: str
    model: str
    conversion_func: str | None
    sae_paths: dict[str, str]
    norm_scaling_factors: dict[str, float]
    neuronpedia: dict[str, str] = field(default_factory=dict)
    """sae_id -> its Neuronpedia id (model/source)."""

    def folder(self, sae_id: str) -> str:
        """The repo folder holding ``sae_id``; an unknown id is an InputError listing the valid ones."""
        if sae_id not in self.sae_paths:
            hint = did_you_mean(sae_id, self.sae_paths)
            raise InputError(f"SAE id '{sae_id}' is not in release '{self.release}'{hint}; "
                             f"valid ids: {', '.join(self.sae_paths)}")
        return self.sae_paths[sae_id]


def directory_file() -> Path:
    """Path of sae-lens's ``pretrained_saes.yaml`` (located without executing the package)."""
    spec = find_spec("sae_lens")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("sae-lens is not installed; install it with `pip install 'sae-lens>=6.54,<7'`")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained_saes.yaml"


@cache
def _directory_text() -> str:
    return directory_file().read_text()


@cache
def release_names() -> tuple[str, ...]:
    """Every release name in the directory, in file order."""
    return tuple(re.findall(r"^([^\s#][^:\n]*):[ \t]*$", _directory_text(), flags=re.MULTILINE))


def did_you_mean(name: str, valid) -> str:
    """Return " (did you mean X?)" for the closest valid name, or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


@cache
def release_info(release: str) -> ReleaseInfo:
    """Parse one release's block; an unknown release is an InputError listing the valid ones."""
    text = "\n" + _directory_text()
    start = text.find(f"\n{release}:\n")
    if start < 0:
        raise InputError(f"unknown SAE release '{release}'{did_you_mean(release, release_names())}; "
                         f"sae-lens knows: {', '.join(release_names())}")
    body = start + len(release) + 3
    end = re.search(r"^\S", text[body:], flags=re.MULTILINE)
    block = text[start + 1:body + end.start() if end else None]
    entry = yaml.load(block, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))[release]
    saes = entry["saes"]
    return ReleaseInfo(
        release=release,
        repo_id=entry["repo_id"],
        model=entry["model"],
        conversion_func=entry.get("conversion_func"),
        sae_paths={sae["id"]: str(sae["path"]) for sae in saes},
        norm_scaling_factors={sae["id"]: sae["norm_scaling_factor"] for sae in saes if "norm_scaling_factor" in sae},
        neuronpedia={sae["id"]: str(sae["neuronpedia"]) for sae in saes if sae.get("neuronpedia")},
    )
