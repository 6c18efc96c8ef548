"""A dataset's activations computed shard by shard by model workers (``realmodels.data.shards``, on Ray actors:
``realmodels.data.pool``): the merged cache is the single-process cache (the same file, byte for byte, and
``torch.equal`` tensors), a run stopped after some shards resumes computing only the missing ones, a failing
shard on Ray is one line naming it and leaves the other shards; no Ray process outlives a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from realmodels.data.pool import ActivationPool
from cli.errors import user_errors
from realmodels.data import shards
from realmodels.data.activations import SampleActivations, length_order
from realmodels.data.chat import TokenizedChat
from realmodels.data.shards import plan_shards, run_here
from realmodels.loading.session import ModelChoice, Session
from tests.helpers import assert_one_line_error, ray_processes, wait_for_no_new_ray_processes
from tests.realmodels.cli_helpers import files, rm


@pytest.fixture
def llama(tiny_llama_dir, tiny_sae_dir) -> ModelChoice:
    return ModelChoice(model=str(tiny_llama_dir), sae=str(tiny_sae_dir(tiny_llama_dir, layer=1)), layer=1)


@pytest.fixture
def one_batch_shards(monkeypatch):
    """Shards of one batch: with --batch-size 2 the tiny datasets (5-6 conversations) make three shards each."""
    monkeypatch.setattr(shards, "SHARD_BATCHES", 1)


def _session(choice: ModelChoice, cache: Path, runner=None) -> Session:
    return Session(choice, batch_size=2, cache_dir=cache, progress=False, shard_runner=runner)


def assert_equal(a: SampleActivations, b: SampleActivations) -> None:
    assert torch.equal(a.residual_mean, b.residual_mean)
    assert torch.equal(a.n_tokens, b.n_tokens)
    assert torch.equal(a.feature_acts.indices(), b.feature_acts.indices())
    assert torch.equal(a.feature_acts.values(), b.feature_acts.values())
    assert a.feature_acts.shape == b.feature_acts.shape


class Recording:
    """``run_here`` that records the shards it is given, and raises after ``stop_after`` of them (a kill)."""

    def __init__(self, stop_after: int | None = None):
        self.names: list[str] = []
        self.stop_after = stop_after

    def __call__(self, spec, jobs, on_done):
        def done(job):
            self.names.append(job.name)
            on_done(job)
            if self.stop_after is not None and len(self.names) >= self.stop_after:
                raise RuntimeError("stopped")

        run_here(spec, jobs, done)


class RecordingPool(ActivationPool):
    """The Ray pool, recording the shards each call is given."""

    calls: list[list[str]]

    def __call__(self, spec, jobs, on_done):
        self.calls = [*getattr(self, "calls", []), [job.name for job in jobs]]
        super().__call__(spec, jobs, on_done)


def test_shards_cut_the_length_order_at_batch_boundaries():
    lengths = [5, 3, 9, 1, 7, 3, 2, 8, 6, 4, 3]
    chats = [TokenizedChat(torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.bool)) for n in lengths]
    plan = plan_shards(chats, batch_size=2, shard_batches=2)
    assert [name for name, _ in plan] == ["000000-000004", "000004-000008", "000008-000011"]
    assert [i for _, samples in plan for i in samples] == length_order(chats)  # the single-process batches, in order
    assert length_order(chats)[:4] == [3, 6, 1, 5]  # ties (3 tokens: 1, 5, 10) keep file order


def test_shards_merge_into_the_single_process_cache_and_a_stopped_run_resumes_only_missing_ones(
        tmp_path, llama, inducing_jsonl, one_batch_shards):
    single = _session(llama, tmp_path / "one").activations(inducing_jsonl)
    with pytest.raises(RuntimeError, match="stopped"):
        _session(llama, tmp_path / "many", Recording(stop_after=1)).activations(inducing_jsonl)
    [directory] = (tmp_path / "many").glob("*.shards")
    done = {p.name: p.stat().st_mtime_ns for p in directory.glob("*.pt")}
    assert len(done) == 1

    resumed = Recording()
    merged = _session(llama, tmp_path / "many", resumed).activations(inducing_jsonl)
    assert sorted(resumed.names) == sorted({"000000-000002", "000002-000004", "000004-000006"} -
                                           {name.removesuffix(".pt") for name in done})
    assert_equal(merged, single)
    assert files(tmp_path / "many") == files(tmp_path / "one"), "the same cache file, byte for byte; shards removed"

    again = Recording()
    assert_equal(_session(llama, tmp_path / "many", again).activations(inducing_jsonl), single)
    assert again.names == [], "read from the cache"


@pytest.mark.slow
@pytest.mark.ray
def test_two_ray_workers_give_the_one_worker_run_through_the_cli(tmp_path, capsys, tiny_llama_dir, tiny_sae_dir,
                                                                inducing_jsonl, harmful_jsonl, harmless_jsonl,
                                                                one_batch_shards):
    before = ray_processes()
    model = ["--model", tiny_llama_dir, "--sae", tiny_sae_dir(tiny_llama_dir, layer=1), "--layer", "1"]
    for n in (1, 2):
        code, _, err = rm(capsys, ["filter", *model, "--data", inducing_jsonl, "--harmful", harmful_jsonl,
                                   "--harmless", harmless_jsonl, "--batch-size", "2", "--no-progress",
                                   "--workers", str(n), "--out", tmp_path / str(n)])
        assert code == 0, err
    assert not wait_for_no_new_ray_processes(before), "Ray processes outlived the command"
    one, two = files(tmp_path / "1"), files(tmp_path / "2")
    assert one == two, "every output and every activation cache, byte for byte"
    caches = sorted(name for name in one if name.endswith(".pt"))
    assert len(caches) == 3 and not any(".shards" in name for name in two)
    for name in caches:
        a, b = (torch.load(tmp_path / n / name, weights_only=True) for n in ("1", "2"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))


@pytest.mark.slow
@pytest.mark.ray
def test_a_failing_shard_on_ray_is_one_line_and_the_rerun_computes_only_it(tmp_path, capsys, llama, inducing_jsonl,
                                                                            one_batch_shards):
    before = ray_processes()
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="stopped"):  # only to create the shard directory
        _session(llama, cache, Recording(stop_after=0)).activations(inducing_jsonl)
    [directory] = cache.glob("*.shards")
    for shard in directory.glob("*.pt"):
        shard.unlink()
    # the worker's rename onto it fails: that shard alone (the last one, so it starts after the other two: a
    # failure stops new shards from starting)
    (directory / "000004-000006.pt").mkdir()
    pool = RecordingPool(workers=2)
    session = _session(llama, cache, pool)
    try:
        code = 0
        try:
            user_errors(session.activations)(inducing_jsonl)
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        assert_one_line_error(code, err)
        assert "activation shard 000004-000006 failed: IsADirectoryError" in err, err
        assert sorted(p.name for p in directory.glob("*.pt") if p.is_file()) == ["000000-000002.pt",
                                                                                 "000002-000004.pt"]
        assert "Traceback" in (directory / "000004-000006.error.txt").read_text()
        (directory / "000004-000006.pt").rmdir()
        merged = session.activations(inducing_jsonl)  # the same Ray, the same actors
    finally:
        session.close()
    assert pool.calls == [["000000-000002", "000002-000004", "000004-000006"], ["000004-000006"]]
    assert not wait_for_no_new_ray_processes(before), "Ray processes outlived the session"
    assert not directory.exists()
    assert_equal(merged, _session(llama, tmp_path / "single").activations(inducing_jsonl))


def test_model_workers_load_a_fine_tuned_checkpoints_weights(tmp_path, llama, tiny_llama_dir, control_jsonl,
                                                             one_batch_shards):
    """A session on a full fine-tuned checkpoint (``finetuned``: its weights in place of the model's) hands them to
    its model workers: the sharded cache equals the single-process one, and differs from the base model's."""
    from dataclasses import replace

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(1.5)
    model.save_pretrained(tmp_path / "ft")
    finetuned = replace(llama, finetuned=str(tmp_path / "ft"))
    recording = Recording()
    sharded = _session(finetuned, tmp_path / "sharded", recording).activations(control_jsonl)
    assert len(recording.names) == 3
    assert_equal(sharded, _session(finetuned, tmp_path / "here").activations(control_jsonl))
    base = _session(llama, tmp_path / "base").activations(control_jsonl)
    assert not torch.equal(sharded.residual_mean, base.residual_mean)
