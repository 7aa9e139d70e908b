"""Figures a paper would print: words in legends and tick labels, error bars over seeds, legible
accuracy matrices with a colourbar, and figures saved as PNG and SVG beside the run record."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from neuromod_lib import plots, profiles, results  # noqa: E402
from neuromod_lib.families import Row  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


# --- words, not keys -------------------------------------------------------------------------


def test_label_gives_words_for_keys_and_spaces_for_unknown_ones():
    assert plots.label("deterministic_gain") == "deterministic gains"
    assert plots.label("full_finetune") == "full fine-tuning"
    assert plots.label("random_weights") == "random weights"
    assert plots.label("some_new_method") == "some new method"
    assert all("_" not in words for words in plots.LABELS.values())


def test_learning_curve_legend_names_conditions_in_words():
    runs = [
        SimpleNamespace(condition=c, curve_steps=[0, 10, 20], val_curve=torch.rand(3, 2, 4))
        for c in ("head_only", "deterministic_gain", "stochastic_gain")
    ]
    fig = plots.learning_curves(runs, target=20.0)
    assert _legend(fig.axes[0]) == [
        "head only",
        "deterministic gains",
        "stochastic gains (m = 1 + ξ, c = w², guided)",
        "target 20%",
    ]


def test_pathway_and_family_legends_are_words():
    pathways = ["rule", "both", "rule", "both"]
    perf = torch.rand(4, 3)
    assert _legend(plots.noise_curves([0.0, 0.5, 1.0], perf, pathways).axes[0]) == [
        "rule input",
        "excitability + synaptic",
    ]
    capacity = {(8, "rule"): [1, 2], (8, "synaptic"): [2, 2]}
    fig = plots.capacity_figure(capacity, [8], ["rule", "synaptic"], max_k=3)
    assert _legend(fig.axes[0]) == ["rule input", "synaptic"]
    fig = plots.fixed_point_directions(
        [0.0, 1.0], {"both": [torch.tensor([10.0]), torch.tensor([])]}, names=("a", "b")
    )
    assert _legend(fig.axes[0]) == ["excitability + synaptic"]
    curves = {"lambda": [0.0, 1.0], "ambiguity": [0.9, 0.1], "sigma": [0.0, 1.0], "noise": [0.9, 0.5]}
    rows = [
        Row("digits", f, 80.0, 10, 40, 0.1, 0.0, 0.9, 0.5, curves) for f in ("random_weights", "synaptic")
    ]
    assert _legend(plots.context_curves(rows).axes[0]) == ["random weights", "synaptic"]


# --- notebook 07: error bars over seeds --------------------------------------------------------


def _seeded_rows() -> list[Row]:
    return [
        Row("digits", "synaptic", 80.0, 100, 400, 0.1, 0.0, 0.7, 0.8),
        Row("digits", "random_weights", 90.0, 50, 200, 0.1, 0.0, 0.9, 0.5),
        Row("digits", "finetune", 85.0, 9000, 36000, 0.1, 6.0),
        Row("digits", "synaptic", 90.0, 100, 400, 0.1, 0.0, 0.9, 0.6),  # a second seed
        Row("digits", "random_weights", 70.0, 50, 200, 0.1, 0.0, 0.7, 0.3),
        Row("digits", "finetune", 75.0, 9000, 36000, 0.1, 4.0),
        Row("cognitive", "excitability", 95.0, 64, 256, 0.6, None, 0.9, 0.6),  # one seed only
    ]


def test_family_comparison_draws_mean_bars_with_sd_error_bars_and_the_seeds():
    fig = plots.family_comparison(_seeded_rows())
    axes = np.array(fig.axes).reshape(4, 2)
    accuracy = axes[0, 0]
    assert [p.get_height() for p in accuracy.patches] == pytest.approx([85.0, 80.0, 80.0])  # means
    (bars,) = accuracy.containers[1:]  # after the bars: one errorbar container
    _, _, (whiskers,) = bars
    spans = [seg[1, 1] - seg[0, 1] for seg in whiskers.get_segments()]
    assert spans == pytest.approx([2 * 7.0711, 2 * 14.1421, 2 * 7.0711], abs=1e-3)  # ± 1 sd of each pair
    dots = np.concatenate([c.get_offsets() for c in accuracy.collections if len(c.get_offsets()) == 2])
    assert sorted(dots[:, 1].tolist()) == [70.0, 75.0, 80.0, 85.0, 90.0, 90.0]  # every seed shown
    assert "3 seeds" not in fig._suptitle.get_text() and "2 seeds" in fig._suptitle.get_text()
    assert not axes[0, 1].containers[1:], "one seed: no error bar"
    assert len(axes[2, 0].patches) == 2  # finetune has no robustness


def test_family_comparison_names_families_in_words_under_the_bottom_row_only():
    fig = plots.family_comparison(_seeded_rows())
    axes = np.array(fig.axes).reshape(4, 2)
    bottom = [t.get_text() for t in axes[-1, 0].get_xticklabels()]
    assert bottom == ["synaptic", "random weights", "fine-tuning"]
    assert all(t.get_rotation() > 0 for t in axes[-1, 0].get_xticklabels())
    assert not any(t.get_visible() and t.get_text() for t in axes[0, 0].get_xticklabels())
    assert [t.get_text() for t in axes[-1, 1].get_xticklabels()] == ["excitability"]


def test_family_comparison_keeps_robustness_above_one_in_view():
    rows = [Row("digits", "stochastic_gain", 30.0, 10, 40, 0.1, 0.0, 1.4, 0.9)]
    fig = plots.family_comparison(rows)
    assert fig.axes[2].get_ylim()[1] >= 1.4


# --- notebook 06: accuracy matrices ----------------------------------------------------------


def test_accuracy_matrices_share_a_colourbar_and_print_numbers_that_read_on_their_cell():
    acc = torch.tensor([[1.0, float("nan")], [0.5, 0.75]])
    fig = plots.accuracy_matrices({m: SimpleNamespace(accuracy=acc) for m in ("a", "b", "c")}, columns=2)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3
    (bar,) = [ax for ax in fig.axes if ax.get_ylabel() == "test accuracy (%)"]
    assert bar not in panels
    colours = {t.get_text(): t.get_color() for t in panels[0].texts}
    assert colours == {"100": "black", "50": "white", "75": colours["75"]}  # light cell: black; dark: white
    assert all(t.get_fontsize() >= 7 for t in panels[0].texts)
    assert panels[0].images[0].norm.vmin == 50 and panels[0].images[0].norm.vmax == 100


def test_accuracy_matrices_make_no_empty_panels_for_few_methods():
    fig = plots.accuracy_matrices({"a": SimpleNamespace(accuracy=torch.eye(3))})
    assert len([ax for ax in fig.axes if ax.images]) == 1
    assert not [ax for ax in fig.axes if not ax.images and ax.get_ylabel() != "test accuracy (%)"]


# --- saving ----------------------------------------------------------------------------------


@pytest.fixture
def cfg(tmp_path):
    return profiles.resolve("00_overview", "smoke", seed=3, results_dir=str(tmp_path / "res"))


def _figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0], label="a line")
    ax.legend()
    return fig


def test_save_figure_writes_png_and_svg_beside_the_run_record(cfg):
    paths = plots.save_figure(_figure(), cfg, "overview")
    record = results.run_path(cfg.results_dir, cfg)
    folder = record.parent / "figures" / record.stem
    assert folder == results.figure_dir(cfg)
    assert paths == [folder / "overview.png", folder / "overview.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths[1].read_text()
    assert not list(folder.glob(".*.tmp")), "temporary files left behind"


def test_save_figure_gives_the_same_bytes_for_the_same_figure(cfg):
    first = [p.read_bytes() for p in plots.save_figure(_figure(), cfg, "same")]
    second = [p.read_bytes() for p in plots.save_figure(_figure(), cfg, "same")]
    assert first == second


def test_save_figure_keeps_the_old_file_when_drawing_fails(cfg, monkeypatch):
    (png, _) = plots.save_figure(_figure(), cfg, "kept")
    before = png.read_bytes()
    fig = _figure()

    def broken(file, **options):
        file.write(b"half a figure")
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save_figure(fig, cfg, "kept")
    assert png.read_bytes() == before
    assert not list(png.parent.glob(".*.tmp"))


@pytest.mark.parametrize("name", ["", "../escape", "a b", "fig.png"])
def test_save_figure_refuses_a_name_that_is_not_a_file_stem(cfg, name):
    with pytest.raises(ValueError, match="name="):
        plots.save_figure(_figure(), cfg, name)


def test_save_figure_refuses_an_unknown_format(cfg):
    with pytest.raises(ValueError, match="formats="):
        plots.save_figure(_figure(), cfg, "x", formats=("jpeg",))


def test_paired_differences_draws_one_row_per_method_with_its_interval():
    per_seed = {"stochastic_gain": torch.tensor([-1.0, 0.5, 0.2]), "stochastic_gain_zero_mean": torch.ones(3)}
    fig = plots.paired_differences(
        per_seed, {"stochastic_gain": (-1.2, 0.9), "stochastic_gain_zero_mean": (1, 1)}
    )
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [plots.label("stochastic_gain"), plots.label("stochastic_gain_zero_mean")]
    bar = fig.axes[0].lines[0]
    assert list(bar.get_xdata()) == [-1.2, 0.9]


def test_gain_distribution_keeps_the_mean_gain_exp_c():
    fig = plots.gain_distribution([0.5, 1.0], 0.1, mean=1.0)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "exp(c·1) = 1.65" in texts[0] and "mean gain 1.65" in texts[0]
