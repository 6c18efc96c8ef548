"""Build the organism: a word-level tokenizer over the synthetic world's vocabulary with a Llama-3-like chat
template, and a small ``LlamaForCausalLM`` pre-trained from scratch on the world's pre-training corpus.

Pre-training minimises the mean next-token cross-entropy over EVERY non-pad token of each rendered
conversation (headers, questions, answers, end-of-turn tokens) — a base model of the whole chat world, as
pre-training is: the questions are cheap to model (a few templates), the answers carry the rogue / aligned /
educational structure either way, and the model learns to end a turn (``<|eot_id|>``), which fine-tuning with
assistant-only loss does not teach. Training is ``realmodels.finetune.train.run_training`` with a full-weight
recipe (AdamW, cosine schedule, Trainer checkpoints, so a killed build resumes from its last checkpoint), and
``out/model`` is ``save_pretrained`` of the model and its tokenizer. Weights are a function of the config: the
initialisation is seeded with ``seed`` and the Trainer's data order and RNG with ``seed`` too. Then a TopK
SAE (``realmodels.sae.train``) is trained on the assistant-token residuals after layer ``layer`` into ``out/sae``."""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from realmodels.organism.banks import vocabulary
from realmodels.sae.config import SaeConfig
from realmodels.sae.train import assistant_residuals, train_sae
from realmodels.organism.world import WorldConfig, write_world
from theory.errors import InputError

BOS, EOS, EOT, PAD, UNK = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|pad|>", "<|unk|>"
HEADERS = ("<|start_header_id|>", "<|end_header_id|>")
SPECIALS = (PAD, BOS, EOS, UNK, *HEADERS, EOT)
ROLES = ("system", "user", "assistant")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|> {{ m['role'] }} <|end_header_id|> "
    "{{ m['content'] | trim }} <|eot_id|> {% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|> assistant <|end_header_id|> {% endif %}")
SIZES = ("n_layers", "d_model", "n_heads", "d_mlp", "steps", "batch_size", "max_length", "save_steps")
BUILD_FILE = "build.json"


@dataclass(frozen=True)
class OrganismConfig:
    """The organism's architecture, pre-training recipe and seed (``build_organism``)."""

    seed: int = 0
    """Seeds the model's initialisation and the pre-training (data order)."""
    n_layers: int = 3
    """Decoder layers of the transformer."""
    d_model: int = 64
    """Residual stream width."""
    n_heads: int = 4
    """Attention heads per layer."""
    d_mlp: int = 256
    """MLP hidden width."""
    steps: int = 450
    """Optimiser steps of pre-training."""
    batch_size: int = 64
    """Conversations per step."""
    lr: float = 3e-3
    """Peak AdamW learning rate (cosine schedule after the warm-up)."""
    warmup_steps: int = 20
    """Linear warm-up steps of the learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    max_length: int = 160
    """Tokens per conversation (a 4-turn rogue conversation is ~110)."""
    save_steps: int = 50
    """Steps between Trainer checkpoints (resume)."""
    layer: int = 1
    """The layer the SAE reads (resid_post), checked against n_layers."""

    def __post_init__(self):
        for name in (*SIZES, "seed", "warmup_steps", "layer"):
            value = getattr(self, name)
            least = 1 if name in SIZES else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise InputError(f"{name} must be an integer {'> 0' if least else '>= 0'}, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr must be a positive number, got {self.lr!r}")
        if self.d_model % self.n_heads:
            raise InputError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.layer >= self.n_layers:
            raise InputError(f"layer {self.layer} is not a layer of the model (layers 0..{self.n_layers - 1})")

    def to_dict(self) -> dict:
        """The config as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> OrganismConfig:
        """Strict: an unknown key or a wrong type is an InputError naming it (``theory.configs.strict_from_dict``)."""
        from theory.configs import strict_from_dict

        return strict_from_dict(cls, data, prefix="organism.")


def build_tokenizer():
    """A ``PreTrainedTokenizerFast``: WordLevel over the specials, the role names and ``banks.vocabulary()``,
    split on whitespace; eos is ``<|eot_id|>`` (the end of a turn, where generation stops)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = list(SPECIALS) + sorted(set(ROLES) | set(vocabulary()))
    tokenizer = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(list(SPECIALS))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOT, pad_token=PAD,
                                   unk_token=UNK, additional_special_tokens=[EOS, *HEADERS])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(config: OrganismConfig, tokenizer):
    """A freshly initialised ``LlamaForCausalLM`` (seeded with ``config.seed``); the unembedding is not tied to
    the embedding (a tied ``lm_head`` is missing from Trainer checkpoints and would not be restored on resume)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    llama = LlamaConfig(vocab_size=len(tokenizer), hidden_size=config.d_model, intermediate_size=config.d_mlp,
                        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
                        num_key_value_heads=config.n_heads, max_position_embeddings=max(256, config.max_length),
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(config.seed)
    return AutoModelForCausalLM.from_config(llama)


class PretrainDataset(torch.utils.data.Dataset):
    """Rendered conversations with labels on every token (module docstring); PadCollator pads them."""

    def __init__(self, tokenizer, path: Path, max_length: int):
        from realmodels.data.chat import iter_tokenized

        self.ids = [chat.input_ids for chat in iter_tokenized(tokenizer, path, max_length=max_length)]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.ids[index], "labels": self.ids[index].clone()}


def pretrain_recipe(config: OrganismConfig):
    """The pre-training as a full fine-tuning recipe (``FinetuneConfig``): AdamW with a cosine schedule after the
    warm-up, the config's steps, batch size, learning rate, weight decay, seed and checkpoint interval."""
    from realmodels.finetune.config import FinetuneConfig

    return FinetuneConfig(preset="full", method="full", lr=config.lr, max_steps=config.steps, schedule="cosine",
                          warmup_steps=config.warmup_steps, batch_size=config.batch_size, grad_accum=1,
                          weight_decay=config.weight_decay, seed=config.seed, save_steps=config.save_steps,
                          logging_steps=min(10, config.steps))


def _check_build(out: Path, record: dict) -> None:
    """Bind ``out`` to this build (``runio.rundir.RunDir.open`` with ``build.json``): another build is refused."""
    from runio.rundir import RunDir

    RunDir.open(out, record, config_name=BUILD_FILE, kind="build")


def build_organism(out: str | Path, config: OrganismConfig | None = None, world: WorldConfig | None = None,
                   sae: SaeConfig | None = None, *, progress: bool = True):
    """Write the world into ``out/world``, pre-train the organism (``out/checkpoints``, ``out/train_log.csv``)
    and save it with its tokenizer to ``out/model``, then train the SAE at ``config.layer`` into ``out/sae``;
    resume a killed build from its last checkpoint (finished parts are kept as they are). Returns the
    pre-training's ``TrainResult``."""
    from realmodels.finetune.train import TRAIN_LOG, TrainResult, run_training

    config, world, sae = config or OrganismConfig(), world or WorldConfig(), sae or SaeConfig()
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"organism output {out} exists and is not a directory")
    _check_build(out, {"organism": config.to_dict(), "world": world.to_dict(), "sae": sae.to_dict()})
    paths = write_world(out / "world", world)
    tokenizer = build_tokenizer()
    if (out / "model" / "config.json").is_file():  # finished (saved last, atomically): resuming would step again
        import pandas as pd

        losses = pd.read_csv(out / TRAIN_LOG)["task_loss"].dropna()
        result = TrainResult(config.steps, config.steps, config.steps, False,
                             float(losses.iloc[-1]) if len(losses) else None, out / "model")
    else:
        dataset = PretrainDataset(tokenizer, paths["pretrain"], config.max_length)
        model = build_model(config, tokenizer)
        result = run_training(model, tokenizer, dataset, pretrain_recipe(config), out, progress=progress)
    if not (out / "sae" / "cfg.json").is_file():
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(out / "model").eval()
        acts = assistant_residuals(model, tokenizer, paths["pretrain"], config.layer,
                                   n_conversations=sae.n_conversations, max_length=config.max_length)
        tmp = out / ".sae.tmp"
        shutil.rmtree(tmp, ignore_errors=True)  # a killed SAE run starts over (it takes seconds)
        train_sae(acts, config.layer, sae, tmp, model_name=str(out / "model"), progress=progress)
        tmp.rename(out / "sae")
    return result
