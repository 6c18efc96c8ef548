"""SAEs the toolkit trains: ``train`` (a TopK SAE trained with sae-lens's ``SAETrainer`` on a model's residual
stream at one layer, saved with ``SAE.save_model`` so ``--sae DIR`` loads it; the organism's SAE is one use) and
its held-out quality (``theory.reconstruction``: FVU, L0, dead latents)."""
