"""The tuned population: shapes, what gain and threshold do to it, widths, decoding, validation."""

from __future__ import annotations

import math

import pytest
import torch

from neuromod_lib.tables import Table
from neuromod_lib.tuning import (
    CLAIMS,
    claims_table,
    decode_direction,
    describe_modulation,
    modulated_indices,
    modulation_claims,
    modulation_table,
    modulation_vector,
    population_row,
    preferred_directions,
    tuning_curves,
    tuning_width,
)

GRID = torch.arange(360, dtype=torch.float64) * (math.pi / 180) - math.pi  # 1-degree grid, [-pi, pi)


def _analytic_fwhm_deg(kappa: float, threshold: float = 0.0) -> float:
    """FWHM of relu(exp(kappa (cos x - 1)) - threshold): half max is reached where d = (1 + threshold) / 2."""
    return math.degrees(2 * math.acos(1 + math.log((1 + threshold) / 2) / kappa))


def test_shapes():
    pref = preferred_directions(12)
    assert pref.shape == (12,)
    assert float(pref.min()) == 0.0 and float(pref.max()) < 2 * math.pi
    assert torch.allclose(torch.diff(pref), torch.full((11,), 2 * math.pi / 12))
    curves = tuning_curves(GRID, 12)
    assert curves.shape == (360, 12)
    assert tuning_width(curves, GRID).shape == (12,)
    assert decode_direction(curves, 12).shape == (360,)
    assert decode_direction(curves[0], 12).shape == ()
    assert modulation_vector(12, 2.0, 0.5, neutral=1.0).shape == (12,)


def test_peak_of_each_neuron_is_at_its_preferred_direction():
    stimuli = torch.arange(360, dtype=torch.float64) * (math.pi / 180)  # 0..359 deg
    curves = tuning_curves(stimuli, 8, kappa=3.0)
    assert torch.equal(curves.argmax(dim=0), torch.arange(8) * 45)
    assert torch.allclose(curves.max(dim=0).values, torch.ones(8, dtype=torch.float64))
    assert bool((curves > 0).all()) and bool((curves <= 1).all())


@pytest.mark.parametrize("gain", [0.5, 2.5, torch.linspace(0.2, 3.0, 16, dtype=torch.float64)])
def test_gain_scales_responses_and_leaves_width_and_decoding_unchanged(gain):
    base = tuning_curves(GRID, 16)
    scaled = tuning_curves(GRID, 16, gain=gain)
    assert torch.equal(scaled, gain * base)
    assert torch.equal(tuning_width(scaled, GRID), tuning_width(base, GRID))
    if not isinstance(gain, torch.Tensor):  # a uniform gain cannot move the population vector
        assert torch.allclose(decode_direction(scaled, 16), decode_direction(base, 16), atol=1e-9)


def test_threshold_narrows_tuning_monotonically_and_lowers_the_peak():
    thresholds = [0.0, 0.2, 0.4, 0.6, 0.8]
    curves = [tuning_curves(GRID, 16, threshold=t) for t in thresholds]
    widths = torch.stack([tuning_width(c, GRID) for c in curves])  # (T, N)
    peaks = torch.stack([c.max(dim=0).values for c in curves])
    assert bool((torch.diff(widths, dim=0) < 0).all())
    assert bool((torch.diff(peaks, dim=0) < 0).all())
    for t, w in zip(thresholds, widths, strict=True):
        assert torch.allclose(w, torch.full_like(w, _analytic_fwhm_deg(2.0, t)), atol=1.0 + 1e-9)
    assert torch.allclose(peaks[:, 0], 1 - torch.tensor(thresholds, dtype=torch.float64))


@pytest.mark.parametrize("n_neurons", [1, 7, 10, 16])
@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.3, 0.5, 1.0])
def test_fraction_modulates_exactly_round_fraction_n_neurons(n_neurons, fraction):
    expected = round(fraction * n_neurons)
    index = modulated_indices(n_neurons, fraction)
    assert index.numel() == expected and torch.equal(index, index.unique())  # distinct, sorted
    gains = modulation_vector(n_neurons, 2.0, fraction, neutral=1.0)
    assert int((gains == 2.0).sum()) == expected and int((gains == 1.0).sum()) == n_neurons - expected
    thresholds = modulation_vector(n_neurons, 0.5, fraction, neutral=0.0)
    modulated = tuning_curves(GRID, n_neurons, gain=gains, threshold=thresholds)
    changed = modulated != tuning_curves(GRID, n_neurons)
    assert int(changed.any(dim=0).sum()) == expected
    assert describe_modulation(n_neurons=n_neurons, gain=2.0, fraction=fraction)["n_modulated"] == expected


def test_modulated_subset_is_spread_over_the_population():
    assert modulated_indices(16, 0.25).tolist() == [0, 4, 8, 12]
    assert modulated_indices(16, 0.5).tolist() == list(range(0, 16, 2))


def test_decoding_unmodulated_population_is_nearly_exact():
    estimate = decode_direction(tuning_curves(GRID, 16), 16)
    error = torch.atan2(torch.sin(estimate - GRID), torch.cos(estimate - GRID)).abs()
    assert float(error.max()) < 1e-6
    assert describe_modulation(n_neurons=16)["baseline_decode_error_deg"] == 0.0


def test_width_of_a_box_curve_and_of_a_silent_neuron():
    box = (GRID.abs() <= math.radians(30)).double()  # 60 degrees wide
    curves = torch.stack([3 * box, torch.zeros_like(box)], dim=1)
    width = tuning_width(curves, GRID)
    assert abs(float(width[0]) - 60.0) <= 1.0
    assert float(width[1]) == 0.0


@pytest.mark.parametrize("kappa", [1.0, 2.0, 5.0, 20.0])
def test_width_of_von_mises_matches_analytic_fwhm(kappa):
    width = tuning_width(tuning_curves(GRID, 4, kappa=kappa), GRID)
    assert torch.allclose(width, torch.full_like(width, _analytic_fwhm_deg(kappa)), atol=1.0 + 1e-9)


def test_describe_modulation_is_rounded_deterministic_and_tells_the_story():
    a = describe_modulation(n_neurons=16, gain=2.0, threshold=0.3, kappa=2.0, fraction=0.5)
    assert a == describe_modulation(n_neurons=16, gain=2.0, threshold=0.3, kappa=2.0, fraction=0.5)
    expected_keys = {"baseline_peak", "modulated_peak", "baseline_mean_rate", "modulated_mean_rate"}
    expected_keys |= {"baseline_width_deg", "modulated_width_deg", "baseline_decode_error_deg"}
    expected_keys |= {"decode_error_deg", "n_modulated"}
    assert set(a) == expected_keys
    assert all(type(v) is float and round(v, 3) == v for v in a.values())

    gain_only = describe_modulation(gain=2.0)
    assert gain_only["modulated_peak"] == 2 * gain_only["baseline_peak"]
    assert gain_only["modulated_width_deg"] == gain_only["baseline_width_deg"]
    assert gain_only["decode_error_deg"] == gain_only["baseline_decode_error_deg"] == 0.0

    threshold_only = describe_modulation(threshold=0.5)
    assert threshold_only["modulated_width_deg"] < threshold_only["baseline_width_deg"] - 20
    assert threshold_only["modulated_peak"] == 0.5
    assert threshold_only["modulated_mean_rate"] < threshold_only["baseline_mean_rate"]


def test_population_row_picks_the_baseline_or_the_modulated_numbers():
    numbers = describe_modulation(n_neurons=16, threshold=0.3)
    base = population_row("b", numbers, "baseline")
    mod = population_row("m", numbers, "modulated")
    assert base == {
        "population": "b",
        "peak": numbers["baseline_peak"],
        "width_deg": numbers["baseline_width_deg"],
        "decode_error_deg": numbers["baseline_decode_error_deg"],
    }
    assert mod == {
        "population": "m",
        "peak": numbers["modulated_peak"],
        "width_deg": numbers["modulated_width_deg"],
        "decode_error_deg": numbers["decode_error_deg"],
    }
    with pytest.raises(ValueError, match="which='both'"):
        population_row("x", numbers, "both")


def test_modulation_table_shows_baseline_gain_and_threshold_rows():
    by_gain = describe_modulation(n_neurons=16, gain=2.0)
    by_threshold = describe_modulation(n_neurons=16, threshold=0.3)
    shown = modulation_table(by_gain, by_threshold, gain=2.0, threshold=0.3)
    assert isinstance(shown, Table)
    assert shown.header == ("population", "peak rate", "width (deg)", "decode error (deg)")
    assert shown.column("population") == ["baseline", "gain x2", "threshold 0.3"]
    assert shown.column("peak rate") == ["1.000", "2.000", "0.700"]
    width = by_threshold["modulated_width_deg"]
    assert shown.column("width (deg)")[2] == f"{width:.1f}" and width < by_gain["baseline_width_deg"]
    assert shown.rows[0][2:] == shown.rows[1][2:]  # a gain: same width, same decoding error
    assert "| gain x2 | 2.000 |" in shown.markdown()


def test_modulation_claims_hold_for_gain_and_threshold_and_fail_when_swapped():
    by_gain = describe_modulation(n_neurons=16, gain=2.0)
    by_threshold = describe_modulation(n_neurons=16, threshold=0.3)
    claims = modulation_claims(by_gain, by_threshold)
    assert list(claims) == list(CLAIMS) and all(v is True for v in claims.values())
    swapped = modulation_claims(by_threshold, by_gain)  # a threshold reshapes, a gain does not
    assert swapped == {"gain_keeps_width": False, "gain_keeps_decoding": False, "threshold_narrows": False}


def test_claims_table_says_each_claim_in_words():
    shown = claims_table({"gain_keeps_width": True, "threshold_narrows": False})
    assert shown.header == ("claim", "holds")
    assert shown.rows == (
        ("gain leaves tuning width unchanged", "yes"),
        ("threshold narrows tuning", "no"),
    )
    with pytest.raises(ValueError, match="gain_is_magic"):
        claims_table({"gain_is_magic": True})


STIM = torch.zeros(5)
BAD_INPUTS = [
    ("n_neurons", 0, lambda: preferred_directions(0)),
    ("n_neurons", 2.5, lambda: tuning_curves(STIM, 2.5)),
    ("n_neurons", True, lambda: modulation_vector(True, 2.0, neutral=1.0)),
    ("gain", -0.1, lambda: tuning_curves(STIM, 4, gain=-0.1)),
    ("gain", "(3,)", lambda: tuning_curves(STIM, 4, gain=torch.ones(3))),
    ("gain", -1.0, lambda: tuning_curves(STIM, 4, gain=torch.tensor([1.0, -1.0, 1.0, 1.0]))),
    ("gain", -1.0, lambda: describe_modulation(gain=-1.0, fraction=0.0)),
    ("threshold", 1.0, lambda: tuning_curves(STIM, 4, threshold=1.0)),
    ("threshold", -0.2, lambda: tuning_curves(STIM, 4, threshold=-0.2)),
    ("threshold", "nan", lambda: tuning_curves(STIM, 4, threshold=float("nan"))),
    ("threshold", 1.5, lambda: describe_modulation(threshold=1.5)),
    ("kappa", 0.0, lambda: tuning_curves(STIM, 4, kappa=0.0)),
    ("kappa", -2.0, lambda: describe_modulation(kappa=-2.0)),
    ("fraction", 1.5, lambda: modulation_vector(4, 2.0, 1.5, neutral=1.0)),
    ("fraction", -0.1, lambda: describe_modulation(fraction=-0.1)),
    ("stimuli", "(2, 3)", lambda: tuning_curves(torch.zeros(2, 3), 4)),
    ("stimuli", "evenly spaced", lambda: tuning_width(torch.zeros(3, 2), torch.tensor([0.0, 0.1, 0.5]))),
    ("curves", "(4, 2)", lambda: tuning_width(torch.zeros(4, 2), torch.zeros(5))),
    ("responses", "(2, 5)", lambda: decode_direction(torch.zeros(2, 5), 4)),
    ("n_stimuli", 1, lambda: describe_modulation(n_stimuli=1)),
]


@pytest.mark.parametrize(("name", "bad", "call"), BAD_INPUTS, ids=[f"{n}={b}" for n, b, _ in BAD_INPUTS])
def test_bad_input_raises_value_error_naming_the_parameter(name, bad, call):
    with pytest.raises(ValueError, match=name) as info:
        call()
    assert str(bad) in str(info.value)
