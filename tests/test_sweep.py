"""Sweeps through Dask on 2 CPU cores, no cluster needed: a grid runs once and resumes by skipping,
a worker killed mid-run loses only its run, a bad point refuses the grid, and a SLURM job script
carries what was asked (nothing submitted)."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import nbformat
import pytest

from neuromod_lib import cli, notebooks, results, sweep
from neuromod_lib.checks import ParameterError

GRID = ["00", "--profile", "smoke", "--seeds", "0-1", "-p", "n_neurons=8,16"]


def _finished_files(root: Path) -> list[Path]:
    """Every file a sweep left that is not a temporary one (``.name.tmp``); each must be whole."""
    found = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    for path in found:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".ipynb":
            nbformat.read(path, as_version=4)
    return found


def test_seeds_and_grids_parse_and_bad_ones_are_refused():
    assert sweep.parse_seeds("0-3,7,2") == [0, 1, 2, 3, 7]
    assert sweep.parse_grid(["lr=0.01,0.02", "sizes=4,8;4,16"]) == {
        "lr": ["0.01", "0.02"],
        "sizes": ["4,8", "4,16"],
    }
    for bad, words in [
        (lambda: sweep.parse_seeds("3-1"), "--seeds='3-1'"),
        (lambda: sweep.parse_seeds("a"), "--seeds='a'"),
        (lambda: sweep.parse_grid(["lr"]), "KEY=VALUE"),
        (lambda: sweep.parse_grid(["lr=1", "lr=2"]), "given twice"),
        (lambda: sweep.expand("00", "smoke", [0], {"seed": ["1"]}), "--seeds"),
    ]:
        with pytest.raises(ParameterError, match=words):
            bad()
    # the whole reproduction in one grid: every notebook x seeds
    assert len(sweep.expand("all", "paper", [0, 1, 2], {})) == 3 * len(notebooks.ready())
    with pytest.raises(ParameterError, match=r"01_gain_modulation \[smoke\] n_neurons=8, seed=0"):
        sweep.expand(["00", "01"], "smoke", [0], {"n_neurons": ["8"]})  # a parameter 01 does not have
    points = sweep.expand("00", "smoke", [0, 1], {"n_neurons": ["8", "16"]})
    assert [p.values for p in points] == [
        {"n_neurons": "8", "seed": "0"},
        {"n_neurons": "8", "seed": "1"},
        {"n_neurons": "16", "seed": "0"},
        {"n_neurons": "16", "seed": "1"},
    ]


def test_a_sweep_records_every_point_reports_them_and_skips_them_when_run_again(tmp_path, capsys):
    args = [*GRID, "--workers", "2", "--no-progress"]
    sweeps = tmp_path / "results" / "sweeps"  # where sweep puts its notebooks by default
    where = ["--results-dir", str(tmp_path / "results"), "--output-dir", str(sweeps)]
    assert cli.main(["sweep", *args, *where]) == 0
    runs = results.load_runs(tmp_path / "results")
    assert sorted((r["seed"], r["parameters"]["n_neurons"]) for r in runs) == [
        (0, 8),
        (0, 16),
        (1, 8),
        (1, 16),
    ]
    assert len(list(sweeps.rglob("*.ipynb"))) == 4
    report = (tmp_path / "results" / "report.md").read_text()
    assert "00_overview" in report
    # the report's figures come from the sweep's notebook of the run it shows
    assert list((tmp_path / "results" / "figures" / "00_overview").glob("fig-*.png"))
    assert "No figures" not in report and "Figures left out" not in report
    assert cli.main(["report", "--results-dir", str(tmp_path / "results")]) == 0  # later, on its own
    assert list((tmp_path / "results" / "figures" / "00_overview").glob("fig-*.png"))
    assert "No figures" not in (tmp_path / "results" / "report.md").read_text()
    capsys.readouterr()
    assert cli.main(["sweep", *args, *where]) == 0
    out = capsys.readouterr().out
    assert out.count(" skipped ") == 4 and " done " not in out
    # records of two machines merge into one report with a CSV of every run
    other = tmp_path / "other"
    (other / "runs").mkdir(parents=True)
    for path in (tmp_path / "results" / "runs").rglob("seed-0-*.json"):
        target = other / path.relative_to(tmp_path / "results")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    merged = tmp_path / "merged"
    merged.mkdir()
    runs_dirs = [str(tmp_path / "results"), str(other)]
    assert cli.main(["report", "--results-dir", str(merged), "--runs", *runs_dirs]) == 0
    lines = (merged / "runs.csv").read_text().splitlines()
    assert len(lines) == 1 + 4 and lines[0].startswith("notebook,profile,key,seed")  # no run twice
    assert "00_overview" in (merged / "report.md").read_text()


def test_a_worker_killed_mid_run_loses_only_that_run(tmp_path):
    marker = tmp_path / "killed-once"

    def kill_one(point, results_dir, output_dir, timeout):
        if point.seed == 0 and point.values["n_neurons"] == "8" and not marker.exists():
            marker.touch()  # this worker dies 2 s into its run, by its own PID
            threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGKILL)).start()
        return sweep.run_point(point, results_dir, output_dir, timeout)

    points = sweep.expand("00", "smoke", [0, 1], {"n_neurons": ["8", "16"]})
    client = sweep.make_client(workers=2)
    try:
        outcomes = sweep.run_sweep(
            points, client, results_dir=tmp_path / "results", output_dir=tmp_path / "notebooks",
            retries=0, progress=False, task=kill_one,
        )  # fmt: skip
    finally:
        client.close()
    assert marker.exists(), "the fault was injected"
    assert [o.status for o in outcomes] == ["done"] * 4
    records = sorted((tmp_path / "results" / "runs").rglob("seed-*.json"))
    assert len(records) == 4 and len({r.name for r in records}) == 4
    finished = _finished_files(tmp_path)  # every file left is whole
    assert len([p for p in finished if p.suffix == ".ipynb"]) == 4


def test_an_invalid_point_refuses_the_whole_grid_before_anything_runs(tmp_path, capsys):
    where = ["--results-dir", str(tmp_path / "results"), "--output-dir", str(tmp_path / "notebooks")]
    status = cli.main(["sweep", "00", "--profile", "smoke", "--seeds", "0-1", "-p", "n_neurons=8,0", *where])
    err = capsys.readouterr().err
    assert status == 2
    assert "2 of 4 points refused" in err and "00_overview [smoke] n_neurons=0, seed=0" in err
    assert "parameter n_neurons=0 is not allowed" in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "notebooks").exists()


def test_a_slurm_dry_run_prints_the_job_script_with_what_was_asked(capsys):
    args = ["sweep", "00", "--profile", "smoke", "--seeds", "0-3", "--cluster", "slurm", "--dry-run"]
    asked = ["--cores", "8", "--memory", "32GB", "--walltime", "02:00:00", "--gpus-per-job", "2"]
    assert cli.main([*args, *asked, "--queue", "gpu", "--account", "lab", "--jobs", "3"]) == 0
    script = capsys.readouterr().out
    assert "4 runs of 00_overview (smoke)" in script
    for line in ("#SBATCH -p gpu", "#SBATCH -A lab", "#SBATCH --cpus-per-task=8", "#SBATCH -t 02:00:00",
                 "#SBATCH --gres=gpu:2"):  # fmt: skip
        assert line in script
    assert "#SBATCH --mem=30G" in script  # dask-jobqueue writes 32 GB as 30 GiB
    assert "--nworkers 2" in script and f"--resources {sweep.RUN}=1" in script  # a worker per GPU
    assert f"export {sweep.PIN_GPU}=1" in script  # each pins its own
    for bad, words in [
        (["--memory", "lots"], "--memory='lots'"),
        (["--walltime", "2h"], "--walltime='2h'"),
        (["--gpus-per-job", "-1"], "--gpus-per-job=-1"),
    ]:
        assert cli.main([*args, *bad]) == 2
        assert words in capsys.readouterr().err
    assert cli.main(["sweep", "00", "--profile", "smoke", "--dry-run"]) == 2
    assert "--dry-run is not allowed without --cluster" in capsys.readouterr().err


def test_a_gpu_run_pins_its_workers_gpu_unless_a_device_was_asked(monkeypatch):
    import distributed
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(distributed, "get_worker", lambda: type("W", (), {"name": "SLURMCluster-3-1"})())
    monkeypatch.delenv(sweep.PIN_GPU, raising=False)
    assert sweep._worker_device({}) == {}  # a cluster made elsewhere places its workers itself
    monkeypatch.setenv(sweep.PIN_GPU, "1")  # a cluster made by the sweep
    assert sweep._worker_device({}) == {"device": "cuda:1"}  # the job's second worker: its second GPU
    assert sweep._worker_device({"device": "cpu"}) == {}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert sweep._worker_device({}) == {}  # one GPU: the notebook's own choice


def test_a_failing_run_is_retried_then_reported_while_the_others_finish(tmp_path):
    def flaky(point, results_dir, output_dir, timeout):
        if point.seed == 0:
            attempt = len(list(tmp_path.glob("attempt-*")))
            (tmp_path / f"attempt-{attempt}").touch()
            raise RuntimeError(f"attempt {attempt} failed")
        return sweep.Outcome(point, "done")

    points = sweep.expand("00", "smoke", [0, 1, 2], {})
    client = sweep.make_client(workers=1)
    try:
        outcomes = sweep.run_sweep(
            points, client, results_dir=tmp_path, output_dir=tmp_path, retries=2, progress=False, task=flaky
        )
    finally:
        client.close()
    assert [o.status for o in outcomes] == ["failed", "done", "done"]
    assert len(list(tmp_path.glob("attempt-*"))) == 3  # the first try and two retries
    assert outcomes[0].error == "RuntimeError: attempt 2 failed" and outcomes[0].attempts == 3


def test_each_batch_system_gets_the_wall_time_and_gpus_in_its_own_format():
    assert sweep._walltime("slurm", "1-02:00:00") == "1-02:00:00"
    assert sweep._walltime("pbs", "1-02:00:00") == "26:00:00"  # days folded into hours
    assert sweep._walltime("sge", "04:30") == "04:30:00"
    assert sweep._walltime("lsf", "04:00:00") == "4:00" and sweep._walltime("lsf", "01:30:20") == "1:31"
    script = sweep.job_script(
        sweep.ClusterSpec("pbs", cores=8, memory="32GB", walltime="1-02:00:00", gpus_per_job=2)
    )
    assert "ngpus=2" in script and "walltime=26:00:00" in script
    assert "#BSUB -W 4:00" in sweep.job_script(sweep.ClusterSpec("lsf", walltime="04:00:00"))


def test_a_single_list_value_and_repeated_points():
    assert sweep.parse_grid(["rnn_tasks=go,anti;"]) == {"rnn_tasks": ["go,anti"]}  # one list, not two
    points = sweep.expand("00", "smoke", [0], {"n_neurons": ["8", " 8", "8"]})
    assert [p.values["n_neurons"] for p in points] == ["8"]  # one point, run once


def test_failed_points_of_one_sweep_keep_one_partial_notebook_each(tmp_path, stand_in_overview):
    stand_in_overview("raise RuntimeError('boom')")
    for point in sweep.expand("00", "smoke", [0, 1], {}):
        with pytest.raises(Exception, match="boom"):
            sweep.run_point(point, str(tmp_path / "results"), str(tmp_path / "out"))
    failed = tmp_path / "results" / "failed"
    kept = sorted(p.relative_to(failed) for p in (tmp_path / "results").rglob("*.ipynb"))
    assert [p.parts[:2] for p in kept] == [("00_overview", "smoke")] * 2  # as the records would be named
    assert [p.name.split("-")[1] for p in kept] == ["0", "1"]
    assert not list((tmp_path / "out").rglob("*.ipynb"))  # no executed notebook for a failed run


def test_a_sites_own_job_script_lines_are_kept_beside_the_sweeps():
    import dask

    site = {
        "jobqueue.slurm.job-script-prologue": ["module load cuda"],
        "jobqueue.slurm.job-extra-directives": ["--constraint=a100"],
        "jobqueue.slurm.worker-extra-args": ["--lifetime", "23h"],
    }
    with dask.config.set(site):
        script = sweep.job_script(sweep.ClusterSpec("slurm", gpus_per_job=2))
    site_lines = ["module load cuda", "#SBATCH --constraint=a100", "--lifetime 23h"]
    ours = [f"export {sweep.PIN_GPU}=1", "#SBATCH --gres=gpu:2", f"--resources {sweep.RUN}=1"]
    for line in site_lines + ours:
        assert line in script
