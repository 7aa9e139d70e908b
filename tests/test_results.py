"""Recorded results: one record per run, aggregation over seeds, comparison with a reference."""

import csv
import json
import math

import pytest

from neuromod_lib import profiles, results


def _cfg(tmp_path, **overrides):
    return profiles.resolve("00_overview", "smoke", results_dir=str(tmp_path), **overrides)


def test_record_rounds_and_lands_in_the_run_layout(tmp_path):
    cfg = _cfg(tmp_path, seed=5)
    path = results.record(cfg, {"width_deg": 63.123456789, "ok": True}, device="cpu")
    key = results.run_key(dict(cfg))
    assert path == tmp_path / "runs" / "00_overview" / "smoke" / f"seed-5-{key}.json"
    rec = json.loads(path.read_text())
    assert rec["metrics"] == {"width_deg": 63.1235, "ok": True}
    assert rec["seed"] == 5 and rec["profile"] == "smoke" and rec["device"] == "cpu" and rec["key"] == key
    assert set(rec["versions"]) == {"python", "torch", "torchvision"}
    assert set(rec["float_path"]) == {"cpu_capability", "threads"}
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"


def test_two_seeds_or_two_parameter_sets_leave_two_records(tmp_path):
    paths = {
        results.record(_cfg(tmp_path, seed=1), {"x": 1.0}, device="cpu"),
        results.record(_cfg(tmp_path, seed=2), {"x": 2.0}, device="cpu"),
        results.record(_cfg(tmp_path, seed=1, n_neurons=32), {"x": 3.0}, device="cpu"),
    }
    assert len(paths) == 3 and all(p.is_file() for p in paths)
    runs = results.load_runs(tmp_path)
    assert sorted(r["metrics"]["x"] for r in runs) == [1.0, 2.0, 3.0]
    grouped = results.points(runs)
    assert sorted(len(g) for g in grouped.values()) == [1, 2]


def test_figures_go_to_one_folder_per_run_beside_the_records(tmp_path):
    one, other = _cfg(tmp_path, seed=5), _cfg(tmp_path, seed=6)
    record = results.record(one, {"x": 1.0}, device="cpu")
    folder = results.figure_dir(one)
    assert folder == record.parent / "figures" / record.stem
    assert folder != results.figure_dir(other) and results.figure_dir(other).parent == folder.parent
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(b"png")
    assert [r["seed"] for r in results.load_runs(tmp_path)] == [5], "figures are not records"


def test_the_key_ignores_where_a_run_computed_but_not_what():
    cfg = dict(profiles.resolve("00_overview", "quick"))
    same = {**cfg, "seed": 9, "device": "cpu", "results_dir": "/elsewhere"}
    assert results.run_key(cfg) == results.run_key(same)
    assert results.run_key(cfg) != results.run_key({**cfg, "gain": 3.0})


def test_record_is_byte_identical_for_identical_runs(tmp_path):
    cfg = _cfg(tmp_path)
    first = results.record(cfg, {"x": 0.1 + 0.2}, device="cpu").read_bytes()
    assert results.record(cfg, {"x": 0.1 + 0.2}, device="cpu").read_bytes() == first


def test_nan_is_written_as_null(tmp_path):
    path = results.record(_cfg(tmp_path), {"x": float("nan")}, device="cpu", samples={"d": [1.0, math.inf]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    rec = json.loads(text)
    assert rec["metrics"]["x"] is None and rec["samples"]["d"] == [1.0, None]


def test_samples_training_check_and_per_task_csv(tmp_path):
    rows = [{"task": "a", "error": 1.23456}, {"task": "b", "error": 2.0, "extra": True}]
    samples = {"d": [0.1, -0.2]}
    path = results.record(
        _cfg(tmp_path), {"x": 1}, device="cpu", samples=samples, trained=(True, "ok"), per_task=rows
    )
    rec = results.read_record(path)
    assert rec["samples"] == {"d": [0.1, -0.2]} and rec["training"] == {"passed": True, "check": "ok"}
    with open(path.with_suffix(".csv")) as f:
        table = list(csv.DictReader(f))
    assert table[0] == {"task": "a", "error": "1.2346", "extra": ""}
    assert table[1] == {"task": "b", "error": "2.0", "extra": "True"}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"metrics": {"curve": [1, 2]}}, "metrics"),
        ({"timings": {"curve": [1.0]}}, "timings"),
        ({"samples": {"d": []}}, "samples"),
        ({"samples": {"d": [True, 1.0]}}, "samples"),
        ({"per_task": [{"a": [1]}]}, "per_task"),
    ],
)
def test_record_rejects_what_is_not_a_table_of_scalars(tmp_path, kwargs, named):
    args = {"metrics": {"x": 1.0}, **kwargs}
    with pytest.raises(ValueError, match=named):
        results.record(_cfg(tmp_path), args.pop("metrics"), device="cpu", **args)
    assert not (tmp_path / "runs").exists()


def test_timings_are_recorded_apart(tmp_path):
    path = results.record(_cfg(tmp_path), {"acc": 0.9}, device="cpu", timings={"seconds": 1.234567})
    rec = json.loads(path.read_text())
    assert rec["metrics"] == {"acc": 0.9} and rec["timings"] == {"seconds": 1.2346}


@pytest.mark.parametrize("content", ['{"notebook": "00_overview", "pro', "{}", "[1, 2]"])
def test_a_broken_record_is_an_error_naming_the_file(tmp_path, content):
    bad = tmp_path / "runs" / "00_overview" / "quick" / "seed-0-abcdefgh.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    with pytest.raises(ValueError, match="seed-0-abcdefgh.json"):
        results.load_runs(tmp_path)


def test_load_missing_folder_is_empty(tmp_path):
    assert results.load_runs(tmp_path / "nothing") == [] and results.load_reference(tmp_path) == {}


def test_stat_is_mean_sd_and_a_t_interval():
    s = results.stat([1.0, 2.0, 3.0])
    assert s.n == 3 and s.mean == 2.0 and s.sd == pytest.approx(1.0)
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, df=2)
    assert s.ci == pytest.approx((2.0 - half, 2.0 + half))
    assert results.stat([5.0]).ci is None


def test_aggregate_numbers_and_verdicts_over_seeds(tmp_path):
    for seed, (x, ok) in enumerate([(1.0, True), (3.0, True), (2.0, False)]):
        results.record(_cfg(tmp_path, seed=seed), {"x": x, "ok": ok, "name": "a"}, device="cpu")
    stats = results.aggregate(results.load_runs(tmp_path))
    assert stats["x"].mean == 2.0 and stats["x"].n == 3
    assert stats["ok"] == "mixed (True: 2, False: 1)" and stats["name"] == "a"
    summary = results.summary_markdown(results.load_runs(tmp_path), source="a test")
    assert "| 00_overview | smoke |" in summary and "| 0, 1, 2 |" in summary
    assert "x=2.0000 ± 1.0000" in summary


def test_reference_and_summary_come_only_from_the_references(tmp_path):
    path = results.record(_cfg(tmp_path, seed=3), {"x": 1.5}, device="cpu")
    results.record(_cfg(tmp_path, seed=4), {"x": 9.0}, device="cpu")  # an ad-hoc run: not in the summary
    results.write_reference(tmp_path, results.read_record(path))
    text = results.write_summary(tmp_path).read_text()
    assert "| 00_overview | smoke |" in text and "x=1.5" in text and "9.0" not in text
    assert "path" not in json.loads((tmp_path / "reference" / "00_overview.json").read_text())


def _rec(metrics, **fields):
    return {"notebook": "n", "profile": "quick", "key": "k", "metrics": metrics, **fields}


def test_compare_allows_a_prediction_interval_and_requires_stable_verdicts_to_agree():
    ref = _rec({"err": 24.0, "count": 96, "beats": True, "best": "film", "winner": "a"})
    spread = {"seeds": [0, 1, 2], "sd": {"err": 0.1, "count": 0.0}, "seed_dependent": ["winner"]}
    allowed = results.tolerance("err", 24.0, spread)
    assert allowed == pytest.approx(9.9248 * (4 / 3) ** 0.5 * 0.1, rel=1e-3)  # t(2, 0.995) sqrt(1 + 1/3) sd
    same = {"err": 24.0 + 0.99 * allowed, "count": 96, "beats": True, "best": "film", "winner": "b"}
    assert results.compare(_rec(same), ref, spread) == []
    problems = results.compare(
        _rec({"err": 24.0 + 1.01 * allowed, "count": 97, "beats": False, "best": "se", "winner": "c"}),
        ref,
        spread,
    )
    assert [p.split(":")[0] for p in problems] == ["err", "count", "beats", "best"]
    assert results.compare(_rec({**same, "count": 96.009}), ref, spread) == []  # the rounding floor
    del same["best"]
    assert results.compare(_rec(same), ref, spread) == ["best: missing from the fresh record"]
    assert results.compare(_rec(ref["metrics"], key="other"), ref, spread)[0].startswith("key:")


def test_an_sd_below_the_notebooks_typical_spread_is_raised_to_it():
    spread = {"seeds": [0, 1, 2], "sd": {"noise": 0.003, "fixed": 0.0}, "median_relative_sd": 0.015}
    factor = results.t_quantile(2, results.TOLERANCE_LEVEL) * (4 / 3) ** 0.5
    assert results.tolerance("noise", 0.888, spread) == pytest.approx(factor * 0.015 * 0.888)
    no_pool = {**spread, "median_relative_sd": 0.0}
    assert results.tolerance("noise", 0.888, no_pool) == pytest.approx(factor * 0.003)
    assert results.tolerance("fixed", 512, spread) == results.TOLERANCE_FLOOR  # did not vary: exact
    assert results.tolerance("unmeasured", 5.0, spread) == results.TOLERANCE_FLOOR
