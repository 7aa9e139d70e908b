"""The benchmark scripts' bookkeeping (their timings are machine-dependent and never asserted)."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_keep_other_devices_and_replace_the_measured_one(tmp_path, monkeypatch):
    bench = _load("paper_throughput")
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "RESULTS.md")
    cpu = torch.device("cpu")
    bench.write_results(bench.table(cpu, [("06 random weights", 1000.0, "samples/s")], 3), cpu)
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.startswith("# Paper-profile throughput") and "| 06 random weights | 1,000 samples/s |" in text
    other = "## NVIDIA H100 80GB HBM3\n\n| paper-profile training step | throughput |\n| x | 5 images/s |\n"
    (tmp_path / "RESULTS.md").write_text(text + "\n" + other)
    bench.write_results(bench.table(cpu, [("06 random weights", 2000.0, "samples/s")], 3), cpu)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "2,000 samples/s" in text and "1,000 samples/s" not in text
    assert "## NVIDIA H100 80GB HBM3" in text and "| x | 5 images/s |" in text
    assert text.count("## cpu") == 1


def test_every_paper_step_runs_once_on_the_cpu(monkeypatch):
    bench = _load("paper_throughput")
    rows = bench.measure(torch.device("cpu"), repeats=1, only="06 random")
    assert [r[0] for r in rows] == ["06 random weights (784 -> 7 840)"] and rows[0][1] > 0


def test_the_wall_time_estimate_counts_every_paper_notebook_at_the_measured_rates():
    from neuromod_lib import notebooks

    bench = _load("paper_throughput")
    timed = {bench.PRETRAIN, bench.INFERENCE, bench.GAINS, bench.STOCHASTIC, bench.RNN, bench.RANDOM_WEIGHTS,
             bench.SYNAPTIC}  # fmt: skip
    assert {nb.name for nb in notebooks.ready()} - set(bench.WORK) == {"00_overview"}  # 00: seconds
    assert all(set(work) <= timed for work in bench.WORK.values())  # only workloads the script times
    hours = bench.run_hours(dict.fromkeys(timed, 2.0))  # two items per second
    for nb, work in bench.WORK.items():
        assert hours[nb] == pytest.approx(sum(work.values()) / 2 / 3600)
    assert math.isnan(bench.run_hours({bench.RNN: 1.0})["01_gain_modulation"])  # a rate not measured
    runs = {"a": 10.0, "b": 1.0}
    assert bench.recipe_hours(runs, seeds=2, devices=1) == 22.0  # one device: every run in turn
    assert bench.recipe_hours(runs, seeds=2, devices=2) == 11.0  # shared out
    assert bench.recipe_hours(runs, seeds=2, devices=4) == 10.0  # never less than the longest run
    table = bench.estimate_table([(w, 2.0, "items/s") for w in timed])
    assert "| 04_rnn_task_packing |" in table and "SLURM recipe" in table
    cpu = torch.device("cpu")
    assert "| 04_rnn_task_packing |" in bench.table(cpu, [(w, 2.0, "items/s") for w in timed], 1)
    assert "04_rnn" not in bench.table(cpu, [(bench.RNN, 2.0, "trials/s")], 1)  # no estimate from a part
