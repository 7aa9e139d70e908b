"""Every figure the notebooks draw, one function per figure.

Each function computes what it shows from the library (never from numbers typed in), builds
a :class:`matplotlib.figure.Figure` with ``plt.subplots`` and returns it. Nothing here calls
``plt.show()`` or closes a figure: the caller (a notebook cell, a widget in
:mod:`neuromod_lib.widgets`, a test) decides. Axis limits that a slider moves through are
fixed, so that two settings can be compared by eye. Later notebooks add their figures here.

Legends and tick labels say what a line or bar *is* in words (:func:`label`: one mapping from
the library's keys, such as ``deterministic_gain``, to ``"deterministic gains"``), and
:func:`save_figure` writes a notebook's main figures as PNG and SVG beside its run record.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from . import tuning
from .modulation import exp_gain, stochastic_log_gain

__all__ = ["LABELS", "label", "save_figure", "tuning_figure"]

#: The words a figure shows for a key of the library (conditions of notebooks 01-03, context
#: pathways of 04-05, continual methods of 06, modulation families of 07). One mapping for every
#: figure; a key not listed reads with its underscores as spaces (:func:`label`).
LABELS: dict[str, str] = {
    # adaptation conditions (notebooks 01-03)
    "head_only": "head only",
    "deterministic_gain": "deterministic gains",
    "deterministic_gain_nonneg": "deterministic gains, c = w²",
    "stochastic_gain": "stochastic gains (m = 1 + ξ, c = w², guided)",
    "stochastic_gain_routing": "stochastic, routing pass only",
    "stochastic_gain_signed": "stochastic, signed couplings",
    "stochastic_gain_plain_readout": "stochastic gains, plain readout",
    "stochastic_gain_zero_mean": "stochastic, zero-mean m",
    "film": "FiLM",
    "se_gain": "squeeze-and-excitation gains",
    "full_finetune": "full fine-tuning",
    # context pathways of the RNNs (notebooks 04-05)
    "rule": "rule input",
    "excitability": "excitability",
    "synaptic": "synaptic",
    "both": "excitability + synaptic",
    # continual-learning methods and modulation families (notebooks 06-07)
    "random_weights": "random weights",
    "finetune": "fine-tuning",
    "ewc": "EWC",
    "si": "SI",
    "supermask": "supermasks",
    "joint": "joint training",
}


def label(key: str) -> str:
    """The words a figure shows for ``key`` (:data:`LABELS`; else the key with spaces for ``_``)."""
    return LABELS.get(key, str(key).replace("_", " "))


#: the formats :func:`save_figure` writes, and the resolution of the PNG
FIGURE_FORMATS: tuple[str, ...] = ("png", "svg")
FIGURE_DPI = 200
_FIGURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def save_figure(
    fig: Figure, cfg: Mapping[str, Any], name: str, *, formats: Sequence[str] = FIGURE_FORMATS
) -> list[Path]:
    """Write ``fig`` as ``<name>.png`` and ``<name>.svg`` beside the run record of ``cfg``; the paths.

    ``cfg``: the notebook's resolved config (:func:`neuromod_lib.profiles.resolve`); the files go to
    :func:`neuromod_lib.results.figure_dir` — ``<results_dir>/runs/<notebook>/<profile>/figures/
    seed-<seed>-<key>/`` beside ``seed-<seed>-<key>.json`` — so a run's figures sit with its numbers
    and another seed or parameter set never overwrites them. Each file is written to a temporary
    file and renamed (a reader never sees half a figure); the same figure gives the same bytes
    (no date in the SVG, fixed SVG ids). PNG at :data:`FIGURE_DPI` dpi, cropped like the inline
    backend (``bbox_inches="tight"``). The figure is not closed. ``ValueError`` for a ``name`` that
    is not a plain file stem (letters, digits, ``-``, ``_``) or an unknown format.
    """
    from .results import figure_dir
    from .storage import write_atomic

    if not isinstance(name, str) or not _FIGURE_NAME.fullmatch(name):
        raise ValueError(f"name={name!r} is not allowed; allowed: letters, digits, '-' and '_' (a file stem)")
    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats={list(formats)!r} is not allowed; allowed: some of {list(FIGURE_FORMATS)}")
    folder = figure_dir(cfg)
    paths = []
    for fmt in formats:
        options: dict[str, Any] = {"format": fmt, "bbox_inches": "tight"}
        if fmt == "png":
            options.update(dpi=FIGURE_DPI, metadata={"Software": None})
        else:
            options.update(metadata={"Date": None, "Creator": None})
        with plt.rc_context({"svg.hashsalt": name}):
            paths.append(write_atomic(folder / f"{name}.{fmt}", lambda f, o=options: fig.savefig(f, **o)))
    return paths


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


# ----------------------------------------------------------------------------- CNN adaptation


def image_grid(images: torch.Tensor, titles: list[str] | None = None, *, columns: int = 8) -> Figure:
    """uint8 images (N, 3, H, W) in a grid, each with an optional small title."""
    n = len(images)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].permute(1, 2, 0).numpy())
            if titles:
                ax.set_title(titles[i], fontsize=6)
    fig.tight_layout()
    return fig


def gain_figure(
    maps: torch.Tensor,
    modulated: torch.Tensor,
    probs: torch.Tensor,
    modulated_probs: torch.Tensor,
    names: list[str],
    channels: list[int],
    gains: list[float],
) -> Figure:
    """Feature maps of ``channels`` before/after their gains, and the task outputs before/after.

    ``maps``, ``modulated``: (len(channels), H, W) at the modulated site, for one image;
    ``probs``, ``modulated_probs``: (T,) probability of "attribute present" per task.
    """
    k = len(channels)
    fig = plt.figure(figsize=(1.7 * k + 5, 3.6))
    grid = fig.add_gridspec(2, k + 1, width_ratios=[1] * k + [2.6])
    vmax = max(maps.abs().max().item(), modulated.abs().max().item(), 1e-6)
    for i, (c, g) in enumerate(zip(channels, gains, strict=True)):
        for row, data in enumerate((maps, modulated)):
            ax = fig.add_subplot(grid[row, i])
            ax.imshow(data[i].numpy(), cmap="magma", vmin=0, vmax=vmax)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"ch {c}" + (f" x{g:.2f}" if row else ""), fontsize=8)
    ax = fig.add_subplot(grid[:, k])
    y = torch.arange(len(names)).float()
    ax.barh(y + 0.2, probs.numpy(), height=0.4, color="0.7", label="gain 1")
    ax.barh(y - 0.2, modulated_probs.numpy(), height=0.4, color="C3", label="modulated")
    ax.set_yticks(y.numpy(), names, fontsize=7)
    ax.set_xlim(0, 1)
    ax.axvline(0.5, color="k", lw=0.5, ls=":")
    ax.set_xlabel("P(attribute present)")
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("top: feature maps at gain 1; bottom: with the gains", fontsize=9)
    fig.tight_layout()
    return fig


def learning_curves(results: list, *, target: float | None = None) -> Figure:
    """Mean validation error over tasks vs training step, mean ± sd over seeds, one line per condition."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for r in results:
        per_seed = r.val_curve.mean(2)  # (P, S)
        mean, sd = per_seed.mean(1), per_seed.std(1) if per_seed.shape[1] > 1 else torch.zeros(len(per_seed))
        ax.plot(r.curve_steps, mean.numpy(), marker="o", ms=3, label=label(r.condition))
        ax.fill_between(r.curve_steps, (mean - sd).numpy(), (mean + sd).numpy(), alpha=0.15)
    if target is not None:
        ax.axhline(target, color="k", lw=0.6, ls=":", label=f"target {target:g}%")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation error (%), mean over tasks")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def relevance_scatter(relevance: torch.Tensor, weight: torch.Tensor, *, title: str = "") -> Figure:
    """Each last-layer unit's task relevance measured without the modulator (the accuracy drop when it
    is ablated) against the weight the modulator-guided readout gives it (one dot per unit, task and
    seed): if the modulator tags what the task needs, the dots rise to the right."""
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    ax.scatter(relevance.flatten().numpy(), weight.flatten().numpy(), s=4, alpha=0.3)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("unit relevance: accuracy drop when ablated (points)")
    ax.set_ylabel("modulator-guided readout weight")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def paired_differences(
    per_seed: dict[str, torch.Tensor], intervals: dict[str, tuple[float, float]]
) -> Figure:
    """A forest plot: per method, its per-seed differences to its baseline (dots) and the 95 %
    interval of their mean (bar); left of 0 the method wins."""
    names = list(per_seed)
    fig, ax = plt.subplots(figsize=(6.0, 0.5 + 0.45 * len(names)))
    for i, name in enumerate(names):
        low, high = intervals[name]
        values = per_seed[name].numpy()
        ax.plot([low, high], [i, i], color="C0", lw=2.5)
        ax.plot([values.mean()], [i], "o", color="C0", ms=6)
        ax.plot(values, [i] * len(values), "x", color="C1", ms=5, alpha=0.8)
    ax.axvline(0, color="k", lw=0.7)
    ax.set_yticks(range(len(names)), [label(n) for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("test error difference to its deterministic baseline (points); x: seeds")
    fig.tight_layout()
    return fig


def gain_distribution(
    couplings: list[float], sigma_m: float, *, mean: float = 1.0, n: int = 4000, seed: int = 0
) -> Figure:
    """Distribution of the stochastic gain exp(c m - sigma^2 c^2 / 2), m = mean + sigma xi, per
    coupling c: the mean gain stays exp(c * mean) while the spread — the 'tag' a unit carries —
    grows with c."""
    g = torch.Generator().manual_seed(seed)
    m = mean + torch.randn(n, generator=g) * sigma_m
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for c in couplings:
        gain = exp_gain(torch.ones(n, 1), stochastic_log_gain(torch.full((n, 1), float(c)), m, sigma_m))[:, 0]
        ax.hist(
            (gain / math.exp(c * mean)).numpy(),
            bins=60,
            range=(0, 3),
            histtype="step",
            lw=1.3,
            label=f"c={c:g}: mean gain {gain.mean():.2f} (exp(c·{mean:g}) = {math.exp(c * mean):.2f}), "
            f"sd/mean {gain.std() / gain.mean():.2f}",
        )
    ax.set_xlabel("gain / its mean exp(c·E[m])")
    ax.set_ylabel("samples")
    ax.set_title(f"m = {mean:g} + sigma_m xi, sigma_m = {sigma_m:g}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def heatmap(
    values: torch.Tensor,
    rows: list[str],
    columns: list[str],
    *,
    title: str,
    fmt: str = ".1f",
    labels: list[list[str]] | None = None,
    diverging: bool = False,
) -> Figure:
    """A labelled heatmap (e.g. error by backbone x gain placement). ``labels``: the text of each cell
    (default: the value in ``fmt``); ``diverging``: a red-blue scale centred on 0 (for differences)."""
    fig, ax = plt.subplots(figsize=(1.3 * len(columns) + 2.5, 0.6 * len(rows) + 1.5))
    bound = float(values.abs().max()) or 1.0
    scale = {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound} if diverging else {"cmap": "viridis_r"}
    im = ax.imshow(values.numpy(), aspect="auto", **scale)
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(columns)):
            text = labels[i][j] if labels is not None else format(values[i, j].item(), fmt)
            colour = "k" if diverging else "w"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8 if labels else 9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# --- recurrent networks (notebooks 04-05) ---------------------------------------------------
PATHWAY_COLOURS = {"rule": "0.45", "excitability": "tab:blue", "synaptic": "tab:orange", "both": "tab:green"}


def task_trials(batch, names: list[str], *, columns: int = 5) -> Figure:
    """One trial per task: inputs (fixation, ring 1, ring 2) above the target outputs, over time.

    ``batch``: a :class:`neuromod_lib.data.tasks.TrialBatch` of shape ``(len(names),)``.
    """
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.3 * rows), squeeze=False)
    n_in = batch.inputs.shape[-1]
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(names):
            continue
        picture = torch.cat(
            [batch.inputs[i], torch.full_like(batch.inputs[i][:, :1], math.nan), batch.targets[i]], dim=1
        )
        ax.imshow(picture.T.numpy(), aspect="auto", cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        ax.axhline(n_in, color="w", lw=0.8)
        ax.axvline(int(batch.response_on[i]) - 0.5, color="c", lw=0.8, ls="--")
        ax.set_title(names[i], fontsize=8)
    fig.suptitle(
        "inputs (top: fixation, ring 1, ring 2) and targets (bottom: fixation, response ring); "
        "dashed: go cue",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def capacity_figure(
    capacity: dict, sizes: list[int], pathways: list[str], *, max_k: int, limited: Iterable = ()
) -> Figure:
    """Packing capacity (largest K solved) vs network size N: mean over replicates, dots per replicate.

    ``limited``: the ``(N, pathway)`` whose capacity rests on a budget-limited cell (more training
    might change it): drawn hollow over a hatched band, and left out of the verdicts.
    """
    limited = set(limited)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    width = 0.06 * len(pathways)
    for j, p in enumerate(pathways):
        shift = (j - (len(pathways) - 1) / 2) * width / len(pathways)
        colour = PATHWAY_COLOURS.get(p)
        means = [sum(capacity[(n, p)]) / len(capacity[(n, p)]) for n in sizes]
        xs = [math.log2(n) + shift for n in sizes]
        ax.plot(xs, means, color=colour, label=label(p))
        for x, n, mean in zip(xs, sizes, means, strict=True):
            hollow = (n, p) in limited
            if hollow:
                ax.bar(x, max_k + 0.3, bottom=-0.3, width=width / len(pathways), fill=False, hatch="///",
                       edgecolor=colour, linewidth=0, alpha=0.6)  # fmt: skip
            ax.plot([x], [mean], marker="o", color=colour, mfc="white" if hollow else colour)
            ax.scatter([x] * len(capacity[(n, p)]), capacity[(n, p)], s=8, color=colour, alpha=0.5)
    ax.set_xticks([math.log2(n) for n in sizes], [str(n) for n in sizes])
    ax.set_ylim(-0.3, max_k + 0.3)
    ax.set_xlabel("neurons N")
    ax.set_ylabel("capacity: largest K with every task solved")
    title = "hatched, hollow: budget-limited (left out of the verdicts)" if limited else ""
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def trial_output(outputs: torch.Tensor, batch, index: int = 0, *, title: str = "") -> Figure:
    """A network's output on one trial against the target: fixation output, and the response ring.

    ``outputs`` ``(B, T, O)`` for the trials of ``batch`` ``(B,)``.
    """
    out, target = outputs[index], batch.targets[index]
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    t = torch.arange(out.shape[0]) * batch.config.dt
    axes[0].plot(t, target[:, 0], color="k", ls="--", label="target")
    axes[0].plot(t, out[:, 0], color="tab:red", label="network")
    axes[0].axhline(0.5, **_BASELINE)
    axes[0].set(xlabel="time (ms)", ylabel="fixation output", ylim=(-0.05, 1.05))
    axes[0].legend(fontsize=7)
    for ax, image, name in ((axes[1], target[:, 1:], "target ring"), (axes[2], out[:, 1:], "network ring")):
        ax.imshow(
            image.T.numpy(),
            aspect="auto",
            cmap="magma",
            vmin=0,
            vmax=1,
            origin="lower",
            extent=(0, float(t[-1]) + batch.config.dt, 0, 360),
        )
        ax.set(xlabel="time (ms)", ylabel="direction (deg)", title=name)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _nothing_to_show(text: str) -> Figure:
    """A small figure that says why it is empty (a run in which no network qualified)."""
    fig, ax = plt.subplots(figsize=(4, 1.2))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()
    return fig


def ambiguity_curves(
    lambdas,
    perf_a: torch.Tensor,
    perf_b: torch.Tensor,
    pathways: list[str],
    names: tuple[str, str],
    *,
    ylabel: str = "performance",
) -> Figure:
    """Performance on task A and task B under ``(1 - lam) e_A + lam e_B``, one panel per pathway.

    ``perf_a``/``perf_b`` ``(S, L)`` with network ``s`` of pathway ``pathways[s]``; mean ± sd over
    the networks of each pathway.
    """
    kinds = list(dict.fromkeys(pathways))
    if not kinds:
        return _nothing_to_show("no network to show (none solved its tasks)")
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.0 * len(kinds), 2.8), sharey=True, squeeze=False)
    lam = torch.as_tensor(list(lambdas))
    for ax, kind in zip(axes[0], kinds, strict=True):
        rows = [s for s, p in enumerate(pathways) if p == kind]
        for perf, name, style in ((perf_a, names[0], "-"), (perf_b, names[1], "--")):
            mean, sd = perf[rows].mean(0), perf[rows].std(0) if len(rows) > 1 else torch.zeros(len(lam))
            ax.plot(lam, mean, ls=style, color=PATHWAY_COLOURS.get(kind), label=f"on {name}")
            ax.fill_between(lam, mean - sd, mean + sd, color=PATHWAY_COLOURS.get(kind), alpha=0.15)
        ax.axvline(0.5, **_BASELINE)
        ax.set(title=label(kind), xlabel="λ (0: context A, 1: context B)", ylim=(-0.03, 1.03))
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def noise_curves(sigmas, perf: torch.Tensor, pathways: list[str]) -> Figure:
    """Performance vs the std of Gaussian noise added to the context, mean ± sd per pathway."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for kind in dict.fromkeys(pathways):
        rows = [s for s, p in enumerate(pathways) if p == kind]
        mean, sd = perf[rows].mean(0), perf[rows].std(0) if len(rows) > 1 else torch.zeros(perf.shape[1])
        ax.errorbar(
            list(sigmas),
            mean,
            yerr=sd,
            marker="o",
            ms=3,
            capsize=2,
            color=PATHWAY_COLOURS.get(kind),
            label=label(kind),
        )
    ax.set(xlabel="context noise σ", ylabel="performance (mean over tasks)", ylim=(-0.03, 1.03))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def state_space(panels: dict, lambdas, *, highlight: int | None = None) -> Figure:
    """Trajectories in each network's first two principal components, coloured by λ, with fixed points.

    ``panels``: ``{title: (trajectories (L, B, T, 2), points (L, P, 2), status (L, P))}`` with status
    2 = a stable fixed point (filled marker), 1 = an unstable one (open marker), 0 = the search
    did not converge (not drawn). ``highlight``: the λ index drawn boldly (the others faintly),
    for the slider. Blue: λ = 0 (context A); red: λ = 1 (context B).
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.3), squeeze=False)
    cmap = plt.get_cmap("coolwarm")
    lam = list(lambdas)
    for ax, (title, (traj, points, status)) in zip(axes[0], panels.items(), strict=True):
        for i, value in enumerate(lam):
            strong = highlight is None or i == highlight
            colour = cmap(value)
            for trial in traj[i]:
                ax.plot(
                    trial[:, 0],
                    trial[:, 1],
                    color=colour,
                    lw=0.9 if strong else 0.4,
                    alpha=0.9 if strong else 0.15,
                )
            if strong:
                stable, unstable = status[i] == 2, status[i] == 1
                ax.scatter(
                    points[i][stable, 0], points[i][stable, 1], s=40, color=colour, edgecolor="k", zorder=3
                )
                ax.scatter(
                    points[i][unstable, 0],
                    points[i][unstable, 1],
                    s=40,
                    facecolor="none",
                    edgecolor="k",
                    zorder=3,
                )
        ax.set(title=label(title), xlabel="PC 1", ylabel="PC 2")
    fig.suptitle(
        "blue: λ = 0 (context A) … red: λ = 1 (context B); filled: stable fixed points, open: unstable",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def fixed_point_directions(lambdas, directions: dict, *, names: tuple[str, str]) -> Figure:
    """The response direction read out at each stable fixed point vs λ, one colour per pathway.

    ``directions``: ``{pathway: list over λ of tensors of directions in degrees}``.
    """
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for kind, per_lambda in directions.items():
        for i, values in enumerate(per_lambda):
            ax.scatter(
                [lambdas[i]] * len(values),
                values,
                s=10,
                color=PATHWAY_COLOURS.get(kind),
                label=label(kind) if i == 0 else None,
                alpha=0.7,
            )
    ax.set(
        xlabel=f"λ (0: {names[0]}, 1: {names[1]})",
        ylabel="read-out direction (deg)",
        yticks=[0, 90, 180, 270, 360],
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- continual learning (notebook 06) -------------------------------------------------------
def _cell_text_colour(cmap, norm, value: float) -> str:
    """Black on a light cell, white on a dark one (by the cell colour's luminance)."""
    r, g, b, _ = cmap(norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def accuracy_matrices(results: dict, *, columns: int = 3, vmin: float = 50.0) -> Figure:
    """One heatmap per method of ``accuracy[i, j]``: accuracy (%) on task j after learning tasks 0..i.

    ``results``: ``{method: ContinualResult}`` (anything with an ``accuracy`` ``(T, T)`` in 0..1),
    at most ``columns`` panels a row. Cells not yet learned (j > i, NaN) stay blank; every panel
    shares one colour scale, ``vmin``..100 %, with its colourbar (lower accuracies get the darkest
    colour, the arrow at its foot says so). Each cell prints its accuracy in black or white,
    whichever reads on that cell's colour, in a size that fits the cell.
    """
    n = len(results)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    t_max = max((r.accuracy.shape[0] for r in results.values()), default=1)
    side = max(2.6, 0.3 * t_max + 1.2)  # inches per panel: about 0.3 in per cell
    fig, axes = plt.subplots(
        rows, columns, figsize=(side * columns + 0.9, side * rows), squeeze=False, constrained_layout=True
    )
    cmap, norm = plt.get_cmap("viridis"), plt.Normalize(vmin=vmin, vmax=100.0)
    fontsize = 8 if t_max <= 10 else max(4.5, 80 / t_max)
    image = None
    for ax, (method, result) in zip(axes.flat, results.items(), strict=False):
        acc = 100 * result.accuracy
        image = ax.imshow(acc.numpy(), cmap=cmap, norm=norm)  # below vmin: the darkest colour
        t = acc.shape[0]
        for i in range(t):
            for j in range(t):
                value = float(acc[i, j])
                if not math.isnan(value):
                    colour = _cell_text_colour(cmap, norm, value)
                    ax.text(j, i, f"{value:.0f}", ha="center", va="center", color=colour, fontsize=fontsize)
        ax.set_xticks(range(t))
        ax.set_yticks(range(t))
        ax.tick_params(labelsize=7)
        ax.set(title=label(method), xlabel="evaluated on task", ylabel="after learning task")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes.flat), shrink=0.8, extend="min")
        bar.set_label("test accuracy (%)")
    return fig


def random_weight_idea(
    expansion: torch.Tensor, h: torch.Tensor, contexts: torch.Tensor, *, shown: int = 60
) -> Figure:
    """The method at a glance: a corner of the fixed sparse expansion, the hidden activity of one
    input, and two tasks' contexts multiplying it (what the fixed readout then sees)."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0), gridspec_kw={"width_ratios": [1.2, 1, 1]})
    axes[0].imshow(expansion[:shown].numpy(), cmap="Greys", aspect="auto", interpolation="nearest")
    axes[0].set(
        title=f"fixed random expansion (first {shown} hidden units)", xlabel="input", ylabel="hidden unit"
    )
    units = torch.arange(min(shown, h.shape[-1]))
    axes[1].bar(units, h[: len(units)].numpy(), color="0.4")
    axes[1].set(title="hidden activity h (one input)", xlabel="hidden unit")
    for t, colour in zip(range(min(2, len(contexts))), ("tab:blue", "tab:orange"), strict=False):
        axes[2].plot(
            units, (contexts[t, : len(units)] * h[: len(units)]).numpy(), color=colour, label=f"task {t}"
        )
    axes[2].set(title="c_t * h: what the fixed readout sees", xlabel="hidden unit")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


#: one colour per modulation family (notebook 07), the finetune reference in grey
FAMILY_COLOURS = {
    "deterministic_gain": "#4c72b0",
    "stochastic_gain": "#8172b3",
    "excitability": "#dd8452",
    "synaptic": "#55a868",
    "random_weights": "#c44e52",
    "finetune": "0.55",
}
_FAMILY_MEASURES = (
    ("accuracy", "accuracy (%)"),
    ("bytes_per_task", "bytes stored\nper task"),
    ("ambiguity", "accuracy kept,\nambiguous context"),
    ("noise", "accuracy kept,\nnoisy context"),
)


def _over_seeds(rows: list, task_set: str, names: list[str], measure: str) -> dict[str, list[float]]:
    """``{family: [value per row]}`` of one measure on one task set (one row per seed; None left out)."""
    values: dict[str, list[float]] = {}
    for r in rows:
        if r.task_set == task_set and r.family in names and getattr(r, measure) is not None:
            values.setdefault(r.family, []).append(float(getattr(r, measure)))
    return values


def family_comparison(
    rows: list, *, task_sets: list[str] | None = None, families: list[str] | None = None
) -> Figure:
    """Bars per family: one column per task set, one row per measure of :class:`~neuromod_lib.families.Row`.

    ``rows`` may hold several rows of one family on one task set: one per seed. A bar is then the
    mean over the seeds, with an error bar of ± one sd and a dot per seed; with one seed it is
    that seed's value. Storage is on a log axis; robustness is the fraction of the clean accuracy
    kept. A measure that does not apply (None, e.g. the finetune reference's robustness) leaves its
    bar out. Each family keeps its place along a column, named in words (:func:`label`) under the
    bottom row.
    """
    sets = task_sets or list(dict.fromkeys(r.task_set for r in rows))
    names = families or list(dict.fromkeys(r.family for r in rows))
    present = {s: [f for f in names if any(r.task_set == s and r.family == f for r in rows)] for s in sets}
    widths = [max(2, len(present[s])) for s in sets]  # a column as wide as its families need
    fig, axes = plt.subplots(
        len(_FAMILY_MEASURES),
        len(sets),
        figsize=(0.62 * sum(widths) + 1.4, 1.8 * len(_FAMILY_MEASURES) + 1.3),
        squeeze=False,
        sharex="col",
        constrained_layout=True,
        gridspec_kw={"width_ratios": widths},
    )
    n_seeds = 1
    for col, task_set in enumerate(sets):
        place = {f: i for i, f in enumerate(present[task_set])}
        for row, (measure, name) in enumerate(_FAMILY_MEASURES):
            ax = axes[row, col]
            values = _over_seeds(rows, task_set, names, measure)
            shown = [f for f in present[task_set] if f in values]
            means = [sum(values[f]) / len(values[f]) for f in shown]
            ax.bar(
                [place[f] for f in shown],
                means,
                width=0.7,
                color=[FAMILY_COLOURS.get(f, "0.3") for f in shown],
            )
            spread = [f for f in shown if len(values[f]) > 1]
            top = max((v for f in shown for v in values[f]), default=0.0)
            if spread:
                sds = [torch.tensor(values[f]).std().item() for f in spread]
                mean_of = dict(zip(shown, means, strict=True))
                ax.errorbar([place[f] for f in spread], [mean_of[f] for f in spread], yerr=sds, fmt="none",
                            ecolor="black", elinewidth=1.2, capsize=4, capthick=1.2, zorder=3)  # fmt: skip
                for f in spread:
                    n_seeds = max(n_seeds, len(values[f]))
                    offsets = torch.linspace(-0.22, 0.22, len(values[f])).tolist()
                    ax.scatter([place[f] + o for o in offsets], values[f], s=12, color="0.15",
                               edgecolors="white", linewidths=0.6, zorder=4)  # fmt: skip
                top = max(top, *(mean_of[f] + sd for f, sd in zip(spread, sds, strict=True)))
            if measure == "bytes_per_task" and means:
                ax.set_yscale("log")
            elif measure != "accuracy":
                ax.set_ylim(0, max(1.1, 1.05 * top))  # a family may keep more than its clean accuracy
                ax.axhline(1.0, **_BASELINE)
            else:
                ax.set_ylim(0, 100)
            ax.set_xlim(-0.6, len(place) - 0.4)
            ax.tick_params(axis="y", labelsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
            if row == 0:
                ax.set_title(task_set)
        axes[-1, col].set_xticks(
            range(len(place)), [label(f) for f in place], rotation=35, ha="right", fontsize=9
        )
    if n_seeds > 1:
        fig.suptitle(f"bars: mean over {n_seeds} seeds; error bars: ± 1 sd; dots: single seeds", fontsize=9)
    return fig


def context_curves(rows: list, *, task_sets: list[str] | None = None) -> Figure:
    """Accuracy under the ambiguous context ``(1 - λ) e_a + λ e_b`` (top) and the noisy one (bottom),
    one column per task set, one line per family (from each row's ``curves``)."""
    sets = task_sets or list(dict.fromkeys(r.task_set for r in rows if r.curves))
    fig, axes = plt.subplots(2, len(sets), figsize=(3.3 * len(sets), 5.2), squeeze=False)
    for col, task_set in enumerate(sets):
        for r in rows:
            if r.task_set != task_set or not r.curves:
                continue
            colour = FAMILY_COLOURS.get(r.family, "0.3")
            axes[0, col].plot(r.curves["lambda"], [100 * v for v in r.curves["ambiguity"]], "o-", ms=3,
                              color=colour, label=label(r.family))  # fmt: skip
            axes[1, col].plot(r.curves["sigma"], [100 * v for v in r.curves["noise"]], "o-", ms=3,
                              color=colour, label=label(r.family))  # fmt: skip
        axes[0, col].axvline(0.5, **_BASELINE)
        axes[0, col].set(title=task_set, xlabel="λ (weight of the wrong task)", ylim=(0, 102))
        axes[1, col].set(xlabel="context noise σ", ylim=(0, 102))
    axes[0, 0].set_ylabel("accuracy (%)")
    axes[1, 0].set_ylabel("accuracy (%)")
    fullest = max(range(len(sets)), key=lambda c: len(axes[0, c].get_legend_handles_labels()[0]))
    axes[0, fullest].legend(fontsize=6)  # the column with the most families names them all
    fig.tight_layout()
    return fig
