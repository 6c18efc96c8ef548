"""``realmodels mitigate --protocol paper``: the paper's settings reach the runner (budget 0.5, the top 100 toxic
features by correlation, decoder cosine, the default 8 questions, aligned < 30 and coherent >= 50); an option the
protocol sets is refused in one line; the default protocol keeps the toolkit's defaults."""

from __future__ import annotations

import pytest

import realmodels.experiments.mitigate as mitigate
from theory.em_rates import EmThresholds
from tests.realmodels.cli_helpers import assert_bad, rm


class Stop(Exception):
    pass


@pytest.fixture
def recorded(monkeypatch):
    seen = {}

    def recorder(data, harmful, harmless, config, **kwargs):
        seen.update(kwargs, config=config)
        raise Stop

    monkeypatch.setattr(mitigate, "run_mitigation", recorder)
    return seen


def _run(capsys, tmp_path, *extra):
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    with pytest.raises(Stop):
        rm(capsys, ["mitigate", "--data", data, "--harmful", data, "--harmless", data, "--judge", "organism",
                    "--out", tmp_path / "out", *extra])


def test_the_paper_protocol_reaches_the_runner(tmp_path, capsys, recorded):
    _run(capsys, tmp_path, "--protocol", "paper")
    config, evaluation = recorded["config"], recorded["evaluation"]
    assert (config.budget, config.harmful_k, config.criterion, config.representation) == \
        (0.5, 100, "correlation", "residual")
    assert evaluation.thresholds == EmThresholds.paper()
    assert evaluation.questions is None  # the toolkit's 8 broad questions


def test_the_default_protocol_keeps_the_toolkits_defaults(tmp_path, capsys, recorded):
    _run(capsys, tmp_path)
    config, evaluation = recorded["config"], recorded["evaluation"]
    assert (config.budget, config.harmful_k, config.criterion) == (0.1, 50, "mean_diff")
    assert evaluation.thresholds == EmThresholds()


@pytest.mark.parametrize("extra, match", [
    (["--protocol", "paper", "--budget", "0.2"], "--protocol paper sets --budget itself"),
    (["--protocol", "paper", "--aligned-threshold", "20"], "--protocol paper sets --aligned-threshold itself"),
    (["--protocol", "vibes"], "--protocol must be default or paper"),
])
def test_protocol_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, match):
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    assert_bad(capsys, tmp_path, ["mitigate", "--data", data, "--judge", "organism", *extra], match)
