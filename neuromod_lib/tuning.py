"""A population of direction-tuned neurons whose gain and excitability a modulator changes.

This is the model behind the first figure of ``00_overview``. Each of ``N`` neurons has a
preferred direction ``pref`` (evenly spaced on the circle) and a von-Mises-shaped drive

    d(s) = exp(kappa * (cos(s - pref) - 1))          in (0, 1], 1 at the preferred direction,

which a neuromodulator changes in two ways:

* **gain** (multiplicative): ``r = gain * relu(d - threshold)``. Scaling every response by
  the same factor leaves the *shape* of each tuning curve, hence its width (selectivity) and
  the direction a population-vector read-out decodes, exactly unchanged.
* **threshold** (excitability, subtractive): the drive is shifted down before rectification.
  Only the top of the curve survives, so the tuning gets *narrower* and the rate lower.

Modulating only a subset of neurons (``fraction < 1``) previews later notebooks, where a
modulator tags some units and not others. Every number the notebook quotes is computed
here (``describe_modulation``), never typed in, and so are its table
(:func:`modulation_table`) and its three claims (:func:`modulation_claims`,
:func:`claims_table`).

Shapes: ``S`` stimuli, ``N`` neurons, ``B`` population patterns. Angles are radians unless a
name ends in ``_deg``. Everything is vectorised torch; there are no loops over neurons or
stimuli.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch
from torch import Tensor

from .tables import Table, table

__all__ = [
    "preferred_directions",
    "tuning_curves",
    "modulated_indices",
    "modulation_vector",
    "tuning_width",
    "decode_direction",
    "circular_error",
    "describe_modulation",
    "population_row",
    "modulation_table",
    "CLAIMS",
    "modulation_claims",
    "claims_table",
]


# --------------------------------------------------------------------------- validation


def _check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int, or raise ValueError naming ``name``, the value and the rule."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_scalar(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    allowed: str,
    high_open: bool = False,
    low_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in ``[low, high]``; ``low_open``/``high_open`` exclude the ends."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        value = float(value)
        above = value > low if low_open else value >= low
        ok = above and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def _per_neuron(
    name: str,
    value: float | Tensor,
    n_neurons: int,
    like: Tensor,
    *,
    high: float,
    high_open: bool,
    allowed: str,
) -> Tensor:
    """Validate a per-neuron parameter (a number or a tensor of shape (N,)) and return it as a tensor.

    The result is a 0-d tensor for a number (it broadcasts over neurons) or a tensor of shape
    ``(N,)`` on the dtype and device of ``like``.
    """
    if isinstance(value, Tensor) and value.ndim == 0:
        value = value.item()  # a 0-d tensor is a number
    if not isinstance(value, Tensor):
        return torch.tensor(
            _check_scalar(name, value, 0.0, high, high_open=high_open, allowed=allowed),
            dtype=like.dtype,
            device=like.device,
        )
    if value.shape != (n_neurons,):
        raise ValueError(
            f"{name} must be a number or a tensor of shape (n_neurons,) = ({n_neurons},), "
            f"got a tensor of shape {tuple(value.shape)}"
        )
    value = value.to(dtype=like.dtype, device=like.device)
    inside = (value >= 0) & ((value < high) if high_open else (value <= high)) & torch.isfinite(value)
    if not bool(inside.all()):
        bad = value[~inside][0].item()
        raise ValueError(f"{name} must be {allowed} for every neuron, got {bad!r}")
    return value


def _check_kappa(kappa: object) -> float:
    return _check_scalar("kappa", kappa, 0.0, math.inf, low_open=True, allowed="a finite number > 0")


def _check_fraction(fraction: object) -> float:
    return _check_scalar("fraction", fraction, 0.0, 1.0, allowed="a number with 0 <= fraction <= 1")


def _check_angles(name: str, stimuli: object) -> Tensor:
    """A 1-D floating tensor of angles (integer tensors are converted to the default dtype)."""
    if not isinstance(stimuli, Tensor) or stimuli.ndim != 1:
        shape = tuple(stimuli.shape) if isinstance(stimuli, Tensor) else type(stimuli).__name__
        raise ValueError(f"{name} must be a 1-D tensor of shape (S,) in radians, got {shape}")
    return stimuli if stimuli.is_floating_point() else stimuli.to(torch.get_default_dtype())


# --------------------------------------------------------------------------- the model


def preferred_directions(n_neurons: int, *, dtype: torch.dtype | None = None, device=None) -> Tensor:
    """Preferred directions of ``n_neurons`` neurons, evenly spaced on ``[0, 2*pi)``: shape (N,).

    Neuron ``i`` prefers ``2*pi*i/N``, so the population tiles the circle without a gap.
    """
    n_neurons = _check_int("n_neurons", n_neurons, 1)
    return torch.arange(n_neurons, dtype=dtype or torch.get_default_dtype(), device=device) * (
        2 * math.pi / n_neurons
    )


def tuning_curves(
    stimuli: Tensor,
    n_neurons: int,
    *,
    gain: float | Tensor = 1.0,
    threshold: float | Tensor = 0.0,
    kappa: float = 2.0,
) -> Tensor:
    """Responses of the population to each stimulus: shape (S, N).

    ``stimuli`` (S,) are directions in radians. The drive of neuron ``n`` to stimulus ``s`` is
    ``d = exp(kappa * (cos(s - pref_n) - 1))`` in (0, 1]; the response is
    ``r = gain * relu(d - threshold)``. ``gain`` (>= 0) and ``threshold`` (0 <= threshold < 1)
    are numbers (the same for every neuron) or tensors of shape (N,) (one value per neuron,
    e.g. from :func:`modulation_vector`). ``kappa`` (> 0) sets the baseline selectivity:
    larger is narrower.
    """
    stimuli = _check_angles("stimuli", stimuli)
    n_neurons = _check_int("n_neurons", n_neurons, 1)
    kappa = _check_kappa(kappa)
    gain = _per_neuron(
        "gain", gain, n_neurons, stimuli, high=math.inf, high_open=True, allowed="a number >= 0"
    )
    threshold = _per_neuron(
        "threshold",
        threshold,
        n_neurons,
        stimuli,
        high=1.0,
        high_open=True,
        allowed="a number with 0 <= threshold < 1",
    )
    pref = preferred_directions(n_neurons, dtype=stimuli.dtype, device=stimuli.device)
    drive = torch.exp(kappa * (torch.cos(stimuli[:, None] - pref[None, :]) - 1.0))
    return gain * torch.relu(drive - threshold)


def modulated_indices(n_neurons: int, fraction: float = 1.0) -> Tensor:
    """Indices of the ``round(fraction * N)`` neurons a modulator tags: shape (K,), int64, sorted.

    The subset is deterministic and evenly spread over the population (``floor(j * N / K)``
    for ``j < K``), so that the tagged neurons cover all preferred directions rather than a
    block of neighbours.
    """
    n_neurons = _check_int("n_neurons", n_neurons, 1)
    k = round(_check_fraction(fraction) * n_neurons)
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.div(torch.arange(k) * n_neurons, k, rounding_mode="floor")


def modulation_vector(n_neurons: int, value: float, fraction: float = 1.0, *, neutral: float) -> Tensor:
    """Per-neuron modulation: ``value`` on the tagged neurons, ``neutral`` elsewhere: shape (N,).

    The tagged neurons are :func:`modulated_indices` ``(n_neurons, fraction)``. Use
    ``neutral=1.0`` for a gain and ``neutral=0.0`` for a threshold, so untagged neurons keep
    their baseline response. The range of ``value`` is checked where it is used
    (:func:`tuning_curves`).
    """
    value = _check_scalar("value", value, -math.inf, math.inf, allowed="a finite number")
    neutral = _check_scalar("neutral", neutral, -math.inf, math.inf, allowed="a finite number")
    out = torch.full((_check_int("n_neurons", n_neurons, 1),), neutral, dtype=torch.get_default_dtype())
    out[modulated_indices(n_neurons, fraction)] = value
    return out


# --------------------------------------------------------------------------- measurements


def tuning_width(curves: Tensor, stimuli: Tensor) -> Tensor:
    """Full width at half maximum of each neuron's tuning curve, in degrees: shape (N,).

    ``curves`` (S, N) are responses on the grid ``stimuli`` (S,), which must be increasing and
    evenly spaced (radians; e.g. ``-pi + 2*pi*arange(S)/S``, a full circle without a repeated
    end point). The width is measured on the sampled grid: the number of samples at or above
    half of the neuron's peak times the grid spacing, so it is exact to within one grid step.
    A silent neuron (peak 0) has width 0; a width never exceeds 360.
    """
    stimuli = _check_angles("stimuli", stimuli)
    if curves.ndim != 2 or curves.shape[0] != stimuli.shape[0]:
        raise ValueError(
            f"curves must have shape (S, N) with S = len(stimuli) = {stimuli.shape[0]}, "
            f"got {tuple(curves.shape)}"
        )
    if stimuli.shape[0] < 2:
        raise ValueError(f"stimuli must hold at least 2 grid points, got {stimuli.shape[0]}")
    steps = torch.diff(stimuli)
    step = steps.mean()
    if not (step > 0 and torch.allclose(steps, step.expand_as(steps), rtol=1e-3, atol=1e-6)):
        raise ValueError("stimuli must be an increasing, evenly spaced grid (radians)")
    peak = curves.max(dim=0).values
    above = (curves >= peak / 2) & (peak > 0)
    width = above.sum(dim=0).to(curves.dtype) * torch.rad2deg(step).to(curves.dtype)
    return width.clamp(max=360.0)


def decode_direction(responses: Tensor, n_neurons: int) -> Tensor:
    """Population-vector estimate of the stimulus direction, radians in (-pi, pi]: shape (B,).

    ``responses`` (B, N) (or a single pattern (N,), giving a 0-d result) are summed as vectors
    pointing at each neuron's preferred direction; the estimate is the angle of the sum. A
    silent population has no direction and decodes to 0.
    """
    n_neurons = _check_int("n_neurons", n_neurons, 1)
    if responses.ndim not in (1, 2) or responses.shape[-1] != n_neurons:
        raise ValueError(
            f"responses must have shape (B, n_neurons) or (n_neurons,) with n_neurons = {n_neurons}, "
            f"got {tuple(responses.shape)}"
        )
    if not responses.is_floating_point():
        responses = responses.to(torch.get_default_dtype())
    pref = preferred_directions(n_neurons, dtype=responses.dtype, device=responses.device)
    return torch.atan2(responses @ torch.sin(pref), responses @ torch.cos(pref))


def circular_error(estimate: Tensor, target: Tensor) -> Tensor:
    """Absolute angular difference in radians, in [0, pi]; same shape as the inputs (broadcast)."""
    diff = estimate - target
    return torch.atan2(torch.sin(diff), torch.cos(diff)).abs()


def describe_modulation(
    n_neurons: int = 16,
    gain: float = 1.0,
    threshold: float = 0.0,
    kappa: float = 2.0,
    fraction: float = 1.0,
    n_stimuli: int = 360,
) -> dict[str, float]:
    """Headline numbers for a baseline population and the same population modulated.

    The modulation sets ``gain`` and ``threshold`` on the :func:`modulated_indices`
    ``(n_neurons, fraction)`` neurons. The stimuli are ``n_stimuli`` evenly spaced directions.
    Returned keys (floats rounded to 3 decimals, so two calls give identical dicts):

    * ``baseline_peak``, ``modulated_peak``: highest rate in the population.
    * ``baseline_mean_rate``, ``modulated_mean_rate``: rate averaged over stimuli and neurons.
    * ``baseline_width_deg``, ``modulated_width_deg``: mean tuning width (FWHM, degrees) of the
      modulated neurons (of all neurons when none is modulated).
    * ``baseline_decode_error_deg``, ``decode_error_deg``: mean absolute circular error (degrees)
      of the population-vector read-out over the stimulus grid, before and after modulation.
    * ``n_modulated``: how many neurons the modulator tagged.
    """
    n_neurons = _check_int("n_neurons", n_neurons, 1)
    n_stimuli = _check_int("n_stimuli", n_stimuli, 2)
    stimuli = -math.pi + torch.arange(n_stimuli, dtype=torch.float64) * (2 * math.pi / n_stimuli)
    tagged = modulated_indices(n_neurons, fraction)
    gains = modulation_vector(n_neurons, gain, fraction, neutral=1.0).to(torch.float64)
    thresholds = modulation_vector(n_neurons, threshold, fraction, neutral=0.0).to(torch.float64)
    # Validate the scalar values themselves too (fraction = 0 would otherwise hide a bad value).
    tuning_curves(stimuli[:1], n_neurons, gain=gain, threshold=threshold, kappa=kappa)
    curves = {
        "baseline": tuning_curves(stimuli, n_neurons, kappa=kappa),
        "modulated": tuning_curves(stimuli, n_neurons, gain=gains, threshold=thresholds, kappa=kappa),
    }
    subset = tagged if tagged.numel() else torch.arange(n_neurons)
    out: dict[str, float] = {}
    for name, c in curves.items():
        out[f"{name}_peak"] = c.max().item()
        out[f"{name}_mean_rate"] = c.mean().item()
        out[f"{name}_width_deg"] = tuning_width(c, stimuli)[subset].mean().item()
    for name, key in (("baseline", "baseline_decode_error_deg"), ("modulated", "decode_error_deg")):
        error = circular_error(decode_direction(curves[name], n_neurons), stimuli)
        out[key] = math.degrees(error.mean().item())
    out["n_modulated"] = float(tagged.numel())
    return {k: round(v, 3) + 0.0 for k, v in out.items()}


# --------------------------------------------------------------------------- what notebook 00 shows


def population_row(label: str, numbers: Mapping[str, float], which: str) -> dict[str, object]:
    """One row of :func:`modulation_table`: ``label`` and the peak rate, tuning width (degrees) and
    mean decoding error (degrees) of one population of a :func:`describe_modulation` result.

    ``which`` is ``"baseline"`` (the unmodulated population) or ``"modulated"``. Returns
    ``{"population", "peak", "width_deg", "decode_error_deg"}``.
    """
    if which not in ("baseline", "modulated"):
        raise ValueError(f"which={which!r} is unknown; allowed: baseline, modulated")
    error = numbers["baseline_decode_error_deg" if which == "baseline" else "decode_error_deg"]
    return {
        "population": label,
        "peak": numbers[f"{which}_peak"],
        "width_deg": numbers[f"{which}_width_deg"],
        "decode_error_deg": error,
    }


def modulation_table(
    by_gain: Mapping[str, float], by_threshold: Mapping[str, float], *, gain: float, threshold: float
) -> Table:
    """The baseline population, the same population under ``gain`` and under ``threshold``: one
    row each (:func:`population_row`) of two :func:`describe_modulation` results, side by side so
    that a gain (same width, same decoded direction) and a threshold (narrower) can be compared.
    """
    rows = [
        population_row("baseline", by_gain, "baseline"),
        population_row(f"gain x{gain:g}", by_gain, "modulated"),
        population_row(f"threshold {threshold:g}", by_threshold, "modulated"),
    ]
    columns = {
        "population": "population",
        "peak": "peak rate",
        "width_deg": "width (deg)",
        "decode_error_deg": "decode error (deg)",
    }
    return table(rows, columns, formats={"peak": ".3f", "width_deg": ".1f", "decode_error_deg": ".3f"})


#: The claims of notebook 00, by the name under which they are recorded.
CLAIMS: dict[str, str] = {
    "gain_keeps_width": "gain leaves tuning width unchanged",
    "gain_keeps_decoding": "gain leaves the decoded direction unchanged",
    "threshold_narrows": "threshold narrows tuning",
}


def modulation_claims(by_gain: Mapping[str, float], by_threshold: Mapping[str, float]) -> dict[str, bool]:
    """Whether a gain scales without reshaping and a threshold reshapes, from two
    :func:`describe_modulation` results (the numbers are rounded there, so equal means equal to
    3 decimals): ``{name: holds}`` for each of :data:`CLAIMS`.
    """
    return {
        "gain_keeps_width": by_gain["modulated_width_deg"] == by_gain["baseline_width_deg"],
        "gain_keeps_decoding": by_gain["decode_error_deg"] == by_gain["baseline_decode_error_deg"],
        "threshold_narrows": by_threshold["modulated_width_deg"] < by_threshold["baseline_width_deg"],
    }


def claims_table(claims: Mapping[str, bool]) -> Table:
    """``claim | holds``: each of ``claims`` (from :func:`modulation_claims`) in words."""
    unknown = sorted(set(claims) - set(CLAIMS))
    if unknown:
        raise ValueError(f"claims {unknown} are unknown; known: {', '.join(CLAIMS)}")
    return table([(CLAIMS[name], holds) for name, holds in claims.items()], ["claim", "holds"])
