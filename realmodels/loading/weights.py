"""Weight files checked before anything loads them, so a damaged file (truncated, empty, random bytes, a pickle
payload where tensors are expected) is one InputError naming it instead of a traceback halfway into a run.

- ``safetensors_shapes``: a ``.safetensors`` file's header, parsed by ``safetensors.safe_open`` (framework
  "numpy": no torch import), which checks the header's JSON and that the tensors' byte ranges cover the file
  exactly — a truncated or padded file fails. Returns {tensor name: shape}; reads no tensor data.
- ``check_torch_file``: a ``.bin`` / ``.pt`` file loaded the way transformers and peft load it
  (``torch.load(weights_only=True)``, memory-mapped when the file is a zip archive); a pickle that is not plain
  tensors, or a damaged archive, is refused naming the file.
- ``loading``: a context that turns the errors a loader raises on a damaged file into one InputError naming it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from theory.errors import InputError, first_line


def safetensors_shapes(path: str | Path, what: str = "weights file") -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of a safetensors file whose header and length are consistent (module docstring)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(path, framework="numpy") as weights:
            return {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"{what} {path} is damaged (not a readable safetensors file: {first_line(exc)})") from None


def check_torch_file(path: str | Path, what: str = "weights file") -> None:
    """Load ``path`` with ``torch.load(weights_only=True)`` (memory-mapped: no tensor data is read); a pickle
    payload or a damaged archive is an InputError naming the file."""
    import pickle
    import warnings
    import zipfile

    import torch

    path = Path(path)
    mmap = zipfile.is_zipfile(path)  # torch.save's archive format; legacy files cannot be memory-mapped
    try:
        with warnings.catch_warnings():  # torch warns about a pickle protocol before refusing the pickle
            warnings.simplefilter("ignore")
            torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        raise InputError(f"{what} {path} is not plain tensors (a pickle of other objects, which torch.load with "
                         "weights_only refuses); use a file saved by save_pretrained") from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, TypeError,
            IndexError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(f"{what} {path} is damaged or not plain tensors (torch.load with weights_only refuses it: "
                         f"{first_line(exc)})") from None


def check_weight_file(path: str | Path, what: str = "weights file") -> None:
    """``safetensors_shapes`` for a ``.safetensors`` file, else ``check_torch_file``."""
    if Path(path).suffix == ".safetensors":
        safetensors_shapes(path, what)
    else:
        check_torch_file(path, what)


@contextmanager
def loading(what: str, path: str | Path):
    """Run a loader: the errors a damaged weight or config file makes it raise (safetensors', pickle's, torch's,
    a value or key it cannot use) become one InputError "could not load <what> from <path>: <first line>"."""
    import pickle

    from safetensors import SafetensorError

    try:
        yield
    except InputError:
        raise
    except (SafetensorError, pickle.UnpicklingError, OSError, ValueError, KeyError, RuntimeError, EOFError) as exc:
        raise InputError(f"could not load {what} from {path}: {first_line(exc)}") from None


def check_model_weights(directory: str | Path) -> None:
    """Check a saved HF model directory's weight files: every ``*.safetensors`` (``safetensors_shapes``), else
    every ``*.bin`` that is a torch zip archive (memory-mapped, so cheap; a legacy pickle file is left to the
    wrapped load, ``loading``)."""
    import zipfile

    directory = Path(directory)
    safetensors = sorted(directory.glob("*.safetensors"))
    for file in safetensors:
        safetensors_shapes(file, "model weights")
    if not safetensors:
        for file in sorted(directory.glob("*.bin")):
            if zipfile.is_zipfile(file) or file.stat().st_size < 1 << 20:
                check_torch_file(file, "model weights")
