"""A TopK (or JumpReLU) SAE trained with sae-lens's own ``SAETrainer`` on the residual stream after one decoder layer
(``blocks.L.hook_resid_post``) of any loaded causal LM, over the assistant tokens of chat conversations, and
saved with ``SAE.save_model`` so ``--sae DIR`` loads it like any saved sae-lens SAE (``realmodels sae train``
through ``realmodels.experiments.sae.run_sae_train``; the organism's SAE, trained on its pre-training corpus, is
one use: ``realmodels.organism.build``).

The SAE reconstructs x̂ = W_decᵀ topk_k(W_enc (x − b_dec) + b_enc) + b_dec, minimising ‖x − x̂‖² (plus sae-lens's
auxiliary loss reviving dead latents); ``architecture="jumprelu"`` replaces topk_k by JumpReLU (a learned threshold
per latent, straight-through gradients) and adds Gemma Scope 2's penalty λ · (2/k)(L0 − k)² around the target L0 k
(λ = ``l0_coefficient``); b_dec starts at the mean activation (the activations are centred at the
start, which keeps latents from collapsing onto the mean direction). Batches are drawn with replacement from the
cached activations by a generator seeded with ``seed``, and the SAE's initialisation is seeded too, so the SAE
is a function of (model, corpus, config)."""

from __future__ import annotations

import contextlib

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from realmodels.sae.config import SaeConfig


@torch.inference_mode()
def chat_residuals(model, chats: list, layer: int, pad_id: int, *, batch_size: int = 64) -> Tensor:
    """``acts`` (n_tokens, d_model): residuals after decoder layer ``layer`` at every assistant token of the
    tokenised ``chats`` (``realmodels.data.chat.TokenizedChat``), float32, in order."""
    from realmodels.data.activations import pad_right
    from realmodels.data.residual import residual_stream

    parts = []
    for start in range(0, len(chats), batch_size):
        input_ids, attention_mask, assistant_mask = pad_right(chats[start:start + batch_size], pad_id)
        resid = residual_stream(model, input_ids, attention_mask, layer)
        parts.append(resid[assistant_mask.to(resid.device)].float().cpu())
    return torch.cat(parts)


def assistant_residuals(model, tokenizer, path: Path, layer: int, *, n_conversations: int, max_length: int,
                        batch_size: int = 64) -> Tensor:
    """``chat_residuals`` of the first ``n_conversations`` conversations of the chat JSONL file ``path``."""
    from itertools import islice

    from realmodels.data.chat import iter_tokenized

    chats = list(islice(iter_tokenized(tokenizer, path, max_length=max_length), n_conversations))
    return chat_residuals(model, chats, layer, tokenizer.pad_token_id, batch_size=batch_size)


@torch.inference_mode()
def sae_quality_on(sae, acts: Tensor, *, chunk: int = 4096) -> dict:
    """``theory.reconstruction.sae_quality`` of ``sae`` (a sae-lens SAE) on the activations ``acts`` (n, d_in)."""
    from theory.reconstruction import sae_quality

    codes = torch.cat([sae.encode(acts[i:i + chunk]) for i in range(0, len(acts), chunk)])
    x_hat = torch.cat([sae.decode(codes[i:i + chunk]) for i in range(0, len(codes), chunk)])
    return sae_quality(acts, x_hat, codes)


def batches(acts: Tensor, batch_size: int, seed: int) -> Iterator[Tensor]:
    """Endless batches of ``batch_size`` rows of ``acts`` drawn uniformly with replacement, seeded by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield acts[torch.randint(len(acts), (batch_size,), generator=generator)]


def train_sae(acts: Tensor, layer: int, config: SaeConfig, out: str | Path, *, model_name: str = "organism",
              progress: bool = True):
    """Train the SAE of ``config`` (TopK or JumpReLU) on ``acts`` (n, d_in) with ``SAETrainer`` and save it to ``out`` (``SAE.save_model``);
    returns the trained SAE. ``progress=False`` silences the trainer's tqdm bar (``SAETrainer`` has no option
    for it, so its module's ``tqdm`` is replaced by a disabled one while it runs)."""
    import functools
    import warnings
    from unittest import mock

    import sae_lens.training.sae_trainer as trainer_module

    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(config.seed)
    metadata = SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_post", model_name=model_name)
    if config.architecture == "jumprelu":
        from sae_lens import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig

        sae = JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(
            d_in=acts.shape[1], d_sae=config.d_sae, jumprelu_sparsity_loss_mode="quadratic", target_l0=config.k,
            l0_coefficient=config.l0_coefficient, metadata=metadata))
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=acts.shape[1], d_sae=config.d_sae, k=config.k,
                                                    metadata=metadata))
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0))
    trainer_cfg = SAETrainerConfig(total_training_samples=config.steps * config.batch_size,
                                   train_batch_size_samples=config.batch_size, lr=config.lr, lr_end=config.lr,
                                   lr_scheduler_name="constant", device="cpu")
    quiet = mock.patch.object(trainer_module, "tqdm", functools.partial(trainer_module.tqdm, disable=True))
    with warnings.catch_warnings(), quiet if not progress else contextlib.nullcontext():
        warnings.simplefilter("ignore")
        trainer = SAETrainer(trainer_cfg, sae, batches(acts, config.batch_size, config.seed))
        sae = trainer.fit()
    sae.save_model(Path(out))
    return sae
