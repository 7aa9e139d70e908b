"""The reproduction report: every record, and each paper claim judged from the recorded booleans."""

from __future__ import annotations

from neuromod_lib import cli, profiles, report, results


def _record(tmp_path, notebook: str, metrics: dict) -> None:
    cfg = profiles.resolve(notebook, "smoke", results_dir=str(tmp_path), seed=3)
    results.record(cfg, metrics, device="cpu")


def test_claims_are_judged_from_the_recorded_values(tmp_path):
    _record(
        tmp_path,
        "02_stochastic_comodulation",
        {"stochastic_beats_deterministic": False, "extra_params_stochastic": 0},
    )
    _record(tmp_path, "06_random_weight_continual_learning", {"zero_forgetting_random_weights": True})
    records = results.load(tmp_path)
    by_metric = {c.metric: report.verdict(c, records) for c in report.CLAIMS}
    assert by_metric["stochastic_beats_deterministic"] == "not supported in this run"
    assert by_metric["extra_params_stochastic"] == "supported"
    assert by_metric["zero_forgetting_random_weights"] == "supported"
    assert by_metric["storage_ratio_at_least_100"].startswith("not measured")
    assert by_metric["gains_beat_head_only"] == "not run"


def test_every_claim_names_a_catalogued_notebook():
    names = set(profiles.notebook_names())
    assert all(c.notebook in names for c in report.CLAIMS)


def test_report_command_writes_the_file_with_every_record(tmp_path, capsys):
    _record(
        tmp_path, "06_random_weight_continual_learning", {"zero_forgetting_random_weights": True, "acc": 0.5}
    )
    assert cli.main(["report", "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## `06_random_weight_continual_learning`" in text and "| `acc` | 0.5 |" in text
    assert "profile `smoke`, seed 3, device `cpu`" in text and "torch" in text
    assert "report.md" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*.tmp"))
