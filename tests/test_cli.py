"""The command line rejects bad input before anything runs, with one line and exit status 2."""

import subprocess
import sys
from pathlib import Path

import pytest

from neuromod_lib import cli, notebooks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_execution(monkeypatch):
    """Fail the test if anything would be executed."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a notebook was executed despite bad input")

    monkeypatch.setattr(notebooks, "execute", forbidden)


BAD_INPUTS = [
    (["run", "99_nothing"], ["notebook='99_nothing'", "allowed: all, 00_overview"]),
    (["run", "00", "--profile", "fast"], ["profile='fast'", "smoke, quick, paper"]),
    (["run", "00", "-p", "n_nuerons=3"], ["'n_nuerons'", "allowed: seed, device, results_dir, n_neurons"]),
    (["run", "00", "-p", "n_neurons=many"], ["n_neurons='many'", "is not an integer", "allowed: an integer"]),
    (["run", "00", "-p", "n_neurons=0"], ["n_neurons=0", "allowed: an integer >= 1"]),
    (["run", "00", "-p", "gain=-2"], ["gain=-2.0", "allowed: a number >= 0.0"]),
    (["run", "00", "-p", "device=gpu"], ["device='gpu'", "auto, cpu, cuda, cuda:N or mps"]),
    (["run", "00", "-p", "seed"], ["-p 'seed'", "key=value"]),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_runs_nothing(argv, expected, tmp_path, capsys, no_execution):
    out_dir, res_dir = tmp_path / "out", tmp_path / "res"
    status = cli.main([*argv, "--output-dir", str(out_dir), "--results-dir", str(res_dir)])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    for fragment in expected:
        assert fragment in err
    assert not out_dir.exists() and not res_dir.exists()


def test_unknown_option_and_command_exit_2(capsys):
    for argv in (["frobnicate"], ["run", "--colour", "red"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert info.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_module_entry_point_exits_2_on_bad_profile(tmp_path):
    argv = ["run", "--profile", "huge", "--results-dir", str(tmp_path / "r")]
    proc = subprocess.run(
        [sys.executable, "-m", "neuromod_lib", *argv],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "neuromod: error: profile='huge' is unknown; allowed: smoke, quick, paper"
    assert not (tmp_path / "r").exists()


def test_list_shows_every_notebook_and_status(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for nb in notebooks.CATALOGUE:
        assert nb.name in out
    assert "ready" in out and "profiles: smoke, quick, paper" in out


def test_select_by_prefix_and_all():
    assert [nb.name for nb in notebooks.select(["00"])] == ["00_overview"]
    assert notebooks.select(["all"]) == notebooks.select([]) == notebooks.ready()
    assert notebooks.select(["00", "00_overview"]) == notebooks.select(["00"])


def test_summary_command_prints_and_writes(tmp_path, capsys):
    assert cli.main(["summary", "--results-dir", str(tmp_path)]) == 0
    assert "# Results summary" in capsys.readouterr().out
    assert (tmp_path / "summary.md").is_file()
