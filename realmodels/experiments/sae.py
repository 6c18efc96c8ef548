"""``run_sae_train``: train a TopK or JumpReLU SAE on any model's residual stream at one layer (``realmodels.sae.train``:
sae-lens's ``SAETrainer``), on the assistant tokens of chat datasets and on every token of plain text
(``realmodels.data.corpus``: text files, or ``python-docs``, the documentation every Python installation ships,
in windows of ``window`` tokens), and report its quality on held-out units (``theory.reconstruction``: FVU, L0,
dead latents). The SAE is saved with ``SAE.save_model`` in ``<out>/sae``, so every command takes it as
``--sae <out>/sae --layer L``.

The units (conversations of every chat dataset, then windows of every text, in the order given) are split once
by a permutation seeded with ``config.seed``: the first ``heldout`` share is held out (never trained on), the
first ``config.n_conversations`` of the rest train the SAE. The summary counts each source's units and its
tokens the SAE reads (a conversation's assistant tokens, a window's tokens but the first).

Example (the embedded organism's model, a new SAE at layer 1)::

    from realmodels.experiments import RunOptions
    from realmodels.experiments.sae import run_sae_train
    from realmodels.sae.config import SaeConfig

    result = run_sae_train("world/pretrain.jsonl", layer=1, config=SaeConfig(d_sae=128, k=8, steps=300),
                           options=RunOptions(out="runs/sae"))
    result.summary["heldout"]  # {"fvu": ..., "l0": ..., "dead_fraction": ..., "n_tokens": ...}
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from realmodels.data.corpus import CORPORA, WINDOW, TextCorpus
from realmodels.data.dataset import Dataset, Datasets
from realmodels.experiments.result import RunResult
from realmodels.experiments.run import SUMMARY, Log, finished_summary, resolved
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.sae.config import SaeConfig
from runio.atomic import write_json
from runio.console import console
from runio.jobs import set_threads
from theory.errors import ParamError


Chat = Dataset | str | Path
ARCH_NAMES = {"topk": "TopK", "jumprelu": "JumpReLU"}


class SaeResult(RunResult):
    """The summary holds the SAE's held-out and training-token quality; ``sae`` is the saved SAE directory."""

    @property
    def sae(self) -> Path:
        """The trained SAE's directory (``sae/``)."""
        return self.path / "sae"


def split(n: int, heldout: float, seed: int) -> tuple[list[int], list[int]]:
    """(training, held-out) conversation indices: a permutation seeded with ``seed``, its first ⌈heldout·n⌉
    held out."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n).tolist()
    cut = math.ceil(heldout * n)
    return order[cut:], sorted(order[:cut])


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def run_sae_train(data: Chat | list[Chat] | None, layer: int, config: SaeConfig = SaeConfig(), *,
                  text: str | Path | list[str | Path] = (), window: int = WINDOW, heldout: float = 0.1,
                  model: ModelSpec = ModelSpec(), options: RunOptions = RunOptions(),
                  log: Log = console.print) -> SaeResult:
    """Train and evaluate the SAE (module docstring) on the chat dataset(s) ``data`` and the ``text`` sources, in
    the resumable run directory ``options.out`` (default runs/sae-train-<timestamp>); a finished run is returned
    as it is. ``model`` names the model alone (no ``sae``/``layer``: the layer is this call's)."""
    from realmodels.loading.bundle import given_name
    from realmodels.loading.checks import check_layer_range, model_shape
    from runio.rundir import RunDir, default_run_dir

    if not 0 < heldout <= 0.5:
        raise ParamError(f"`heldout` must be in (0, 0.5], got {heldout}")
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ParamError(f"`layer` must be an integer >= 0, got {layer!r}")
    datasets = Datasets()
    chat_sets = [datasets.open(d, "`data`") for d in _as_list(data)]
    texts = [TextCorpus.open(t) for t in _as_list(text)]
    if not chat_sets and not texts:
        raise ParamError("no training data: give `data` (chat JSONL) or `text` (a text file or a corpus: "
                         f"{', '.join(CORPORA)})")
    plain = model.plain()
    check_layer_range(layer, model_shape(plain.source.path, plain.source.repo_id, None).n_layers,
                      given_name(model.model, plain.source))
    sources = [d.entry() for d in chat_sets] + [t.entry() for t in texts]
    recorded = {"data": sources[0]} if len(sources) == 1 and chat_sets else {"data": sources, "window": window}
    full = resolved({"command": "sae train", "model": plain.to_config(), **recorded, "layer": layer,
                     "sae": config.to_dict(), "heldout": heldout})
    path = Path(options.out) if options.out is not None else default_run_dir(prefix="sae-train-")
    units, counts = [], []
    for dataset in chat_sets:  # a chat template is needed: checked here
        chats = dataset.tokenized(plain.tokenizer, plain.max_length)
        units.extend(chats)
        counts.append({**dataset.entry(), "units": len(dataset),
                       "tokens": sum(int(chat.assistant_mask.sum()) for chat in chats)})
    for corpus in texts:
        pieces = corpus.windows(plain.tokenizer, window)
        units.extend(pieces)
        counts.append({**corpus.entry(), "units": len(pieces),
                       "tokens": sum(int(p.assistant_mask.sum()) for p in pieces)})
    if len(units) < 2:
        raise ParamError(f"the training data holds {len(units)} conversation or window: at least 2 are needed "
                         "(one held out)")
    run = RunDir.open(path, full)
    if (summary := finished_summary(run, log)) is not None:
        return SaeResult(run.path, summary, True)
    set_threads(options.threads)
    from sae_lens import SAE

    from realmodels.sae.train import chat_residuals, sae_quality_on, train_sae

    train_ids, held_ids = split(len(units), heldout, config.seed)
    lm = plain.model
    log(f"residuals at layer {layer} of {min(len(train_ids), config.n_conversations)} training units "
        f"(conversations and text windows)")
    train_acts = chat_residuals(lm, [units[i] for i in train_ids[:config.n_conversations]], layer, plain.pad_id,
                                batch_size=model.batch_size)
    held_acts = chat_residuals(lm, [units[i] for i in held_ids], layer, plain.pad_id, batch_size=model.batch_size)
    if not (run.path / "sae" / "cfg.json").is_file():
        log(f"training a {ARCH_NAMES[config.architecture]} SAE ({config.d_sae} latents, k {config.k}) for "
            f"{config.steps} steps")
        tmp = run.path / ".sae.tmp"
        shutil.rmtree(tmp, ignore_errors=True)  # a killed training starts over
        train_sae(train_acts, layer, config, tmp, model_name=plain.name, progress=options.progress)
        tmp.rename(run.path / "sae")
    sae = SAE.load_from_disk(str(run.path / "sae"), device="cpu")
    summary = {"layer": layer, "d_in": int(train_acts.shape[1]), "d_sae": config.d_sae, "k": config.k,
               "n_train_conversations": min(len(train_ids), config.n_conversations),
               "n_heldout_conversations": len(held_ids), "sources": counts, "heldout": sae_quality_on(sae, held_acts),
               "train": sae_quality_on(sae, train_acts), "sae": str(run.path / "sae")}
    write_json(run.file(SUMMARY), summary)
    return SaeResult(run.path, summary, False)
