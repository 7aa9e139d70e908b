"""The figures and widgets of notebooks 04-06 (RNNs, continual learning), headless under the Agg backend."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from neuromod_lib import plots, widgets  # noqa: E402
from neuromod_lib.data.tasks import TASKS, TaskConfig, generate, task_index  # noqa: E402
from neuromod_lib.models.rnn import ModulatedRNN  # noqa: E402
from neuromod_lib.multitask import network_trials, rnn_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TASK_CONFIG = TaskConfig(dt=100.0, n_ring=8)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_task_trials_draws_one_panel_per_task_with_its_go_cue():
    names = list(TASKS)
    batch = generate(task_index(names), TASK_CONFIG, torch.Generator().manual_seed(0))
    fig = plots.task_trials(batch, names)
    drawn = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == names
    for i, ax in enumerate(drawn):
        picture = ax.images[0].get_array()
        assert picture.shape == (TASK_CONFIG.n_inputs + 1 + TASK_CONFIG.n_outputs, batch.steps)
        cue = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]
        assert cue == [int(batch.response_on[i]) - 0.5]


def test_trial_output_plots_the_network_against_the_target():
    batch = generate(task_index(["go", "anti"]), TASK_CONFIG, torch.Generator().manual_seed(1))
    outputs = torch.rand(2, batch.steps, TASK_CONFIG.n_outputs)
    fig = plots.trial_output(outputs, batch, index=1, title="x")
    target, net = fig.axes[0].lines[:2]
    np.testing.assert_allclose(target.get_ydata(), batch.targets[1, :, 0].numpy())
    np.testing.assert_allclose(net.get_ydata(), outputs[1, :, 0].numpy())
    np.testing.assert_allclose(fig.axes[2].images[0].get_array(), outputs[1, :, 1:].T.numpy())


def _stack():
    """An untrained stack of two sizes (4 and 6, padded to 6), with the bookkeeping the widget reads."""
    pathways = ["rule", "both", "rule", "both"] * 2
    tasks = [("go",), ("go",), ("go", "anti"), ("go", "anti")] * 2
    sizes = [4] * 4 + [6] * 4
    model = ModulatedRNN(rnn_config(TASK_CONFIG, 6, 2), pathways, sizes=sizes, seeds=list(range(8))).eval()
    return model, SimpleNamespace(pathways=tuple(pathways), tasks=tasks)


def test_packing_widget_shows_the_chosen_network_task_and_size(caplog):
    model, result = _stack()
    w = widgets.packing_widget(model, result, TASK_CONFIG)
    n, pathway, task = (c for c in w.children if isinstance(c, ipywidgets.Dropdown))
    assert list(n.options) == [4, 6] and list(pathway.options) == ["rule", "both"]
    assert list(task.options) == ["go", "anti"]
    with caplog.at_level(logging.WARNING):
        n.value, pathway.value, task.value = 6, "rule", "anti"
        w.update()
    assert not [r for r in caplog.records if "Exception in interact callback" in r.getMessage()]
    fig = w.result
    assert fig._suptitle.get_text() == "N=6, rule pathway, task anti"
    batch, expected = network_trials(model, 6, "anti", 1, TASK_CONFIG)  # network 6: N = 6, rule, K = 2
    np.testing.assert_allclose(fig.axes[2].images[0].get_array(), expected[0, :, 1:].T.numpy())
    assert plt.get_fignums() == []


def _panels(lambdas: list[float]) -> dict:
    g = torch.Generator().manual_seed(0)
    traj = torch.randn(len(lambdas), 3, 5, 2, generator=g)
    points = torch.randn(len(lambdas), 4, 2, generator=g)
    status = torch.tensor([[2, 1, 0, 2]] * len(lambdas))
    return {"a": (traj, points, status), "b": (traj, points, status)}


def test_state_space_draws_stable_filled_unstable_open_and_skips_unconverged():
    lambdas = [0.0, 0.5, 1.0]
    fig = plots.state_space(_panels(lambdas), lambdas, highlight=1)
    ax = fig.axes[0]
    widths = [line.get_linewidth() for line in ax.lines]
    assert widths == [0.4] * 3 + [0.9] * 3 + [0.4] * 3  # only λ index 1 is bold
    stable, unstable = ax.collections
    assert len(stable.get_offsets()) == 2 and len(unstable.get_offsets()) == 1
    assert len(unstable.get_facecolor()) == 0 or unstable.get_facecolor()[0][3] == 0  # open markers


def test_lambda_widget_moves_the_highlight():
    lambdas = [0.0, 0.25, 0.5, 0.75, 1.0]
    w = widgets.lambda_widget(_panels(lambdas), lambdas)
    slider = next(c for c in w.children if isinstance(c, ipywidgets.FloatSlider))
    assert (slider.min, slider.max, slider.step, slider.value) == (0.0, 1.0, 0.25, 0.5)
    slider.value = 1.0
    w.update()
    widths = [line.get_linewidth() for line in w.result.axes[0].lines]
    assert widths[-3:] == [0.9] * 3 and set(widths[:-3]) == {0.4}
    assert plt.get_fignums() == []


def test_ambiguity_noise_capacity_and_direction_figures_show_their_data():
    lambdas = [0.0, 0.5, 1.0]
    pathways = ["rule", "both", "rule", "both"]
    on_a = torch.tensor([[1.0, 0.5, 0.0], [1.0, 0.6, 0.0], [0.8, 0.5, 0.2], [1.0, 0.4, 0.0]])
    fig = plots.ambiguity_curves(lambdas, on_a, 1 - on_a, pathways, ("go", "anti"))
    assert [ax.get_title() for ax in fig.axes] == ["rule input", "excitability + synaptic"]  # in words
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), on_a[[0, 2]].mean(0).numpy())
    fig = plots.noise_curves([0.0, 1.0, 2.0], on_a, pathways)
    assert len(fig.axes[0].containers) == 2
    capacity = {(8, "rule"): [1, 2], (8, "both"): [2, 2], (16, "rule"): [3, 3], (16, "both"): [4, 2]}
    fig = plots.capacity_figure(capacity, [8, 16], ["rule", "both"], max_k=4, limited={(16, "both")})
    means = [line.get_ydata() for line in fig.axes[0].lines if len(line.get_ydata()) > 1]
    np.testing.assert_allclose(means, [[1.5, 3.0], [2.0, 3.0]])
    hatched = [patch for patch in fig.axes[0].patches if patch.get_hatch()]
    assert len(hatched) == 1  # the one budget-limited capacity, drawn hatched
    hollow = [
        line
        for line in fig.axes[0].lines
        if len(line.get_ydata()) == 1 and line.get_markerfacecolor() == "white"
    ]
    assert [float(line.get_ydata()[0]) for line in hollow] == [3.0]
    fig = plots.ambiguity_curves(lambdas, on_a[:0], on_a[:0], [], ("go", "anti"))
    assert "none solved" in fig.axes[0].texts[0].get_text()
    fig = plots.fixed_point_directions(
        lambdas,
        {"rule": [torch.tensor([10.0]), torch.tensor([]), torch.tensor([170.0, 190.0])]},
        names=("go", "anti"),
    )
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 3


# --- continual learning (notebook 06) --------------------------------------------------------
def test_accuracy_matrices_show_each_method_and_leave_future_tasks_blank():
    acc = torch.tensor([[0.9, float("nan")], [0.8, 0.95]])
    results = {m: SimpleNamespace(accuracy=acc) for m in ("a", "b")}
    fig = plots.accuracy_matrices(results, columns=3)
    drawn = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == ["a", "b"]
    assert sorted(t.get_text() for t in drawn[0].texts) == ["80", "90", "95"]  # no label for the NaN cell


def test_continual_widget_trains_on_demand_once_per_choice():
    calls = []

    def compute(benchmark, n, method):
        calls.append((benchmark, n, method))
        return SimpleNamespace(accuracy=torch.eye(n))

    w = widgets.continual_widget(
        compute, ["split_digits", "permuted_digits"], ["random_weights", "ewc"], n_tasks=3
    )
    benchmark, method = (c for c in w.children if isinstance(c, ipywidgets.Dropdown))
    tasks = next(c for c in w.children if isinstance(c, ipywidgets.IntSlider))
    benchmark.value, tasks.value, method.value = "permuted_digits", 2, "ewc"
    w.update()
    assert calls[-1] == ("permuted_digits", 2, "ewc")
    assert w.result.axes[0].get_title() == "EWC" and w.result.axes[0].images[0].get_array().shape == (2, 2)
    assert plt.get_fignums() == []


def test_random_weight_idea_draws_the_expansion_activity_and_contexts():
    expansion = (torch.rand(80, 16) < 0.2).float()
    h, contexts = torch.rand(80), torch.randn(2, 80)
    fig = plots.random_weight_idea(expansion, h, contexts, shown=50)
    assert fig.axes[0].images[0].get_array().shape == (50, 16)
    np.testing.assert_allclose(fig.axes[2].lines[1].get_ydata(), (contexts[1, :50] * h[:50]).numpy())


# --- notebook 07 -----------------------------------------------------------------------------


def _family_rows():
    from neuromod_lib.families import Row

    curves = {
        "lambda": [0.0, 0.5, 1.0],
        "ambiguity": [0.9, 0.6, 0.2],
        "sigma": [0.0, 0.5],
        "noise": [0.9, 0.7],
    }
    return [
        Row("digits", "synaptic", 80.0, 100, 400, 0.1, 0.0, 0.7, 0.8, curves),
        Row("digits", "random_weights", 90.0, 50, 200, 0.1, 0.0, 0.9, 0.5, curves),
        Row("digits", "finetune", 85.0, 9000, 36000, 0.1, 6.0),
        Row("cognitive", "excitability", 95.0, 64, 256, 0.6, None, 0.9, 0.6, curves),
    ]


def test_family_comparison_draws_each_measure_and_skips_what_does_not_apply():
    fig = plots.family_comparison(_family_rows())
    axes = np.array(fig.axes).reshape(4, 2)
    assert [ax.get_title() for ax in axes[0]] == ["digits", "cognitive"]
    heights = [p.get_height() for p in axes[0, 0].patches]
    assert heights == [80.0, 90.0, 85.0]  # accuracy of every family on digits
    assert len(axes[2, 0].patches) == 2  # finetune has no ambiguity bar
    assert axes[1, 0].get_yscale() == "log"


def test_context_curves_and_families_widget_follow_the_choice(caplog):
    fig = plots.context_curves(_family_rows())
    assert len(fig.axes[0].lines) >= 2  # two families with curves on digits (+ the lambda = 0.5 line)
    panel = widgets.families_widget(_family_rows(), ["digits", "cognitive"], ["synaptic", "random_weights"])
    with caplog.at_level(logging.WARNING):
        panel.children[1].value = ("random_weights",)
    assert [p.get_height() for p in panel.result.axes[0].patches] == [90.0]
    panel.children[0].value = "cognitive"
    assert panel.result.axes[0].get_title() == "cognitive"
