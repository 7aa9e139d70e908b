"""The reproduction report: every record, and each paper claim judged from the recorded booleans."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timezone

import nbformat
import pytest

from neuromod_lib import cli, profiles, report, results


def _record(tmp_path, notebook: str, metrics: dict, profile: str = "smoke", seed: int = 3, **kw) -> None:
    cfg = profiles.resolve(notebook, profile, results_dir=str(tmp_path), seed=seed)
    results.record(cfg, metrics, device="cpu", **kw)


CLAIM_02 = next(c for c in report.CLAIMS if c.quantity == "stochastic_minus_deterministic")
CLAIM_06 = next(c for c in report.CLAIMS if c.quantity == "random_weights_forgetting")


def _verdicts(tmp_path, claim):
    return report.verdicts(claim, results.load_runs(tmp_path))


def _seeds(tmp_path, notebook, values, profile="quick", passed=True, quantity=None):
    """One run per value (seeds 0, 1, ...), each recording ``[value]`` as its sample."""
    quantity = quantity or CLAIM_02.quantity
    for seed, value in enumerate(values):
        _record(
            tmp_path,
            notebook,
            {"x": value},
            profile=profile,
            seed=seed,
            samples={quantity: [value]},
            trained=(passed, "baseline trained"),
        )


def test_a_smoke_run_is_never_judged(tmp_path):
    """Three seeds, training check passed, a clear effect: on the smoke profile it is still not judged."""
    _seeds(tmp_path, CLAIM_02.notebook, [-5.0, -6.0, -5.5], profile="smoke")
    (v,) = _verdicts(tmp_path, CLAIM_02)
    assert v.status == "not judged" and "smoke" in v.detail and len(v.runs) == 3
    for claim in report.CLAIMS:
        assert all(x.status == "not judged" for x in _verdicts(tmp_path, claim))


def test_supported_only_when_the_interval_lies_on_the_claimed_side(tmp_path):
    _seeds(tmp_path / "a", CLAIM_02.notebook, [-5.0, -6.0, -5.5])
    (v,) = _verdicts(tmp_path / "a", CLAIM_02)
    assert v.status == "supported" and "95 % CI [" in v.detail and "n = 3" in v.detail
    assert all("seed-" in r for r in v.runs) and len(v.runs) == 3
    _seeds(tmp_path / "b", CLAIM_02.notebook, [-5.0, 4.0, -2.0])  # mean < 0, interval includes 0
    (v,) = _verdicts(tmp_path / "b", CLAIM_02)
    assert v.status == "not supported" and "does not lie entirely < 0" in v.detail
    _seeds(tmp_path / "c", CLAIM_02.notebook, [5.0, 6.0, 5.5])
    assert _verdicts(tmp_path / "c", CLAIM_02)[0].status == "not supported"


@pytest.mark.parametrize(
    ("values", "passed", "reason"),
    [
        ([-5.0, -6.0], True, "2 seed(s), at least 3 needed"),
        ([-5.0, -6.0, -5.5], False, "training check failed or missing (baseline trained)"),
    ],
)
def test_not_judged_without_enough_trained_seeds(tmp_path, values, passed, reason):
    _seeds(tmp_path, CLAIM_02.notebook, values, passed=passed)
    (v,) = _verdicts(tmp_path, CLAIM_02)
    assert (v.status, v.detail) == ("not judged", reason)


def test_not_judged_when_the_quantity_is_missing_or_not_run(tmp_path):
    _record(tmp_path, CLAIM_02.notebook, {"x": 1.0}, profile="quick", trained=(True, "ok"))
    assert _verdicts(tmp_path, CLAIM_02)[0].detail == f"`{CLAIM_02.quantity}` not recorded"
    assert _verdicts(tmp_path, CLAIM_06)[0].text() == "not judged: not run"


def test_structural_claims_need_every_value_equal(tmp_path):
    _seeds(tmp_path / "a", CLAIM_06.notebook, [0.0, 0.0, 0.0], quantity=CLAIM_06.quantity)
    assert _verdicts(tmp_path / "a", CLAIM_06)[0].status == "supported"
    _seeds(tmp_path / "b", CLAIM_06.notebook, [0.0, 0.1, 0.0], quantity=CLAIM_06.quantity)
    assert _verdicts(tmp_path / "b", CLAIM_06)[0].status == "not supported"


def test_each_parameter_point_is_judged_apart(tmp_path):
    _seeds(tmp_path, CLAIM_02.notebook, [-5.0, -6.0, -5.5])
    cfg = profiles.resolve(CLAIM_02.notebook, "quick", results_dir=str(tmp_path), seed=0, sigma_m=0.5)
    results.record(cfg, {}, device="cpu", samples={CLAIM_02.quantity: [1.0]}, trained=(True, "ok"))
    statuses = sorted(v.status for v in _verdicts(tmp_path, CLAIM_02))
    assert statuses == ["not judged", "supported"]


def test_every_claim_names_a_catalogued_notebook_and_a_relation():
    names = set(profiles.notebook_names())
    assert all(c.notebook in names and c.relation in report.RELATIONS for c in report.CLAIMS)


def test_report_command_writes_the_file_with_every_run(tmp_path, capsys):
    _record(tmp_path, NB06, {"zero_forgetting_random_weights": True, "acc": 0.5})
    assert cli.main(["report", "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert f"## `{NB06}` — profile `smoke`" in text and "| `acc` | 0.5 |" in text
    assert "seeds 3; device `cpu`" in text and "torch" in text
    assert (
        "not judged: smoke profile" in text
        and "runs/06_random_weight_continual_learning/smoke/seed-3-" in text
    )
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
    assert recorded.startswith("- notebooks recorded: 1 (1 runs); not run: `00_overview`")
    assert f"`{other}`" in recorded


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


def _fake_run(notebook: str, metrics: dict, device: str = "cpu", torch_version: str = "2.5.0", **kw) -> dict:
    versions = {"python": "3.11.7", "torch": torch_version, "torchvision": "0.20.0"}
    return {
        "notebook": notebook,
        "profile": "quick",
        "seed": 0,
        "key": "abcd1234",
        "device": device,
        "versions": versions,
        "metrics": metrics,
        "samples": {},
        "training": None,
        "path": f"/r/runs/{notebook}/quick/seed-0-abcd1234.json",
        **kw,
    }


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
    text = report.render([_fake_run("07_modulation_families_compared", metrics)])
    assert "| task set | family | `accuracy` |" in text and "| `digits__synaptic__accuracy` |" not in text
    generic = report.render([_fake_run("99_other", {"a__b__c": 1})])
    assert "| group | variant | `c` |\n|---|---|---|\n| `a` | `b` | 1 |" in generic


def test_several_seeds_render_as_mean_sd_and_interval():
    runs = [_fake_run(NB06, {"acc": v}, seed=s) for s, v in enumerate([1.0, 2.0, 3.0])]
    text = report.render(runs)
    assert "seeds 0, 1, 2" in text and "| `acc` | 2 ± 1 [-0.4841, 4.484] |" in text


def test_run_section_names_devices_versions_and_counts_verdicts():
    runs = [
        _fake_run("02_stochastic_comodulation", {"extra_params_stochastic": 0}, "cpu"),
        _fake_run(NB06, {"zero_forgetting_random_weights": True}, "cuda:0", "2.6.0"),
    ]
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    run = report.render(runs, generated=when).split("## The papers' claims")[0]
    assert "- generated: 2024-01-02 03:04:05 UTC" in run
    assert (
        "- profile: `quick` (every recorded notebook)" in run
        and "- seeds: 0 (every recorded notebook)" in run
    )
    assert f"- device: `cpu` (`02_stochastic_comodulation`); `cuda:0` (`{NB06}`)" in run
    assert "torch 2.5.0, torchvision 0.20.0 (`02_stochastic_comodulation`); python 3.11.7, torch 2.6.0" in run
    n = len(report.CLAIMS)
    assert (
        f"- verdicts ({n}, one per claim and parameter point): 0 supported, 0 not supported, {n} not judged"
        in run
    )
