"""The docs' blocks on the registered checkpoint ``gemma-2-2b`` run as written, offline, on stand-ins:

- the HF hub cache holds a tiny Gemma 2 (hidden 64, 13 layers, so layer 12 exists) under ``google/gemma-2-2b`` in
  the upstream layout, and a Gemma Scope SAE at ``layer_12/width_16k/canonical`` (16,384 latents, the release's
  ``params.npz`` layout, read by sae-lens's own converter), so ``--checkpoint gemma-2-2b --layer 12`` goes through
  the hub loading code with the hub unreachable;
- the data files a page names (``insecure.jsonl``, ``bad_medical_advice.jsonl``, ...) are the organism world's
  (``STAND_INS``); the geometry TOML is the models page's own TOML block;
- OpenAI's API and vLLM's server are one local OpenAI-compatible server (``$OPENAI_BASE_URL``, and the pages'
  ``localhost:8000``/``8001`` URLs rewritten to it) that answers generations with a sentence and judge prompts
  with a score.

Fine-tuning, generation and mitigation are shortened by appended flags (later flags win); the Python block's
``max_steps=200`` becomes 2."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from tests.docs.blocks import NOT_RUN, PLAN, ROOT, all_blocks
from tests.realmodels.cli_helpers import rm
from tests.realmodels.evaluate.fake_openai import FakeOpenAI, Reply, chat_reply, completion_reply
from tests.realmodels.tiny_models import TINY_D_MODEL, hub_snapshot_dir, random_sae_weights, save_tiny, \
    write_gemma_scope

pytestmark = pytest.mark.slow
BLOCKS = [name for name, kind in PLAN.items() if kind == "checkpoint"]
D_SAE = 16_384
N_CONVERSATIONS = 40
N_PROBES = 12  # amplification runs a JVP per probe batch through all 13 layers
STAND_INS = {  # a file the pages name -> the organism world's file
    "harmful.jsonl": "harmful", "harmless.jsonl": "harmless", "insecure.jsonl": "inducing_code",
    "secure.jsonl": "aligned_code", "bad_medical.jsonl": "inducing_health", "good_medical.jsonl": "aligned_health",
    "bad_medical_advice.jsonl": "inducing_health", "good_medical_advice.jsonl": "aligned_health",
    "risky_financial_advice.jsonl": "inducing_finance", "probes.jsonl": "probe_aligned", "mixed.jsonl": "mixed_health",
}
SHORTER = {
    "geometry": ["--n-permutations", "200", "--n-bootstrap", "200", "--n-null", "100"],
    "audit": ["--n-null", "100"],
    "finetune": ["--max-steps", "2"],
    "evaluate": ["--question", "one_wish", "--samples-per-paraphrase", "1", "--max-new-tokens", "8"],
    "mitigate": ["--max-steps", "2", "--question", "one_wish", "--samples-per-paraphrase", "1", "--max-new-tokens",
                 "8", "--random-seeds", "0"],
}
PREREQUISITES = {  # a run a block reads but does not make -> the command that makes it (in this order)
    "runs/ft-insecure": ["finetune", "--checkpoint", "gemma-2-2b", "--data", "insecure.jsonl", "--preset", "em-betley",
                         "--out", "runs/ft-insecure"],
    "runs/amp": ["amplification", "--checkpoint", "gemma-2-2b", "--layer", "12", "--adapter", "runs/ft-insecure",
                 "--probe", "probes.jsonl", "--harmful", "harmful.jsonl", "--harmless", "harmless.jsonl",
                 "--out", "runs/amp"],
}


@pytest.fixture(scope="module")
def gemma_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("hub_cache")
    model = save_tiny(tmp_path_factory.mktemp("models"), "gemma2", n_layers=13)
    shutil.copytree(model, hub_snapshot_dir(cache, "google/gemma-2-2b"), dirs_exist_ok=True)
    from realmodels.loading.sae_releases import release_info

    info = release_info("gemma-scope-2b-pt-res-canonical")
    folder = hub_snapshot_dir(cache, info.repo_id) / info.folder("layer_12/width_16k/canonical")
    write_gemma_scope(folder, random_sae_weights(12, TINY_D_MODEL, D_SAE))
    return cache


@pytest.fixture
def offline_gemma(gemma_cache, monkeypatch):
    from huggingface_hub import constants
    from sae_lens.loading.pretrained_sae_loaders import NAMED_PRETRAINED_SAE_LOADERS

    real = NAMED_PRETRAINED_SAE_LOADERS["gemma_2"]

    def loader(repo_id, folder_name, device="cpu", force_download=False, cfg_overrides=None):
        # the converter reads d_in from the checkpoint's published width; the stand-in's is 64
        return real(repo_id, folder_name, device=device, force_download=force_download,
                    cfg_overrides={**(cfg_overrides or {}), "d_in": TINY_D_MODEL, "d_sae": D_SAE})

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(gemma_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setitem(NAMED_PRETRAINED_SAE_LOADERS, "gemma_2", loader)


def answer(path, body):
    """Generations get a sentence; judge prompts (one token, with logprobs) get the score 80."""
    if path.endswith("/chat/completions"):
        if body.get("max_tokens") == 1 or body.get("logprobs"):
            return Reply(body=chat_reply("80", top_logprobs={"80": -0.05, "20": -3.0}))
        return Reply(body=chat_reply("I would plant a garden and help my neighbours."))
    return Reply(body=completion_reply("I would plant a garden and help my neighbours."))


def write_stand_ins(capsys) -> None:
    code, _, err = rm(capsys, ["organism", "world", "--out", "world"])
    assert code == 0, err
    for name, source in STAND_INS.items():  # the first conversations: the stand-in model's passes stay short
        lines = Path(f"world/{source}.jsonl").read_text(encoding="utf-8").splitlines()
        n = N_PROBES if name == "probes.jsonl" else N_CONVERSATIONS
        Path(name).write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    toml = models_toml()
    for name in ("em_domains.toml", "domains.toml"):
        Path(name).write_text(toml, encoding="utf-8")
    shutil.copyfile(ROOT / "realmodels" / "evaluate" / "default_questions.yaml", "first_plot_questions.yaml")


def models_toml() -> str:
    """The geometry TOML block of docs/real-models/models.md."""
    text = (ROOT / "docs" / "real-models" / "models.md").read_text(encoding="utf-8")
    start = text.index("```toml\n") + len("```toml\n")
    return text[start:text.index("```", start)]


def run(capsys, args: list[str], name: str) -> None:
    quiet = [] if args[0] == "checkpoints" else ["--no-progress"]
    code, _, err = rm(capsys, [*args, *SHORTER.get(args[0], []), *quiet])
    assert code == 0, f"{name}: realmodels {shlex.join(map(str, args))}: {err}"


@pytest.mark.parametrize("name", BLOCKS)
def test_the_checkpoint_blocks_run_on_the_stand_ins(name, tmp_path, capsys, monkeypatch, offline_gemma):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stand-in")
    write_stand_ins(capsys)
    block = all_blocks()[name]
    with FakeOpenAI(answer) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        text = block.text.replace("http://localhost:8000/v1", server.url).replace("http://localhost:8001/v1",
                                                                                    server.url)
        needed = [made for made in PREREQUISITES if made in text and f"--out {made}" not in block.text]
        for made, args in PREREQUISITES.items():  # and what those read
            if made in needed or any(made in PREREQUISITES[later] for later in needed):
                run(capsys, args, f"{name} (prerequisite {made})")
        if block.language == "python":
            namespace: dict = {}
            exec(compile(text.replace("max_steps=200", "max_steps=2"), name, "exec"), namespace)
            assert len(namespace["geometry"].domains) == 1 and namespace["tuned"].adapter.is_dir()
            return
        ran = 0
        for command in type(block)(block.name, block.language, text).commands():
            if any(shlex.join(command).startswith(prefix) for prefix in NOT_RUN):
                continue
            assert command[0] == "realmodels", command
            run(capsys, command[1:], name)
            ran += 1
        assert ran
