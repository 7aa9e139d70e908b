"""The reproduction report: every record, and each paper claim judged from the recorded booleans."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timezone

import nbformat

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


# --- figures, tables and the run section ---------------------------------------------------------

NB06 = "06_random_weight_continual_learning"


def _png() -> bytes:
    """A small real PNG, as matplotlib writes it into a notebook."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _executed_notebook(path, injected: dict, png: bytes | None) -> None:
    """An executed notebook as papermill leaves it: a parameters cell, the injected parameters in
    the metadata, and (if ``png``) a figure as the second output of cell 3, under heading "The tasks"."""
    outputs = [nbformat.v4.new_output("stream", name="stdout", text="training\n")]
    if png is not None:
        data = {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": "<Figure>"}
        outputs.append(nbformat.v4.new_output("display_data", data=data))
    params = nbformat.v4.new_code_cell(
        'profile = "quick"  # a comment\nseed = 0\nresults_dir = "../results"\n'
    )
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# 06 · Title\n\nIntro."),
            params,
            nbformat.v4.new_markdown_cell("## The tasks\n\nWhat the figure shows."),
            nbformat.v4.new_code_cell("plot()", outputs=outputs),
        ]
    )
    nb.metadata["papermill"] = {"parameters": injected}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _matching(results_dir) -> dict:
    """What papermill injects for the run that ``_record(results_dir, ...)`` records."""
    return {"profile": "smoke", "seed": 3, "results_dir": str(results_dir)}


def test_figures_are_extracted_linked_and_stale_ones_removed(tmp_path):
    res, png = tmp_path / "results", _png()
    _record(res, NB06, {"zero_forgetting_random_weights": True})
    nb_path = tmp_path / "notebooks" / f"{NB06}.ipynb"  # the notebooks/ folder beside results/
    _executed_notebook(nb_path, _matching(res), png)
    report.write_report(res)
    figure = res / "figures" / NB06 / "fig-3-1.png"
    assert figure.read_bytes().startswith(b"\x89PNG") and figure.read_bytes() == png
    text = (res / "report.md").read_text()
    assert f"![Figure 1: The tasks](figures/{NB06}/fig-3-1.png)" in text
    assert f"From `notebooks/{NB06}.ipynb`." in text
    assert "- figures: 1," in text

    keep = res / "figures" / NB06 / "notes.txt"  # not a figure the report wrote: never deleted
    keep.write_text("mine")
    _executed_notebook(nb_path, _matching(res), None)  # re-run, no figure any more
    report.write_report(res)
    text = (res / "report.md").read_text()
    assert not figure.exists() and keep.read_text() == "mine"
    assert "fig-3-1.png" not in text and f"No figures in `notebooks/{NB06}.ipynb`." in text
    assert not list(res.rglob(".*.tmp"))


def test_notebook_without_record_gets_no_figures(tmp_path):
    res = tmp_path / "results"
    _record(res, NB06, {"zero_forgetting_random_weights": True})
    other = "05_rnn_ambiguity_and_dynamics"
    _executed_notebook(tmp_path / "notebooks" / f"{other}.ipynb", _matching(res), _png())
    _executed_notebook(tmp_path / "notebooks" / f"{NB06}.ipynb", _matching(res), _png())
    stale = res / "figures" / other / "fig-9-0.png"  # from an earlier report, when 05 had a record
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    report.write_report(res)
    assert (res / "figures" / NB06 / "fig-3-1.png").is_file()
    assert not (res / "figures" / other).exists()
    text = (res / "report.md").read_text()
    assert f"## `{other}`" not in text and f"figures/{other}" not in text
    recorded = next(line for line in text.splitlines() if line.startswith("- notebooks recorded"))
    assert recorded.startswith("- notebooks recorded: 1; not run: `00_overview`") and f"`{other}`" in recorded


def test_figures_come_only_from_a_notebook_run_with_the_recorded_parameters(tmp_path, capsys):
    res = tmp_path / "results"
    _record(res, NB06, {"zero_forgetting_random_weights": True})
    other_run = res / "notebooks" / f"{NB06}.ipynb"  # an executed notebook of a run with seed 4
    _executed_notebook(other_run, {**_matching(res), "seed": 4}, _png())
    report.write_report(res)
    text = (res / "report.md").read_text()
    assert not (res / "figures" / NB06).exists() and "![" not in text
    assert "Figures left out: `results/notebooks/" in text and "seed: notebook 4, record 3" in text

    # the run that made the record, in a folder named on the command line: its figure is used
    elsewhere = tmp_path / "elsewhere"
    _executed_notebook(elsewhere / f"{NB06}.ipynb", _matching(res), _png())
    argv = ["report", "--results-dir", str(res), "--notebooks-dir", str(res / "notebooks")]
    assert cli.main([*argv, "--notebooks-dir", str(elsewhere)]) == 0
    assert "report.md" in capsys.readouterr().out
    text = (res / "report.md").read_text()
    assert (res / "figures" / NB06 / "fig-3-1.png").is_file()
    assert f"From `elsewhere/{NB06}.ipynb`." in text and "Figures left out" not in text


def test_run_parameters_are_the_parameters_cell_overridden_by_papermill(tmp_path):
    path = tmp_path / "nb.ipynb"
    _executed_notebook(path, {"seed": 7, "lr": 0.01}, None)
    params = report.run_parameters(nbformat.read(path, as_version=4))
    assert params == {"profile": "quick", "seed": 7, "results_dir": "../results", "lr": 0.01}
    record = {"profile": "quick", "parameters": {"seed": 7, "results_dir": "../results", "lr": 0.01, "n": 2}}
    assert report.parameter_mismatches({**params, "n": None}, record) == []
    assert report.parameter_mismatches({**params, "lr": 0.02}, record) == ["lr: notebook 0.02, record 0.01"]
    assert report.parameter_mismatches({**params, "profile": "paper"}, record) == [
        "profile: notebook 'paper', record 'quick'"
    ]


def test_values_render_as_readable_cells():
    assert [report.format_value(v) for v in (True, False, None, 192040, 0.5, 23.0, "a|b")] == [
        "yes",
        "no",
        "—",
        "192,040",
        "0.5",
        "23.0",
        "a\\|b",
    ]


def _fake_record(metrics: dict, device: str = "cpu", torch_version: str = "2.5.0") -> dict:
    versions = {"python": "3.11.7", "torch": torch_version, "torchvision": "0.20.0"}
    return {"profile": "quick", "seed": 0, "device": device, "versions": versions, "metrics": metrics}


def test_double_underscore_metrics_render_as_one_pivot_table():
    metrics = {
        "digits__synaptic__accuracy": 91.5,
        "digits__synaptic__bytes_per_task": 4096,
        "digits__random_weights__accuracy": 90.0,
        "attributes__random_weights__bytes_per_task": 2564,
        "attributes__random_weights__forgetting": 0.0,
        "synaptic_beats_gains": True,
        "two__parts": 1,
    }
    lines = report.metrics_tables(metrics, ("task set", "family"))
    assert lines[:2] == [
        "| task set | family | `accuracy` | `bytes_per_task` | `forgetting` |",
        "|---|---|---|---|---|",
    ]
    assert lines[2:5] == [
        "| `digits` | `synaptic` | 91.5 | 4,096 | — |",
        "| `digits` | `random_weights` | 90.0 | — | — |",
        "| `attributes` | `random_weights` | — | 2,564 | 0.0 |",
    ]
    assert lines[5:] == [
        "",
        "| metric | value |",
        "|---|---|",
        "| `synaptic_beats_gains` | yes |",
        "| `two__parts` | 1 |",
    ]
    text = report.render({"07_modulation_families_compared": _fake_record(metrics)})
    assert "| task set | family | `accuracy` |" in text and "| `digits__synaptic__accuracy` |" not in text
    generic = report.render({"99_other": _fake_record({"a__b__c": 1})})
    assert "| group | variant | `c` |\n|---|---|---|\n| `a` | `b` | 1 |" in generic


def test_run_section_names_devices_versions_and_counts_claims():
    records = {
        "02_stochastic_comodulation": _fake_record(
            {"stochastic_beats_deterministic": False, "extra_params_stochastic": 0}, "cpu"
        ),
        NB06: _fake_record({"zero_forgetting_random_weights": True}, "cuda:0", "2.6.0"),
    }
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    run = report.render(records, generated=when).split("## The papers' claims")[0]
    assert "- generated: 2024-01-02 03:04:05 UTC" in run
    assert (
        "- profile: `quick` (every recorded notebook)" in run and "- seed: 0 (every recorded notebook)" in run
    )
    assert f"- device: `cpu` (`02_stochastic_comodulation`); `cuda:0` (`{NB06}`)" in run
    assert "torch 2.5.0, torchvision 0.20.0 (`02_stochastic_comodulation`); python 3.11.7, torch 2.6.0" in run
    n_other = sum(c.notebook not in records for c in report.CLAIMS)
    n_06 = sum(c.notebook == NB06 for c in report.CLAIMS)
    assert (
        f"- claims ({len(report.CLAIMS)}): 2 supported, 1 not supported in this run, "
        f"{n_06 - 1} not measured, {n_other} not run" in run
    )
