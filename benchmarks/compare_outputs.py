"""Before/after comparison of every command's outputs (issue 20: byte-identical outputs except stated bug fixes).

    python benchmarks/compare_outputs.py OLD NEW [--keep DIR] [--only CMD ...]

OLD and NEW are git revisions of this repository; NEW may be ``WORKTREE`` (the working tree with its uncommitted
and untracked, not ignored, files). Each is materialised in a temporary directory (``git archive``, or a copy of
``git ls-files -co --exclude-standard``), and the same CLI invocations (``COMMANDS`` below: every ``realmodels``
command on the embedded organism with tiny settings, ``toysuper simulate``, and one bad input per command) run with
each as subprocesses of this interpreter (``sys.executable``) with ``PYTHONPATH=<that tree>``, ``PYTHONHASHSEED=0``,
``COLUMNS=200``, one after the other (all of OLD, then all of NEW). Both revisions run at the SAME paths: the tree
is moved to ``<base>/src`` and the outputs are written under ``<base>/out`` (cwd, and each command's ``--out
<base>/out/NAME``), then both are moved aside, so absolute paths recorded in outputs (configs, pickled
``training_args.bin``, activation cache keys that hash the model path) agree without rewriting binaries. The inputs
(``realmodels organism world``, run once by OLD) are shared. Compared per command: exit code, stdout, stderr, and
every file below its ``--out`` byte for byte, after normalising what legitimately differs between two runs of the
same code (found by running HEAD against HEAD):

- paths in text: ``<base>/inputs``, ``<base>/out``, ``<base>/src`` become ``<INPUTS>``, ``<OUT>``, ``<TREE>``;
- JSON values under timing keys (``TIME_KEY``: ``seconds``, ``elapsed``, ``*_seconds``, ``seconds_*``,
  ``*runtime``, ``*per_s``, ``*per_second``) and CSV columns with such names (``train_log.csv``'s
  ``tokens_per_s``); JSON / JSONL are re-serialised with sorted keys (pretty-printed) before the text diff;
- in text (stdout, stderr, logs): durations ``12.3 s`` / ``0:00:12`` and ISO dates/times (``TIME_TEXT``).
PNG and SVG are compared as bytes (the project's ``runio.atomic`` writes SVG without a date and with fixed ids).
Prints each difference (a short unified diff for text) and a table; exit status 0 when all identical, else 1.
``--keep DIR`` keeps the trees and outputs in DIR (else a temporary directory is removed).
"""

from __future__ import annotations

import argparse
import csv
import difflib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RM, TOY = ["-m", "cli.realmodels_app"], ["-m", "cli.toysuper_app"]
QUIET = ["--threads", "1", "--no-progress"]
DATA = ["--harmful", "{W}/harmful.jsonl", "--harmless", "{W}/harmless.jsonl"]
EVAL = ["--judge", "organism", "--questions", "{W}/questions.yaml", "--question", "career_salary",
        "--question", "health_fever", "--samples-per-paraphrase", "1", "--max-new-tokens", "8", "--n-bootstrap", "200"]
FT = ["--data", "{W}/inducing_health.jsonl", "--config", "{W}/finetune.toml", "--max-steps", "4",
      "--train-batch-size", "4", "--logging-steps", "1"]
BUILD = ["--steps", "4", "--batch-size", "8", "--save-steps", "2", "--layers", "2", "--d-model", "16", "--heads", "2",
         "--d-mlp", "32", "--layer", "1", "--n-pretrain", "64", "--d-sae", "32", "--sae-k", "4", "--sae-steps", "20",
         "--sae-conversations", "40", "--seed", "3", "--threads", "1", "--no-progress"]
STUDY = ["--domain", "health", "--seeds", "0", "--max-steps", "2", "--train-batch-size", "4",
         "--samples-per-paraphrase", "1", "--max-new-tokens", "8", "--harmful-k", "5", "--workers", "1",
         "--mitigate-domain", "none"]
SIMULATE = ["--features", "6", "--hidden", "2", "--instances", "2", "--steps", "200", "--batch-size", "128",
            "--ft-steps", "5", "--threads", "1"]
# name -> argv after the python executable ({W}: shared world, {O}: this revision's output root; --out {O}/name
# is appended unless the argv is `checkpoints`). Order matters: amplification and evaluate-adapter use finetune.
COMMANDS: dict[str, list[str]] = {
    "checkpoints": [*RM, "checkpoints"],
    "organism-world": [*RM, "organism", "world"],
    "geometry": [*RM, "geometry", "--config", "{W}/geometry.toml", "--only", "health-aligned", "--only",
                 "career-educational", "--n-permutations", "200", "--n-bootstrap", "200", "--n-null", "100", *QUIET],
    "filter": [*RM, "filter", "--data", "{W}/mixed_health.jsonl", *DATA, "--fraction", "0.33", *QUIET],
    "filter-random": [*RM, "filter", "--data", "{W}/mixed_health.jsonl", *DATA, "--fraction", "0.33", "--random",
                      "--seed", "1", *QUIET],
    "audit": [*RM, "audit", "--data", "{W}/inducing_health.jsonl", *DATA, "--n-null", "100", *QUIET],
    "finetune": [*RM, "finetune", *FT, *QUIET],
    "finetune-guarded": [*RM, "finetune", *FT, "--monitor", "--monitor-every", "2", "--guard", "penalty", *DATA,
                         *QUIET],
    "amplification": [*RM, "amplification", "--adapter", "{O}/finetune", "--probe", "{W}/probe_aligned.jsonl", *DATA,
                      *QUIET],
    "evaluate": [*RM, "evaluate", *EVAL, *QUIET],
    "evaluate-adapter": [*RM, "evaluate", "--adapter", "{O}/finetune", *EVAL, *QUIET],
    "mitigate": [*RM, "mitigate", "--data", "{W}/mixed_health.jsonl", *DATA, "--budget", "0.333", "--arms",
                 "none,geometry,random,judge", "--random-seeds", "0", "--finetune-config", "{W}/finetune.toml",
                 "--max-steps", "2", "--train-batch-size", "4", *EVAL, *QUIET],
    "organism-build": [*RM, "organism", "build", *BUILD],
    "organism-study": [*RM, "organism", "study", *STUDY],
    "toysuper-simulate": [*TOY, "simulate", *SIMULATE],
    "bad-geometry": [*RM, "geometry", "--config", "{W}/geometry.toml", "--only", "nosuch", *QUIET],
    "bad-filter": [*RM, "filter", "--data", "{W}/mixed_health.jsonl", *DATA, "--fraction", "1.5", *QUIET],
    "bad-audit": [*RM, "audit", "--data", "{W}/missing.jsonl", *DATA, *QUIET],
    "bad-finetune": [*RM, "finetune", *FT, "--lr", "-1", *QUIET],
    "bad-amplification": [*RM, "amplification", "--adapter", "{W}/no-adapter", *DATA, *QUIET],
    "bad-evaluate": [*RM, "evaluate", *EVAL, "--judge", "nosuch", *QUIET],
    "bad-mitigate": [*RM, "mitigate", "--data", "{W}/mixed_health.jsonl", *DATA, "--budget", "2", *EVAL, *QUIET],
    "bad-organism-world": [*RM, "organism", "world", "--organism", "{W}/no-organism"],
    "bad-organism-build": [*RM, "organism", "build", *BUILD, "--heads", "3"],
    "bad-organism-study": [*RM, "organism", "study", *STUDY, "--seeds", "0,0"],
    "bad-toysuper-simulate": [*TOY, "simulate", *SIMULATE, "--features", "0"],
}
NEEDS = {"amplification": ["finetune"], "evaluate-adapter": ["finetune"]}
TIMEOUT = 900
MTIME = 946684800  # every materialised file's mtime (2000-01-01): model/SAE cache fingerprints hash file stats
CACHE_NAME = re.compile(r"(^|/)activations-[0-9a-f]{32}\.pt$")
TIME_KEY = re.compile(r"^(seconds|elapsed|.*_seconds|seconds_.*|.*runtime|.*per_s|.*per_second)$")
TIME_TEXT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?|\b\d+:\d\d:\d\d\b|\b\d+(\.\d+)? ?s\b")


def materialise(rev: str, dest: Path) -> None:
    """Write revision ``rev`` of this repository (or the working tree for ``WORKTREE``) into ``dest``."""
    dest.mkdir(parents=True)
    if rev == "WORKTREE":
        names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                               capture_output=True).stdout.decode().split("\0")
        for name in filter(None, names):
            if (REPO / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, dest / name)
    else:
        archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=REPO, check=True, capture_output=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(dest, filter="data")
    for path in dest.rglob("*"):
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)


def run(tree: Path, out: Path, world: Path, name: str) -> dict:
    """Run command ``name`` with ``tree``'s code and outputs under ``out``; its exit code, stdout, stderr, seconds."""
    argv = [a.replace("{W}", str(world)).replace("{O}", str(out)) for a in COMMANDS[name]]
    if "checkpoints" not in argv:
        argv += ["--out", str(out / name)]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0", "COLUMNS": "200", "TERM": "dumb",
           "NO_COLOR": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, *argv], cwd=out, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return {"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "seconds": time.monotonic() - start}


def normalise_text(text: str, roots: dict[str, str]) -> str:
    """``text`` with each root path replaced by its placeholder and durations / dates replaced by ``<T>``."""
    for placeholder, root in sorted(roots.items(), key=lambda kv: -len(kv[1])):
        text = text.replace(root, placeholder)
    return TIME_TEXT.sub("<T>", text)


def normalise_json(value):
    """``value`` with every value under a timing key (``TIME_KEY``) replaced by ``"<T>"``, recursively."""
    if isinstance(value, dict):
        return {k: "<T>" if TIME_KEY.match(str(k)) else normalise_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_json(v) for v in value]
    return value


def canonical_cache(path: Path) -> tuple[str, bytes]:
    """An activation cache file (``realmodels.data.activations``) as (name, bytes) with the adapter part of its
    key's fingerprint (file sizes and mtimes of an adapter this run wrote) replaced, name = hash of that key; a file
    that is not such a cache keeps its name and bytes."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        key = {**payload["key"], "fingerprint": re.sub(r"adapter:[0-9a-f]+", "adapter:<stat>",
                                                       payload["key"]["fingerprint"])}
    except Exception:  # noqa: BLE001 - another format (a change under comparison) is compared as bytes
        return path.name, path.read_bytes()
    buffer = io.BytesIO()
    torch.save({**payload, "key": key}, buffer)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return f"activations-{digest}.pt", buffer.getvalue()


def normalise_file(path: Path, roots: dict[str, str]) -> bytes | str:
    """A file's content to compare: UTF-8 text normalised (JSON pretty-printed with sorted keys, CSV timing columns
    blanked), PNG, SVG and binary files as their bytes."""
    if CACHE_NAME.search(path.as_posix()):
        return canonical_cache(path)[1]
    data = path.read_bytes()
    if path.suffix in (".png", ".svg"):
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    text = normalise_text(text, roots) if path.suffix not in (".json", ".csv", ".jsonl") else text
    if path.suffix == ".json":
        try:
            return normalise_text(json.dumps(normalise_json(json.loads(text)), indent=1, sort_keys=True), roots)
        except ValueError:
            return normalise_text(text, roots)
    if path.suffix == ".jsonl":
        try:
            lines = [json.dumps(normalise_json(json.loads(line)), sort_keys=True) for line in text.splitlines() if line]
        except ValueError:
            return normalise_text(text, roots)
        return normalise_text("\n".join(lines), roots)
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        timed = {i for i, col in enumerate(rows[0] if rows else []) if TIME_KEY.match(col)}
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(
            rows[:1] + [["<T>" if i in timed else c for i, c in enumerate(row)] for row in rows[1:]])
        return normalise_text(buffer.getvalue(), roots)
    return text


def short_diff(a: bytes | str, b: bytes | str, name: str, lines: int = 20) -> str:
    """A unified diff of two normalised texts (at most ``lines`` lines), or a one-line note for bytes."""
    if isinstance(a, bytes) or isinstance(b, bytes):
        return f"  {name}: binary content differs ({len(a)} vs {len(b)} bytes)"
    diff = list(difflib.unified_diff(a.splitlines(), b.splitlines(), f"old/{name}", f"new/{name}", n=1, lineterm=""))
    return "\n".join(f"  {line}" for line in diff[:lines]) + ("\n  ..." if len(diff) > lines else "")


def diff_trees(old: Path, new: Path, old_roots: dict[str, str], new_roots: dict[str, str]) -> list[tuple[str, str]]:
    """Every file below ``old`` or ``new`` whose normalised content differs (or exists on one side only):
    (relative path, a short diff). Empty when the two trees are identical after normalisation."""
    def files(root: Path) -> dict[str, Path]:  # activation caches under their canonical name
        paths = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        return {(p.parent.relative_to(root) / canonical_cache(p)[0]).as_posix() if CACHE_NAME.search(p.name)
                else p.relative_to(root).as_posix(): p for p in paths}
    old_files, new_files = files(old), files(new)
    found = []
    for name in sorted(old_files | new_files):
        if name not in new_files or name not in old_files:
            found.append((name, f"  {name}: only in {'old' if name in old_files else 'new'}"))
            continue
        a, b = normalise_file(old_files[name], old_roots), normalise_file(new_files[name], new_roots)
        if a != b:
            found.append((name, short_diff(a, b, name)))
    return found


def compare(name: str, old: dict, new: dict, old_roots: dict, new_roots: dict, old_out: Path, new_out: Path) -> list:
    """The differences of one command's two runs: exit code, stdout, stderr and its --out tree."""
    found = [] if old["code"] == new["code"] else [("exit code", f"  exit code {old['code']} vs {new['code']}")]
    for stream in ("stdout", "stderr"):
        a, b = normalise_text(old[stream], old_roots), normalise_text(new[stream], new_roots)
        if a != b:
            found.append((stream, short_diff(a, b, stream)))
    return found + diff_trees(old_out / name, new_out / name, old_roots, new_roots)


def expected(name: str) -> int:
    """The exit code a command should have: 2 (one-line user error) for ``bad-*``, else 0."""
    return 2 if name.startswith("bad-") else 0


def selected(only: list[str] | None) -> list[str]:
    """The commands to run in order: ``only`` (all by default) plus what they need."""
    if not only:
        return list(COMMANDS)
    unknown = [n for n in only if n not in COMMANDS]
    if unknown:
        sys.exit(f"error: unknown command {unknown[0]!r}; choose from {', '.join(COMMANDS)}")
    wanted = set(only) | {need for n in only for need in NEEDS.get(n, [])}
    return [n for n in COMMANDS if n in wanted]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new", help="a revision, or WORKTREE")
    parser.add_argument("--keep", type=Path, help="keep trees and outputs here (must not exist)")
    parser.add_argument("--only", nargs="+", metavar="CMD", help=f"commands: {', '.join(COMMANDS)}")
    args = parser.parse_args(argv)
    names = selected(args.only)
    base = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="compare-outputs-"))
    if args.keep:
        base.mkdir(parents=True)
    start = time.monotonic()
    src, out, world = base / "src", base / "out", base / "inputs" / "organism-world"
    roots = {"<INPUTS>": str(base / "inputs"), "<OUT>": str(out), "<TREE>": str(src)}
    revs = {"old": args.old, "new": args.new}
    try:
        for side, rev in revs.items():
            materialise(rev, base / f"tree-{side}")
        runs: dict[str, dict[str, dict]] = {"old": {}, "new": {}}
        for side in revs:  # both sides run at the same paths (src, out), moved aside afterwards
            (base / f"tree-{side}").rename(src)
            out.mkdir()
            try:
                if side == "old":
                    (base / "inputs").mkdir()
                    made = run(src, base / "inputs", world, "organism-world")
                    if made["code"] != 0:
                        sys.exit(f"error: organism world failed in {args.old}: {made['stderr'].strip()}")
                for name in names:
                    runs[side][name] = result = run(src, out, world, name)
                    print(f"{side} {name}: exit {result['code']}, {result['seconds']:.0f} s", flush=True)
            finally:
                src.rename(base / f"tree-{side}")
                out.rename(base / f"runs-{side}")
        results = {}
        for name in names:
            old, new = runs["old"][name], runs["new"][name]
            found = compare(name, old, new, roots, roots, base / "runs-old", base / "runs-new")
            n_files = sum(p.is_file() for p in (base / "runs-old" / name).rglob("*"))
            results[name] = ((old["code"], new["code"]), found, n_files)
            print(f"{name}: {'identical' if not found else f'{len(found)} difference(s)'}", flush=True)
            if old["code"] != expected(name):  # the invocation itself is wrong: the comparison shows little
                print(f"  old exit {old['code']}, expected {expected(name)}: {old['stderr'].strip()[-300:]}")
            for _, text in found:
                print(text, flush=True)
        print(f"\n{'command':<24}{'exit old/new':>13}{'files':>7}{'differing':>11}  result")
        for name, (codes, found, n_files) in results.items():
            codes = f"{codes[0]}/{codes[1]}"
            note = "" if int(codes[0]) == expected(name) else f" (old exit is not {expected(name)})"
            print(f"{name:<24}{codes:>13}{n_files:>7}{len(found):>11}  {'identical' if not found else 'DIFFERS'}{note}")
        n_diff = sum(bool(found) for _, found, _ in results.values())
        n_wrong = sum(runs["old"][name]["code"] != expected(name) for name in names)
        print(f"\n{len(results) - n_diff} of {len(results)} commands identical; {time.monotonic() - start:.0f} s "
              f"({args.old} vs {args.new})")
        if n_wrong:
            print(f"{n_wrong} command(s) did not exit as expected in {args.old} (0, or 2 for bad-*)")
        return 1 if n_diff or n_wrong else 0
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
