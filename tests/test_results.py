"""Recorded results and the summary built from them."""

import json

import pytest

from neuromod_lib import profiles, results


def test_record_rounds_and_summary_lists_it(tmp_path):
    cfg = profiles.resolve("00_overview", "smoke", results_dir=str(tmp_path), seed=5)
    path = results.record(cfg, {"width_deg": 63.123456789, "ok": True}, device="cpu")
    rec = json.loads(path.read_text())
    assert rec["metrics"] == {"width_deg": 63.1235, "ok": True}
    assert rec["seed"] == 5 and rec["profile"] == "smoke" and rec["device"] == "cpu"
    assert set(rec["versions"]) == {"python", "torch", "torchvision"}
    summary = results.write_summary(tmp_path).read_text()
    assert "| 00_overview | smoke | 5 | cpu | width_deg=63.1235, ok=True |" in summary
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"


def test_record_is_byte_identical_for_identical_runs(tmp_path):
    cfg = profiles.resolve("00_overview", "smoke", results_dir=str(tmp_path))
    first = results.record(cfg, {"x": 0.1 + 0.2}, device="cpu").read_bytes()
    assert results.record(cfg, {"x": 0.1 + 0.2}, device="cpu").read_bytes() == first


def test_timings_are_recorded_apart_and_stay_out_of_the_summary(tmp_path):
    cfg = profiles.resolve("00_overview", "smoke", results_dir=str(tmp_path))
    path = results.record(cfg, {"acc": 0.9}, device="cpu", timings={"seconds": 1.234567})
    rec = json.loads(path.read_text())
    assert rec["metrics"] == {"acc": 0.9} and rec["timings"] == {"seconds": 1.2346}
    assert "seconds" not in results.write_summary(tmp_path).read_text()
    with pytest.raises(ValueError, match="metrics"):
        results.record(cfg, {"acc": 0.9}, device="cpu", timings={"curve": [1.0]})


def test_record_rejects_non_scalar_metrics(tmp_path):
    cfg = profiles.resolve("00_overview", "smoke", results_dir=str(tmp_path))
    with pytest.raises(ValueError, match="metrics"):
        results.record(cfg, {"curve": [1, 2]}, device="cpu")
    assert not list(tmp_path.iterdir())


def test_load_missing_folder_is_empty(tmp_path):
    assert results.load(tmp_path / "nothing") == {}
