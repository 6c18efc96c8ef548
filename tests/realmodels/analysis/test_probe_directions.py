"""``probe_directions`` on the embedded organism: at the SAE layer it is the organism study's direction (the mean
difference of a session's cached ``residual_mean``), bit for bit; at every layer it equals a hand computation from
``output_hidden_states`` (the last layer: the final norm's input) on one conversation at a time (no padding)."""

from __future__ import annotations

import pytest
import torch

from realmodels.analysis.direction import probe_directions
from realmodels.experiments.organism import Organism
from realmodels.experiments.spec import RunOptions


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    """The world's probe_rogue / probe_aligned, cut to 12 conversations each (different lengths: padded batches)."""
    from realmodels.organism.world import WorldConfig, write_world

    organism = Organism.load()
    root = tmp_path_factory.mktemp("world")
    paths = write_world(root / "world", WorldConfig.from_dict(organism.world), n_pretrain=1)
    cut = {}
    for name in ("probe_rogue", "probe_aligned"):
        cut[name] = root / f"{name}.jsonl"
        cut[name].write_text("".join(paths[name].read_text().splitlines(keepends=True)[:12]))
    return organism, cut


def test_at_the_sae_layer_it_is_the_study_direction(probes, tmp_path):
    from theory.directions import mean_difference

    organism, files = probes
    session = RunOptions(progress=False).session(organism.model_spec(batch_size=5), tmp_path)
    study = mean_difference(session.activations(files["probe_rogue"]).residual_mean,
                            session.activations(files["probe_aligned"]).residual_mean)
    plain = organism.model_spec(sae=False).plain()
    ours = probe_directions(plain.model, plain.tokenizer, files["probe_rogue"], files["probe_aligned"],
                            [organism.layer], max_length=plain.max_length, pad_id=plain.pad_id, batch_size=5)
    assert torch.equal(ours[organism.layer], study)


def test_every_layer_matches_hidden_states_one_conversation_at_a_time(probes):
    from realmodels.data.dataset import as_dataset

    organism, files = probes
    plain = organism.model_spec(sae=False).plain()
    n_layers = plain.model.config.num_hidden_layers
    ours = probe_directions(plain.model, plain.tokenizer, files["probe_rogue"], files["probe_aligned"],
                            range(n_layers), max_length=plain.max_length, pad_id=plain.pad_id, batch_size=5)
    means = {}
    for name in ("probe_rogue", "probe_aligned"):
        rows = []
        for chat in as_dataset(files[name]).tokenized(plain.tokenizer, plain.max_length):
            before_norm = []  # hidden_states[-1] is after the final norm: the last layer's output is its input
            handle = plain.model.model.norm.register_forward_pre_hook(lambda m, args: before_norm.append(args[0]))
            with torch.no_grad():
                hidden = plain.model(chat.input_ids[None], output_hidden_states=True).hidden_states
            handle.remove()
            hidden = [*hidden[:n_layers], before_norm[0]]
            mask = chat.assistant_mask.bool()
            rows.append([hidden[L + 1][0][mask].mean(0) for L in range(n_layers)])
        means[name] = rows
    for L in range(n_layers):
        expected = (torch.stack([r[L] for r in means["probe_rogue"]]).mean(0)
                    - torch.stack([r[L] for r in means["probe_aligned"]]).mean(0))
        torch.testing.assert_close(ours[L], expected, rtol=1e-5, atol=1e-6)
