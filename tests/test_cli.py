"""The command line rejects bad input before anything runs, with one line and exit status 2."""

import subprocess
import sys
from pathlib import Path

import pytest

from neuromod_lib import cli, notebooks, profiles, results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_execution(monkeypatch):
    """Fail the test if anything would be executed."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a notebook was executed despite bad input")

    monkeypatch.setattr(notebooks, "execute", forbidden)


NB05, NB06 = "05_rnn_ambiguity_and_dynamics", "06_random_weight_continual_learning"

BAD_INPUTS = [
    (["run", "99_nothing"], ["notebook='99_nothing'", "allowed: all, 00_overview"]),
    (["run", "00", "--profile", "fast"], ["profile='fast'", "smoke, quick, paper"]),
    (["run", "00", "-p", "n_nuerons=3"], ["'n_nuerons'", "allowed: seed, device, results_dir, n_neurons"]),
    (["run", "00", "-p", "n_neurons=many"], ["n_neurons='many'", "is not an integer", "allowed: an integer"]),
    (["run", "00", "-p", "n_neurons=0"], ["n_neurons=0", "allowed: an integer >= 1"]),
    (["run", "00", "-p", "n_neurons=1000000"], ["n_neurons=1000000", "<= 4096"]),
    (["run", "00", "-p", "gain=-2"], ["gain=-2.0", "allowed: a number >= 0.0"]),
    (["run", "00", "-p", "device=gpu"], ["device='gpu'", "auto, cpu, cuda, cuda:N or mps"]),
    (["run", "00", "-p", "seed"], ["-p 'seed'", "key=value"]),
    (["run", "00", "-p", "seed=12345678901234567890"], ["seed=12345678901234567890", "<= 4294967295"]),
    # list parameters: every entry is checked before a kernel starts
    (["run", "06", "--profile", "smoke", "-p", "methods=foo"], ["methods='foo'", "entry 'foo'", "finetune"]),
    (["run", "06", "-p", "methods=ewc,ewc"], ["methods='ewc,ewc'", "twice"]),
    (["run", "04", "-p", "ks=14"], ["ks='14'", "integers >= 1 <= 13"]),
    (["run", "04", "-p", "sizes=8,x"], ["sizes='8,x'", "entry 'x'"]),
    (["run", "05", "-p", "tasks=go,nope"], ["tasks='go,nope'", "dly_go"]),
    (["run", "05", "-p", "sigmas=0,-1"], ["sigmas='0,-1'", "numbers >= 0.0"]),
    (["run", "03", "-p", "placements=foo"], ["placements='foo'", "early, late, all"]),
    (["run", "03", "-p", "backbones=vgg"], ["backbones='vgg'", "resnet18"]),
    (["run", "07", "-p", "families=gains"], ["families='gains'", "stochastic_gain"]),
    (["run", "07", "-p", "task_sets=images"], ["task_sets='images'", "attributes"]),
    # parameters checked together
    (["run", "05", "-p", "task_a=foo"], ["task_a='foo'", "one of go"]),
    (["run", "05", "-p", "task_a=dm2"], ["task_a='dm2'", "not one of tasks=['go', 'anti']"]),
    (["run", "05", "-p", "task_b=go"], ["task_b='go'", "the same task as task_a"]),
    (["run", "04", "-p", "steps=45"], ["steps=45", "not a multiple of eval_every=200"]),
    (["run", "05", "-p", "tau=50"], ["tau=50.0", "shorter than the time step dt=100.0"]),
    (["run", "06", "-p", "inputs_per_unit=100"], ["inputs_per_unit=100", "more than the 64 inputs"]),
    (["run", "01", "-p", "gain_sites=block9"], ["gain_sites='block9'", "block1, block2, block3"]),
    (["run", "05", "-p", "device=cuda:7"], ["device='cuda:7' is not available", "available: "]),
    # sizes against a memory estimate and hard upper bounds
    (
        ["run", "06", "-p", "expansion=9000", "-p", "benchmark=permuted_mnist"],
        ["expansion=9000.0", "GiB of memory"],
    ),
    (["run", "06", "-p", "expansion=1e9"], ["expansion=1000000000.0", "<= 10000.0"]),
    (["run", "01", "-p", "n_images=5000000", "-p", "image_size=64"], ["n_images=5000000", "GiB of memory"]),
    (["run", "05", "-p", "steps=1000000000000"], ["steps=1000000000000", "<= 10000000"]),
    # where the results go
    (["run", "00", "--timeout", "0"], ["--timeout=0", "seconds >= 1"]),
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
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
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


def test_summary_command_aggregates_runs_and_writes_nothing(tmp_path, capsys):
    for seed, x in ((0, 1.0), (1, 3.0)):
        cfg = profiles.resolve("00_overview", "smoke", results_dir=str(tmp_path), seed=seed)
        results.record(cfg, {"x": x}, device="cpu")
    before = sorted(p for p in tmp_path.rglob("*"))
    assert cli.main(["summary", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "# Recorded runs" in out and "| 0, 1 |" in out and "x=2.0000 ± 1.4142" in out
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_summary_names_a_broken_record(tmp_path, capsys):
    bad = tmp_path / "runs" / "00_overview" / "quick" / "seed-0-deadbeef.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{}")
    assert cli.main(["summary", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "seed-0-deadbeef.json" in err and "missing" in err


def test_list_one_notebook_shows_every_parameter_with_type_values_and_allowed(capsys):
    assert cli.main(["list", "05"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(NB05)
    header = next(line for line in out.splitlines() if line.startswith("parameter"))
    assert header.split() == ["parameter", "type", "smoke", "quick", "paper", "allowed", "description"]
    tasks = next(line for line in out.splitlines() if line.startswith("tasks "))
    assert "list[str]" in tasks and "['go', 'anti']" in tasks and "dnms" in tasks
    n = next(line for line in out.splitlines() if line.startswith("n_neurons "))
    assert n.split()[1:5] == ["int", "16", "8", "32"] and "<= 4096" in n


@pytest.mark.parametrize("extra", [["-p", "seed=3"], ["--profile", "smoke"]])
def test_in_place_only_rewrites_the_committed_runs(tmp_path, capsys, no_execution, extra):
    assert cli.main(["run", "00", "--in-place", *extra, "--results-dir", str(tmp_path / "r")]) == 2
    assert "--in-place rewrites the committed notebooks" in capsys.readouterr().err


def test_output_dir_cannot_be_the_committed_notebooks(tmp_path, capsys, no_execution):
    argv = ["run", "00", "--output-dir", str(notebooks.NOTEBOOK_DIR), "--results-dir", str(tmp_path / "r")]
    assert cli.main(argv) == 2
    assert "folder of the committed notebooks" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("option", ["--results-dir", "--output-dir"])
def test_folders_under_a_file_are_refused_before_work(tmp_path, capsys, no_execution, option):
    afile = tmp_path / "afile"
    afile.write_text("x")
    folders = {"--results-dir": str(tmp_path / "r"), "--output-dir": str(tmp_path / "o")}
    folders[option] = str(afile / "sub")
    argv = ["run", "00", "--results-dir", folders["--results-dir"], "--output-dir", folders["--output-dir"]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{option}=" in err and "lies under the file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_failed_notebook_prints_its_exception_and_the_failing_cell(tmp_path, stand_in_overview, capsys):
    stand_in_overview("x = 1\nraise KeyError('no such task: frobnicate')")
    argv = ["run", "00", "--output-dir", str(tmp_path / "out"), "--results-dir", str(tmp_path / "res")]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAILED: KeyError: 'no such task: frobnicate'" in out
    assert "in cell [3]:" in out and "    x = 1" in out and "raise KeyError" in out
    assert f"partial notebook: {tmp_path / 'res' / 'failed' / '00_overview.ipynb'}" in out
    assert not list((tmp_path / "out").glob("*")), "a temporary file was left"


def test_a_hanging_cell_is_stopped_by_the_timeout(tmp_path, stand_in_overview, capsys):
    stand_in_overview("import time\ntime.sleep(600)")
    argv = [
        "run",
        "00",
        "--timeout",
        "3",
        "--output-dir",
        str(tmp_path / "o"),
        "--results-dir",
        str(tmp_path / "r"),
    ]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAILED:" in out and "3 seconds" in out
    assert not list((tmp_path / "o").glob("*"))


@pytest.mark.parametrize("command", ["summary", "report"])
def test_summary_and_report_refuse_a_results_dir_that_is_a_file(tmp_path, capsys, command):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.main([command, "--results-dir", str(afile)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--results-dir=" in err and "is a file" in err
