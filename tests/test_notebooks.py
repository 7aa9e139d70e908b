"""Notebooks: papermill smoke runs through the CLI, the committed notebooks' shape, crash safety.

nbval (see tests/README.md) re-executes the committed notebooks on their `quick` profile;
here each ready notebook runs once more on the tiny `smoke` profile with a non-default seed,
which checks parameter injection, the recorded results and the claims the notebook prints.
"""

import ast
import json
import pickle
import re
from pathlib import Path

import nbformat
import pytest

from neuromod_lib import cli, notebooks, profiles, results, tuning

READY = [nb.name for nb in notebooks.ready()]

#: The scientific claims each notebook computes, prints and records as booleans, that hold at any
#: scale (checked on the smoke runs too).
CLAIMS = {
    "00_overview": ["gain_keeps_width", "gain_keeps_decoding", "threshold_narrows"],
    "01_gain_modulation": [],
    "02_stochastic_comodulation": [],
    "03_architecture_study": [],
    "04_rnn_task_packing": [],
    "05_rnn_ambiguity_and_dynamics": [],
    "06_random_weight_continual_learning": ["zero_forgetting_random_weights"],
    "07_modulation_families_compared": ["families_forget_nothing"],
}


def _consistent_01(m: dict) -> None:
    assert m["gains_beat_head_only"] == (m["gain_minus_head_only_ci_high"] < 0)
    low, high = m["gain_minus_head_only_ci_low"], m["gain_minus_head_only_ci_high"]
    assert low <= m["gain_minus_head_only"] <= high
    diff = m["deterministic_gain_error"] - m["head_only_error"]
    assert abs(m["gain_minus_head_only"] - diff) <= 0.02
    assert 0 < m["gain_params_per_task"] < m["full_params_per_task"]


def _verdict(low: float, high: float) -> str:
    return "beats" if high < 0 else "loses" if low > 0 else "matches"


def _consistent_02(m: dict) -> None:
    assert m["extra_params_stochastic"] == 0, "stochastic comodulation must add no learnable parameter"
    diff = m["stochastic_gain_error"] - m["deterministic_gain_nonneg_error"]
    assert abs(m["stochastic_minus_deterministic"] - diff) <= 0.02
    low, high = m["stochastic_minus_deterministic_ci_low"], m["stochastic_minus_deterministic_ci_high"]
    assert low <= m["stochastic_minus_deterministic"] <= high
    assert m["stochastic_verdict"] == _verdict(low, high)
    for variant in ("stochastic_gain_routing", "stochastic_gain_plain_readout"):
        delta = m[f"{variant}_error"] - m["deterministic_gain_nonneg_error"]
        assert abs(m[f"{variant}_minus_deterministic"] - delta) <= 0.02
    for variant in ("stochastic_gain_signed", "stochastic_gain_zero_mean"):
        delta = m[f"{variant}_error"] - m["deterministic_gain_error"]
        assert abs(m[f"{variant}_minus_deterministic"] - delta) <= 0.02
    best = m["best_deterministic"]
    assert (
        abs(m["stochastic_minus_best_deterministic"] - (m["stochastic_gain_error"] - m[f"{best}_error"]))
        <= 0.02
    )
    low, high = (
        m["stochastic_minus_best_deterministic_ci_low"],
        m["stochastic_minus_best_deterministic_ci_high"],
    )
    assert m["stochastic_vs_best_deterministic_verdict"] == _verdict(low, high)


def _consistent_03(m: dict) -> None:
    backbones = [k.removesuffix("_head_only_error") for k in m if k.endswith("_head_only_error")]
    assert backbones
    for name in backbones:
        gains = {
            p: v
            for k, v in m.items()
            if k.startswith(f"{name}_gains_")
            and (p := k.removeprefix(f"{name}_gains_").removesuffix("_error"))
            and "_" not in p
        }
        # the best placement is chosen on validation: one of the placements, not the test minimum
        assert m[f"{name}_best_placement"] in gains
        low, high = m[f"{name}_gain_minus_head_only_ci_low"], m[f"{name}_gain_minus_head_only_ci_high"]
        assert low <= m[f"{name}_gain_minus_head_only"] <= high
        for p in gains:
            plain, strict = (
                m.get(f"{name}_{p}_stochastic_verdict"),
                m.get(f"{name}_{p}_stochastic_verdict_bonferroni"),
            )
            # the corrected interval is wider: it can only withdraw a verdict, never make one
            assert plain is None or strict in (plain, "matches")


def _by_pathway(m: dict, prefix: str) -> dict:
    return {k.removeprefix(prefix): v for k, v in m.items() if k.startswith(prefix)}


def _significant(p: float, alpha: float = 0.05) -> bool | None:
    """Whether a p-value recorded to 4 decimals is below ``alpha`` (None too close to tell)."""
    return None if abs(p - alpha) < 1e-4 else p < alpha


def _consistent_04(m: dict) -> None:
    mean = _by_pathway(m, "mean_capacity_")
    assert m["saturated_cells"] >= 0 and m["budget_limited_cells"] >= 0
    for p, value in mean.items():
        sizes = [int(n) for n in re.findall(r"\d+", str(m[f"saturated_sizes_{p}"]))]
        assert abs(value - sum(m[f"capacity_N{n}_{p}"] for n in sizes) / len(sizes)) <= 0.011
    if "excitability_minus_synaptic_p" in m:
        said = _significant(m["excitability_minus_synaptic_p"])
        assert said is None or m["pathways_differ_in_capacity"] == said
    if "growth_p" in m:  # per replicate, averaged over pathways, one-sided
        said = _significant(m["growth_p"])
        assert said is None or m["capacity_grows_with_n"] == (said and m["growth_mean"] > 0)
    if "both_minus_excitability_p" in m and "both_minus_synaptic_p" in m:
        said = {p: _significant(m[f"both_minus_{p}_p"]) for p in ("excitability", "synaptic")}
        if None not in said.values():
            beats = all(s and m[f"both_minus_{p}_mean"] > 0 for p, s in said.items())
            assert m["both_beats_each_single"] == beats


def _consistent_05(m: dict) -> None:
    tolerance = {k.removeprefix("tolerance_"): v for k, v in m.items()
                 if k.startswith("tolerance_") and not k.endswith("_p")}  # fmt: skip
    if tolerance:
        assert m["most_robust_to_mixture"] == max(tolerance, key=tolerance.get)
    for value in tolerance.values():
        assert 0.0 <= value <= 0.5
    if "ambiguity_test_p" in m:
        said = _significant(m["ambiguity_test_p"])
        assert said is None or m["pathways_differ_in_ambiguity"] == said
        assert m["ambiguity_ci_low"] <= m["ambiguity_ci_high"]
    assert m["n_replicates"] >= 0
    for p in tolerance:
        assert 0.0 <= m[f"performance_{p}"] <= 1.0


def _consistent_06(m: dict) -> None:
    from neuromod_lib.selection import SEARCH

    assert m["random_weights_forgetting"] == 0.0
    if m["hyperparameters_selected_on"] == "validation":
        for method, (field, grid) in SEARCH.items():
            if f"{method}_accuracy" in m:
                assert m[f"{method}_{field}"] in grid
    if "finetune_forgetting" in m:
        if m["finetune_forgetting"] != 0.0:  # rounded: a 0.0 may hide a tiny forgetting either way
            assert m["random_weights_forget_less_than_finetune"] == (m["finetune_forgetting"] > 0.0)
        ratio = m["finetune_bytes_per_task"] / m["random_weights_bytes_per_task"]
        assert m["storage_ratio_at_least_100"] == (ratio >= 100)
    dense = [m[f"{d}_accuracy"] for d in ("finetune", "ewc", "si") if f"{d}_accuracy" in m]
    if dense and abs(max(dense) - m["random_weights_accuracy"] - 5.0) > 0.02:
        assert m["random_weights_within_5_points_of_best_dense"] == (
            max(dense) - m["random_weights_accuracy"] <= 5.0
        )


def _table_07(m: dict) -> dict:
    """``{(task_set, family): {measure: value}}`` from notebook 07's ``set__family__measure`` keys."""
    table: dict = {}
    for key, value in m.items():
        if key.count("__") == 2:
            task_set, family, measure = key.split("__")
            table.setdefault((task_set, family), {})[measure] = value
    return table


def _consistent_07(m: dict) -> None:
    from neuromod_lib.families import FAMILIES

    table = _table_07(m)
    assert table
    sets = {s for s, _ in table}
    modulated = {k: v for k, v in table.items() if k[1] in FAMILIES}
    forgetting = [v["forgetting"] for v in modulated.values() if "forgetting" in v]
    assert m["families_forget_nothing"] == (bool(forgetting) and all(f == 0.0 for f in forgetting))
    finetune = [v["forgetting"] for k, v in table.items() if k[1] == "finetune"]
    if finetune and min(finetune) != 0.0:  # rounded: 0.0 may hide a tiny forgetting
        assert m["finetune_forgets"] == (min(finetune) > 0)
    best = {}
    for s in sets:
        accuracy = {f: v["accuracy"] for (t, f), v in modulated.items() if t == s}
        assert accuracy[m[f"most_accurate_{s}"]] == max(accuracy.values())
        best[s] = m[f"most_accurate_{s}"]
        for need in ("ambiguity", "noise"):  # ranked over three seeds (not in the record): one family or none
            named = m.get(f"most_robust_{need}_{s}", "none")
            assert named == "none" or named in accuracy
    assert m["one_family_most_accurate"] == (len(set(best.values())) == 1)
    for (_, family), v in table.items():  # a family stores at least what it learns per task (float32)
        if family in FAMILIES:
            assert v["bytes_per_task"] >= 4 * v["params_per_task"] > 0
        for need in ("ambiguity", "noise"):
            assert v.get(need, 0.0) >= 0.0


#: What each notebook's printed conclusions must agree with, whatever the numbers are.
CONSISTENT = {
    "01_gain_modulation": _consistent_01,
    "02_stochastic_comodulation": _consistent_02,
    "03_architecture_study": _consistent_03,
    "04_rnn_task_packing": _consistent_04,
    "05_rnn_ambiguity_and_dynamics": _consistent_05,
    "06_random_weight_continual_learning": _consistent_06,
    "07_modulation_families_compared": _consistent_07,
}


def _shown_markdown(nb) -> str:
    """Everything the notebook's code cells rendered as Markdown (its tables and computed answers)."""
    return "\n".join(
        o.data["text/markdown"]
        for c in _code_cells(nb)
        for o in c.outputs
        if o.output_type in ("execute_result", "display_data") and "text/markdown" in o.get("data", {})
    )


def _yes(holds: bool) -> str:
    return "**yes**" if holds else "**no**"


def _answers_00(md: str, m: dict) -> None:
    for claim, words in tuning.CLAIMS.items():
        assert f"| {words} | {'yes' if m[claim] else 'no'} |" in md, claim


def _answers_01(md: str, m: dict) -> None:
    words = {"beats": "beat", "loses": "lose to", "matches": "neither beat nor lose to"}
    said = words[_verdict(m["gain_minus_head_only_ci_low"], m["gain_minus_head_only_ci_high"])]
    assert f"Deterministic gains **{said}** the head-only baseline" in md
    low, high = m["gain_minus_head_only_ci_low"], m["gain_minus_head_only_ci_high"]
    assert f"95 % CI [{low:+.2f}, {high:+.2f}]" in md
    errors = {k.removesuffix("_error"): v for k, v in m.items() if k.endswith("_error")}
    (lowest,) = re.findall(r"Lowest error: (\w+)\.", md)
    assert errors[lowest] == min(errors.values())


def _answers_02(md: str, m: dict) -> None:
    words = {"beats": "beats", "loses": "loses to", "matches": "neither beats nor loses to"}
    assert f"Stochastic comodulation (the paper's reading) **{words[m['stochastic_verdict']]}**" in md
    low, high = m["stochastic_minus_deterministic_ci_low"], m["stochastic_minus_deterministic_ci_high"]
    assert f"95 % CI [{low:+.2f}, {high:+.2f}] over {m['n_seeds']} seeds" in md
    saturated = "Every condition's validation error had saturated." in md
    assert saturated == m["budget_saturated"]
    if not saturated:
        pair = "had" if m["headline_saturated"] else "had **not**"
        assert f"The headline pair {pair} saturated." in md
    tags = m["modulator_tags_relevant_units"]
    assert re.search(rf"the modulator\? \*\*{'yes' if tags else '(no|not detectably)'}\*\*", md)


def _answers_03(md: str, m: dict) -> None:
    backbones = [k.removesuffix("_head_only_error") for k in m if k.endswith("_head_only_error")]
    assert backbones
    plural = {"beats": "beat", "matches": "match", "loses": "lose to"}
    for name in backbones:
        low, high = m[f"{name}_gain_minus_head_only_ci_low"], m[f"{name}_gain_minus_head_only_ci_high"]
        said = plural[_verdict(low, high)]
        assert (
            f"- {name}: best placement {m[f'{name}_best_placement']} (on validation); gains there {said} "
            f"the head alone: {m[f'{name}_gain_minus_head_only']:+.2f} points [{low:+.2f}, {high:+.2f}]."
        ) in md
    assert f"Best backbone for gain adaptation: {m['best_backbone']}." in md
    same = "the same" if m["same_best_placement"] else "not the same"
    assert f"The best placement is {same} for every backbone." in md


def _answers_04(md: str, m: dict) -> None:
    if not any(v for k, v in m.items() if k.startswith("saturated_sizes_")):
        assert "**No verdict**" in md
        return
    assert "Verdicts from saturated cells only (p Holm-adjusted over the three pathway comparisons)." in md
    if m.get("pathways_differ_in_capacity") is not None:
        said = "**a difference**" if m["pathways_differ_in_capacity"] else "**no significant difference**"
        start = f"tasks solved by networks of the same start: {m['excitability_minus_synaptic_mean']:+.3f}"
        assert start in md
        assert said in md
    if m.get("capacity_grows_with_n") is not None:
        assert f"rises with N: {_yes(m['capacity_grows_with_n'])}." in md
    if m.get("both_beats_each_single") is not None:
        assert f"Both pack more than each: {_yes(m['both_beats_each_single'])};" in md


def _md_rows(md: str, header: str) -> dict[str, list[str]]:
    """The Markdown table whose header starts with ``| header |``: first cell of each row -> the others."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0]] = cells[1:]
    return rows


def _answers_05(md: str, m: dict) -> None:
    if m["most_robust_to_mixture"] == "none":  # no network solved its tasks (the smoke runs)
        assert "**No verdict**" in md
        return
    assert f"Highest mean tolerance: **{m['most_robust_to_mixture']}**;" in md
    for key, what in (
        ("ambiguity", "ambiguity tolerance"),
        ("noise", "performance kept under context noise"),
    ):
        if f"pathways_differ_in_{key}" not in m:
            assert f"Excitability − synaptic, {what}" not in md
            continue
        said = "**a difference**" if m[f"pathways_differ_in_{key}"] else "**no significant difference**"
        (line,) = [x for x in md.splitlines() if x.startswith(f"- Excitability − synaptic, {what}: ")]
        assert line.endswith(f": {said}.")
        if f"both_most_robust_to_{key}" in m:
            assert f"both most robust: {_yes(m[f'both_most_robust_to_{key}'])}." in md


def _answers_06(md: str, m: dict) -> None:
    for claim in (
        "zero_forgetting_random_weights",
        "random_weights_within_5_points_of_best_dense",
        "random_weights_forget_less_than_finetune",
        "storage_ratio_at_least_100",
    ):
        if claim in m:
            assert f"| `{claim}` | {'yes' if m[claim] else 'no'} |" in md, claim
    assert "random weights: forgetting 0.000000, every column constant: True" in md
    table = _md_rows(md, "method | avg acc %")
    assert abs(float(table["random_weights"][0]) - m["random_weights_accuracy"]) <= 0.051
    if "random_weights_within_5_points_of_best_dense" in m:
        (reached,) = re.findall(r"Random weights reach ([\d.]+)% on average", md)
        assert abs(float(reached) - m["random_weights_accuracy"]) <= 0.051


def _answers_07(md: str, m: dict) -> None:
    one = "yes" if m["one_family_most_accurate"] else "no"
    assert f"- One family is the most accurate on every task set: **{one}**." in md
    if m["families_forget_nothing"]:
        assert "Modulation families: largest forgetting 0.00 points; every column constant: True." in md
    needs = _md_rows(md, "need")
    sets = [k.removeprefix("most_accurate_") for k in m if k.startswith("most_accurate_")]
    header = next(line for line in md.splitlines() if line.startswith("| need |"))
    columns = [c.strip() for c in header.strip("|").split(" | ")][1:]
    for s in sets:
        cells = dict(zip(columns, needs["accuracy"], strict=True))
        assert m[f"most_accurate_{s}"] in cells[s].split(", ")
        for need, key in (
            ("robust to an ambiguous context", "ambiguity"),
            ("robust to a noisy context", "noise"),
        ):
            if f"most_robust_{key}_{s}" in m:
                shown = dict(zip(columns, needs[need], strict=True))[s]
                named = m[f"most_robust_{key}_{s}"]
                assert shown == ("no family qualifies" if named == "none" else ", ".join(named.split(",")))
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| task set | family | accuracy % |"))
    shown = 0
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        task_set, family, accuracy, *_ = (c.strip() for c in line.strip("|").split(" | "))
        assert abs(float(accuracy) - m[f"{task_set}__{family}__accuracy"]) <= 0.051  # shown to 1 decimal
        shown += 1
    assert shown == len([k for k in m if k.endswith("__accuracy")]), "every row of the comparison is shown"


#: What each notebook's rendered answer (Markdown) must say, given its recorded metrics.
ANSWERS = {
    "00_overview": _answers_00,
    "01_gain_modulation": _answers_01,
    "02_stochastic_comodulation": _answers_02,
    "03_architecture_study": _answers_03,
    "04_rnn_task_packing": _answers_04,
    "05_rnn_ambiguity_and_dynamics": _answers_05,
    "06_random_weight_continual_learning": _answers_06,
    "07_modulation_families_compared": _answers_07,
}


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # an unquoted string, e.g. a placement name


def _printed_metrics(nb) -> dict:
    """The metrics the notebook's last code cell printed (``k=v, ...``), parsed back to values."""
    text = "".join(o.get("text", "") for o in _code_cells(nb)[-1].outputs).strip().splitlines()[-1]
    return {k: _value(v) for k, v in (item.split("=", 1) for item in text.split(", "))}


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _parameters_cell(nb):
    cells = [c for c in _code_cells(nb) if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged 'parameters'"
    return cells[0]


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Every ready notebook executed once through the CLI on the smoke profile, seed 1."""
    root = tmp_path_factory.mktemp("smoke")
    status = cli.main(
        [
            "run",
            "all",
            "--profile",
            "smoke",
            "-p",
            "seed=1",
            "--output-dir",
            str(root / "nb"),
            "--results-dir",
            str(root / "results"),
        ]
    )
    return status, root


def test_every_catalogued_notebook_has_a_spec_and_every_spec_a_notebook():
    files = {p.stem for p in notebooks.NOTEBOOK_DIR.glob("*.ipynb")}
    assert files == set(READY) == set(profiles.notebook_names()) == set(CLAIMS)
    assert files <= {nb.name for nb in notebooks.CATALOGUE}


@pytest.mark.parametrize("name", READY)
def test_parameters_cell_is_generated_from_the_spec(name):
    """Declared once: the parameters cell is :func:`profiles.parameters_cell` (types and help for
    ``papermill --help-notebook``): ``profile`` and the parameters users change most
    (:data:`profiles.SHOWN`, every one a declared parameter), each ``None`` (the profile's value)."""
    nb = nbformat.read(notebooks.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    source = _parameters_cell(nb).source
    assert source == profiles.parameters_cell(name)
    assigned = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign), "the parameters cell holds only assignments"
        assigned[node.targets[0].id] = ast.literal_eval(node.value)
    assert assigned == {"profile": profiles.DEFAULT_PROFILE, **dict.fromkeys(profiles.SHOWN[name])}
    assert set(profiles.SHOWN[name]) <= set(profiles.spec(name))


def test_papermill_reads_the_parameters_types_and_help():
    import papermill as pm

    params = pm.inspect_notebook(str(notebooks.NOTEBOOK_DIR / "05_rnn_ambiguity_and_dynamics.ipynb"))
    assert params["pathways"]["inferred_type_name"] == "list[str]"
    assert (
        params["n_neurons"]["inferred_type_name"] == "int" and params["n_neurons"]["help"] == "network size N"
    )


@pytest.mark.parametrize("name", READY)
def test_committed_notebook_is_executed_clean_and_tidy(name):
    nb = nbformat.read(notebooks.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    assert nb.metadata.kernelspec.name == "python3" and nb.metadata.language_info.name == "python"
    cells = _code_cells(nb)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), "not executed top to bottom"
    for cell in cells:
        assert all(out.output_type != "error" for out in cell.outputs)
        assert not any(out.get("name") == "stderr" for out in cell.outputs), cell.source[:60]
        assert "execution" not in cell.metadata and "papermill" not in cell.metadata
        if "interact" in cell.source or "_widget(" in cell.source:
            assert cell.source.startswith("# NBVAL_IGNORE_OUTPUT"), "widget cells must be marked for nbval"
    assert "start_time" not in nb.metadata.get("papermill", {})
    assert any(o.output_type == "display_data" and "image/png" in o.data for c in cells for o in c.outputs)


def test_smoke_runs_succeed_and_record_results(smoke_runs):
    status, root = smoke_runs
    assert status == 0
    for name in READY:
        out = nbformat.read(root / "nb" / f"{name}.ipynb", as_version=4)
        assert all(o.output_type != "error" for c in _code_cells(out) for o in c.outputs)
        injected = [c for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and 'profile = "smoke"' in injected[0].source
        expected = profiles.resolve(name, "smoke", seed=1, results_dir=str(root / "results"))
        record = json.loads(results.run_path(root / "results", expected).read_text())
        assert record["profile"] == "smoke" and record["seed"] == 1
        assert record["parameters"] == {k: v for k, v in expected.items() if k not in ("notebook", "profile")}
        for claim in CLAIMS.get(name, []):
            assert record["metrics"][claim] is True, f"{name}: {claim} does not hold on the smoke profile"
        if name in CONSISTENT:
            CONSISTENT[name](record["metrics"])
        if name in ANSWERS:
            ANSWERS[name](_shown_markdown(out), record["metrics"])
    assert not (root / "results" / "summary.md").exists(), "an ad-hoc run must not write a summary"
    report = (root / "results" / "report.md").read_text()
    assert "| supported |" not in report and "| not supported" not in report, "a smoke run was judged"


def test_failed_run_keeps_the_target_and_the_partial_notebook(tmp_path, stand_in_overview):
    stand_in_overview("raise RuntimeError('boom')")
    target = tmp_path / "out" / "00_overview.ipynb"
    target.parent.mkdir()
    target.write_text("precious executed notebook")
    argv = ["run", "00", "--output-dir", str(target.parent), "--results-dir", str(tmp_path / "res")]
    status = cli.main(argv)
    assert status == 1
    assert target.read_text() == "precious executed notebook"
    partial = nbformat.read(tmp_path / "res" / "failed" / "00_overview.ipynb", as_version=4)
    assert "boom" in json.dumps(partial.cells[-1].outputs)
    assert sorted(p.name for p in target.parent.iterdir()) == ["00_overview.ipynb"], "temporary files left"


def test_tidy_strips_timestamps_but_keeps_outputs():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.metadata["papermill"] = {"start_time": "t", "duration": 1.0, "parameters": {"seed": 1}}
    nb.cells[0].metadata.update({"execution": {"iopub.status.busy": "t"}, "papermill": {"duration": 2.0}})
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="hi")]
    tidy = notebooks.tidy(nb)
    assert tidy.metadata.papermill == {"parameters": {"seed": 1}}
    assert tidy.cells[0].metadata == {} and tidy.cells[0].outputs[0].text == "hi"


def test_injected_parameters_only_what_differs(tmp_path):
    nb = notebooks.CATALOGUE[0]
    default_results = (notebooks.NOTEBOOK_DIR / profiles.default_results_dir()).resolve()
    assert notebooks.injected_parameters(nb, "quick", {}, default_results) == {}
    params = notebooks.injected_parameters(nb, "paper", {"seed": 2}, tmp_path)
    assert params == {"seed": 2, "profile": "paper", "results_dir": str(Path(tmp_path).resolve())}


def _widget_notebook(root_id: str, child_id: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("w", id="cell-1")])
    view = {
        "application/vnd.jupyter.widget-view+json": {
            "model_id": root_id,
            "version_major": 2,
            "version_minor": 0,
        },
        "text/plain": "VBox()",
    }
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data=view)]
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {
            "state": {
                child_id: {"model_name": "FloatSliderModel", "state": {"value": 1.5}},
                root_id: {"model_name": "VBoxModel", "state": {"children": [f"IPY_MODEL_{child_id}"]}},
            },
            "version_major": 2,
            "version_minor": 0,
        }
    }
    return nb


def test_tidy_renumbers_widget_ids_deterministically():
    a = notebooks.tidy(_widget_notebook("f" * 32, "a" * 32))
    b = notebooks.tidy(_widget_notebook("1234abcd" * 4, "9" * 32))
    assert nbformat.writes(a) == nbformat.writes(b)
    state = a.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    root, child = f"{1:032x}", f"{2:032x}"
    assert a.cells[0].outputs[0].data["application/vnd.jupyter.widget-view+json"]["model_id"] == root
    assert state[root]["state"]["children"] == [f"IPY_MODEL_{child}"]
    assert state[child]["state"]["value"] == 1.5


@pytest.mark.parametrize("name", sorted(CONSISTENT))
def test_committed_conclusions_agree_with_their_numbers(name):
    nb = nbformat.read(notebooks.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    CONSISTENT[name](_printed_metrics(nb))


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_committed_answers_say_what_their_numbers_say(name):
    """The answers a notebook renders (Markdown, computed by the library) agree with its record."""
    nb = nbformat.read(notebooks.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    ANSWERS[name](_shown_markdown(nb), _printed_metrics(nb))


def test_committed_overview_claims_hold():
    nb = nbformat.read(notebooks.NOTEBOOK_DIR / "00_overview.ipynb", as_version=4)
    metrics = _printed_metrics(nb)
    assert all(metrics[claim] is True for claim in CLAIMS["00_overview"])


def _run_paper(name: str, tmp_path, overrides: list[str]) -> dict:
    """Run ``name`` with ``--profile paper`` and the ``-p`` ``overrides`` through the CLI; its record.

    The conclusions the notebook printed are checked against its own numbers (``CONSISTENT``).
    """
    argv = ["run", name, "--profile", "paper", "--output-dir", str(tmp_path / "nb")]
    argv += ["--results-dir", str(tmp_path / "results")]
    for pair in overrides:
        argv += ["-p", pair]
    assert cli.main(argv) == 0
    (record,) = results.load_runs(tmp_path / "results")
    assert record["profile"] == "paper"
    CONSISTENT[name](record["metrics"])
    return record


PAPER_RUNS = {
    "01_gain_modulation": ("celeba", ["backbone=resnet18", "n_tasks=2"]),
    "03_architecture_study": (
        "cifar100",
        ["backbones=resnet18", "placements=late", "n_pretrain=2", "n_tasks=2"],
    ),
}


@pytest.mark.parametrize("name", sorted(PAPER_RUNS))
def test_paper_profile_runs_end_to_end_on_fixture_data(name, tmp_path):
    """The paper profile's real-data path (torchvision CelebA / CIFAR-100, ResNet-18) for a few
    steps on fixture files in the real formats (MD5 check off: fixtures cannot match it)."""
    from test_data_vision import cifar_pickle, write_celeba

    dataset, extra = PAPER_RUNS[name]
    root = tmp_path / "data"
    if dataset == "celeba":
        write_celeba(root)
    else:
        base = root / "cifar-100-python"
        base.mkdir(parents=True)
        meta = {
            "fine_label_names": [f"fine_{i}" for i in range(100)],
            "coarse_label_names": [f"coarse_{i}" for i in range(20)],
        }
        for split, fine, seed in (
            ("train", list(range(100)) * 2, 1),
            ("test", list(range(100)), 2),
            ("meta", None, 0),
        ):
            with open(base / split, "wb") as f:
                pickle.dump(meta if fine is None else cifar_pickle(fine, seed), f)
    overrides = [
        f"data_root={root}",
        "verify_data=false",
        "device=cpu",
        "n_images=0",
        "pretrain_epochs=1",
        "steps=4",
        "eval_every=2",
        "batch_per_task=2",
        "n_seeds=2",
        *extra,
    ]
    record = _run_paper(name, tmp_path, overrides)
    assert record["parameters"]["dataset"] == dataset


#: The paper profile of the RNN notebooks (Yang et al.'s 20 ms steps, softplus, 32-unit rings),
#: shrunk to a few steps and tiny networks: the same code path a GPU run takes.
PAPER_RNN = {
    "04_rnn_task_packing": ["sizes=8", "ks=1,2", "replicates=1"],
    "05_rnn_ambiguity_and_dynamics": [
        "n_neurons=8",
        "replicates=1",
        "n_lambdas=3",
        "sigmas=0,1",
        "fp_steps=20",
    ],
}


@pytest.mark.parametrize("name", sorted(PAPER_RNN))
def test_rnn_paper_profile_runs_end_to_end(name, tmp_path):
    overrides = [
        "device=cpu",
        "steps=10",
        "eval_every=5",
        "eval_trials=4",
        "final_trials=4",
        "batch=8",
        *PAPER_RNN[name],
    ]
    assert _run_paper(name, tmp_path, overrides)["parameters"]["dt"] == 20.0


def test_continual_paper_profile_runs_on_mnist_fixture_files(tmp_path):
    """Notebook 06's paper profile reads MNIST through torchvision (IDX fixture files the test writes)."""
    import numpy as np
    from test_data_sequences import write_idx_mnist

    rng = np.random.default_rng(0)
    for test, n in ((False, 60), (True, 20)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx_mnist(
            tmp_path / "data", (rng.random((n, 28, 28)) * 255).astype(np.uint8), labels, test=test
        )
    overrides = [f"data_root={tmp_path / 'data'}", "device=cpu", "n_tasks=2", "epochs=1", "expansion=1.0"]
    record = _run_paper(
        "06_random_weight_continual_learning", tmp_path, [*overrides, "methods=random_weights,finetune"]
    )
    assert record["parameters"]["benchmark"] == "permuted_mnist"


def test_families_paper_profile_runs_on_fixture_files(tmp_path):
    """Notebook 07's paper profile: CelebA (torchvision) features of a ResNet-18, rotated MNIST
    from IDX files and the paper RNN dynamics, each cut to a few steps (fixture files the test writes)."""
    import numpy as np
    from test_data_sequences import write_idx_mnist
    from test_data_vision import write_celeba

    root = tmp_path / "data"
    write_celeba(root)
    rng = np.random.default_rng(0)
    for test, n in ((False, 60), (True, 20)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx_mnist(root, (rng.random((n, 28, 28)) * 255).astype(np.uint8), labels, test=test)
    overrides = [
        f"data_root={root}", "verify_data=false", "device=cpu", "n_images=0", "pretrain_epochs=1",
        "n_attributes=2", "n_digit_tasks=2", "epochs=1", "digit_expansion=1.0", "rnn_neurons=8",
        "rnn_replicates=1", "rnn_steps=10", "families=deterministic_gain,synaptic,random_weights,finetune",
    ]  # fmt: skip
    record = _run_paper("07_modulation_families_compared", tmp_path, overrides)
    cells = _table_07(record["metrics"])
    assert {s for s, _ in cells} == {"attributes", "digits", "cognitive"}
    assert record["parameters"]["backbone"] == "resnet18"
    assert ("cognitive", "random_weights") not in cells  # no RNN form: skipped, not faked


@pytest.mark.parametrize("name", READY)
def test_papermill_parses_every_parameter_line(name):
    """papermill skips a line holding a second ``=``: every parameter must be listed by it."""
    import papermill as pm

    params = pm.inspect_notebook(str(notebooks.NOTEBOOK_DIR / f"{name}.ipynb"))
    assert set(params) == {"profile", *profiles.SHOWN[name]}


#: Notebooks whose logic, tables and verdicts live in the library, and the main figures each saves
#: beside its record (:func:`neuromod_lib.plots.save_figure`).
LIBRARY_ONLY = {
    "00_overview": ["gain_tuning", "threshold_tuning"],
    "01_gain_modulation": ["gain_response", "learning_curves"],
    "02_stochastic_comodulation": ["gain_distribution", "learning_curves", "paired_differences", "tagging"],
    "03_architecture_study": ["errors_by_placement", "stochastic_minus_deterministic"],
    "04_rnn_task_packing": ["capacity", "trial_output"],
    "05_rnn_ambiguity_and_dynamics": [
        "ambiguity_curves",
        "noise_curves",
        "fixed_point_directions",
        "state_space",
    ],
    "06_random_weight_continual_learning": ["random_weight_idea", "accuracy_matrices"],
    "07_modulation_families_compared": ["family_comparison", "context_curves", "accuracy_matrices_digits"],
}
#: a format spec that aligns a field (``{x:<13}``, ``{v:>10.2f}``): the mark of a table formatted by hand
_ALIGNED = re.compile(r"\{[^{}]*:[^{}]*[<>^]\d*[^{}]*\}")


@pytest.mark.parametrize("name", READY)
def test_no_cell_defines_a_function_or_formats_a_table_by_hand(name):
    nb = nbformat.read(notebooks.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    for cell in _code_cells(nb):
        tree = ast.parse(cell.source)
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda, ast.ClassDef))]
        assert not defined, f"a cell defines a function: {cell.source[:80]!r}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                printed = ast.get_source_segment(cell.source, node)
                assert not _ALIGNED.search(printed), f"a table formatted by hand: {printed[:80]!r}"


def test_aligned_format_specs_are_recognised():
    assert _ALIGNED.search('print(f"{name:<13}{v:>10.2f}")') and _ALIGNED.search('f"{x:^8}"')
    assert not _ALIGNED.search('print(f"{v:.2f} and {n:,} {s!r}")')


@pytest.mark.parametrize("name", sorted(LIBRARY_ONLY))
def test_main_figures_are_saved_beside_the_record(smoke_runs, name):
    _, root = smoke_runs
    cfg = profiles.resolve(name, "smoke", seed=1, results_dir=str(root / "results"))
    folder = results.figure_dir(cfg)
    assert folder.parent.parent == results.run_path(root / "results", cfg).parent
    saved = sorted(p.name for p in folder.iterdir())
    assert saved == sorted(f"{f}.{ext}" for f in LIBRARY_ONLY[name] for ext in ("png", "svg"))
