"""Every figure the notebooks draw, one function per figure.

Each function computes what it shows from the library (never from numbers typed in), builds
a :class:`matplotlib.figure.Figure` with ``plt.subplots`` and returns it. Nothing here calls
``plt.show()`` or closes a figure: the caller (a notebook cell, a widget in
:mod:`neuromod_lib.widgets`, a test) decides. Axis limits that a slider moves through are
fixed, so that two settings can be compared by eye. Later notebooks add their figures here.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from . import tuning

__all__ = ["tuning_figure"]

_BASELINE = {"color": "0.6", "linestyle": "--", "linewidth": 1.0}


def _cyclic_colours(n: int) -> list:
    """``n`` evenly spaced hues on a circle (seaborn's husl if available, else matplotlib's hsv)."""
    try:
        import seaborn as sns
    except ImportError:  # seaborn only styles; the figures work without it
        return [plt.get_cmap("hsv")(i / n) for i in range(n)]
    return sns.color_palette("husl", n)


def _wrap_deg(angle_rad: torch.Tensor) -> torch.Tensor:
    """Radians to degrees wrapped into [-180, 180), the x-range of every direction axis."""
    return torch.remainder(torch.rad2deg(angle_rad) + 180.0, 360.0) - 180.0


def tuning_figure(
    gain: float = 1.0,
    threshold: float = 0.0,
    *,
    n_neurons: int = 16,
    kappa: float = 2.0,
    fraction: float = 1.0,
    stimulus_deg: float = 0.0,
) -> Figure:
    """Tuning curves and one population response, baseline vs modulated (two panels, ~9 x 3.5 in).

    The modulation sets ``gain`` and ``threshold`` on the ``round(fraction * n_neurons)``
    neurons of :func:`neuromod_lib.tuning.modulated_indices`; the others keep their baseline.

    * Left: tuning curves over directions -180..180 deg. Baseline dashed grey; modulated solid,
      coloured by preferred direction (untagged neurons faint). The title gives the mean width
      (FWHM) of the tagged neurons before -> after, computed by
      :func:`neuromod_lib.tuning.describe_modulation`.
    * Right: responses to the stimulus at ``stimulus_deg``, neurons sorted by preferred
      direction, with the stimulus and the population-vector estimates marked.

    The y-range is fixed at 0..3.15 (the top of the gain slider) unless ``gain`` is larger.
    """
    grid = torch.linspace(-math.pi, math.pi, 361, dtype=torch.float64)
    gains = tuning.modulation_vector(n_neurons, gain, fraction, neutral=1.0).double()
    thresholds = tuning.modulation_vector(n_neurons, threshold, fraction, neutral=0.0).double()
    baseline = tuning.tuning_curves(grid, n_neurons, kappa=kappa)
    modulated = tuning.tuning_curves(grid, n_neurons, gain=gains, threshold=thresholds, kappa=kappa)
    summary = tuning.describe_modulation(
        n_neurons=n_neurons, gain=gain, threshold=threshold, kappa=kappa, fraction=fraction
    )
    tagged = torch.zeros(n_neurons, dtype=torch.bool)
    tagged[tuning.modulated_indices(n_neurons, fraction)] = True
    ymax = 1.05 * max(3.0, float(gain))

    fig, (ax_curves, ax_pop) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    _draw_curves(ax_curves, grid, baseline, modulated, tagged)
    ax_curves.set(
        xlim=(-180, 180),
        ylim=(0, ymax),
        xticks=range(-180, 181, 90),
        xlabel="stimulus direction (deg)",
        ylabel="rate (a.u.)",
        title=f"Tuning: width {summary['baseline_width_deg']:.0f}° → {summary['modulated_width_deg']:.0f}°",
    )
    _draw_population(ax_pop, n_neurons, stimulus_deg, gains, thresholds, kappa)
    ax_pop.set(xlim=(-185, 185), ylim=(0, ymax), xticks=range(-180, 181, 90))
    n_tagged = int(summary["n_modulated"])
    fig.suptitle(
        f"gain ×{gain:.2f}, threshold {threshold:.2f}, {n_tagged}/{n_neurons} neurons modulated",
        fontsize="medium",
    )
    return fig


def _draw_curves(ax, grid: torch.Tensor, baseline: torch.Tensor, modulated: torch.Tensor, tagged) -> None:
    """Left panel: one dashed grey baseline and one coloured modulated line per neuron (column)."""
    x = torch.rad2deg(grid).numpy()
    n_neurons = baseline.shape[1]
    colours = _cyclic_colours(n_neurons)
    base_lines = ax.plot(x, baseline.numpy(), **_BASELINE)
    mod_lines = ax.plot(x, modulated.numpy(), linewidth=1.6)
    for line, colour, on in zip(mod_lines, colours, tagged.tolist(), strict=True):
        line.set(color=colour, alpha=1.0 if on else 0.35, linewidth=1.6 if on else 1.0)
    base_lines[0].set_label("baseline")
    mod_lines[0].set_label("modulated")
    ax.legend(loc="upper right", fontsize="small", frameon=False)


def _draw_population(
    ax, n_neurons: int, stimulus_deg: float, gains: torch.Tensor, thresholds: torch.Tensor, kappa: float
) -> None:
    """Right panel: the population response to one stimulus, and what a population vector reads out."""
    stimulus = torch.tensor([math.radians(stimulus_deg)], dtype=torch.float64)
    base = tuning.tuning_curves(stimulus, n_neurons, kappa=kappa)
    mod = tuning.tuning_curves(stimulus, n_neurons, gain=gains, threshold=thresholds, kappa=kappa)
    pref = _wrap_deg(tuning.preferred_directions(n_neurons, dtype=torch.float64))
    order = torch.argsort(pref)
    x = pref[order].numpy()
    ax.plot(x, base[0, order].numpy(), marker="o", markersize=3, **_BASELINE, label="baseline")
    ax.plot(x, mod[0, order].numpy(), marker="o", markersize=4, color="C0", linewidth=1.6, label="modulated")
    decoded = _wrap_deg(tuning.decode_direction(torch.cat([base, mod]), n_neurons))
    ax.axvline(float(_wrap_deg(stimulus)), color="black", linewidth=0.8, label="stimulus")
    ax.axvline(float(decoded[0]), color="0.6", linestyle=":", linewidth=1.5, label="decoded (baseline)")
    ax.axvline(float(decoded[1]), color="C3", linestyle=":", linewidth=1.5, label="decoded (modulated)")
    ax.set(
        xlabel="preferred direction (deg)",
        ylabel="rate (a.u.)",
        title=f"Stimulus {float(_wrap_deg(stimulus)):.0f}°: decoded {float(decoded[1]):.1f}°",
    )
    ax.legend(loc="upper right", fontsize="x-small", frameon=False)
