"""The benchmark scripts' bookkeeping (their timings are machine-dependent and never asserted)."""

import importlib.util
from pathlib import Path

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
