"""Tests of the dynamics analysis: PCA, participation ratio, fixed points and their Jacobians.

Every check is against a case with a known answer: Gaussian samples with a known covariance
(PCA axes and variances, dimensionality), linear maps with a known fixed point and spectrum,
the 1-D map ``tanh(2r)`` with its three fixed points, and autograd's dense Jacobian.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neuromod_lib import analysis
from neuromod_lib.analysis import (
    PCA,
    FixedPoints,
    find_fixed_points,
    jacobian_eigenvalues,
    jacobians,
    participation_ratio,
    pca,
    unique_points,
)

pytestmark = pytest.mark.usefixtures("one_thread")

N = 6


def rotation(n: int, seed: int) -> torch.Tensor:
    """A random orthogonal matrix (n, n)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q


def gaussian(variances: list[float], axes: torch.Tensor, n_samples: int, seed: int) -> torch.Tensor:
    """Samples (n_samples, N) with covariance axes diag(variances, 0...) axes^T, mean 3."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.zeros(axes.shape[0], dtype=torch.float64)
    scale[: len(variances)] = torch.tensor(variances, dtype=torch.float64).sqrt()
    z = torch.randn(n_samples, axes.shape[0], generator=g, dtype=torch.float64) * scale
    return (3 + z @ axes.T).float()


def match_sets(found: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Largest distance from an expected complex value to the nearest found one (and vice versa)."""
    distances = (found[:, None] - expected[None, :]).abs()
    return torch.maximum(distances.amin(0).max(), distances.amin(1).max())


# --- PCA -------------------------------------------------------------------------------------

VARIANCES = [9.0, 4.0, 1.0, 0.01]


@pytest.fixture(scope="module")
def anisotropic():
    axes = rotation(N, seed=0)
    return gaussian(VARIANCES, axes, n_samples=20_000, seed=1), axes


def test_pca_recovers_the_axes_and_variances(anisotropic):
    states, axes = anisotropic
    fit = pca(states)
    assert isinstance(fit, PCA)
    assert fit.components.shape == (N, N) and fit.variance.shape == (N,) and fit.mean.shape == (N,)
    assert fit.components.dtype == torch.float32 and fit.variance.dtype == torch.float32
    for k, variance in enumerate(VARIANCES):
        cosine = float(fit.components[k].double() @ axes[:, k])
        assert abs(cosine) > 0.99, (k, cosine)
        assert float(fit.variance[k]) == pytest.approx(variance, rel=0.05)
    assert fit.variance[len(VARIANCES) :].abs().max() < 1e-6  # rank-4 data in 6 dims
    assert torch.all(fit.variance[:-1] >= fit.variance[1:])
    assert fit.mean.sub(3).abs().max() < 0.1


def test_pca_basis_is_orthonormal_with_deterministic_signs(anisotropic):
    states, _ = anisotropic
    fit = pca(states)
    assert torch.allclose(fit.components @ fit.components.T, torch.eye(N), atol=1e-5)
    largest = fit.components.gather(1, fit.components.abs().argmax(1, keepdim=True))
    assert torch.all(largest > 0)
    flipped = pca(-states)  # same axes, opposite data: the sign convention gives the same components
    assert torch.allclose(flipped.components[:4], fit.components[:4], atol=1e-4)


def test_pca_explained_ratio_and_transform(anisotropic):
    states, _ = anisotropic
    fit = pca(states)
    assert float(fit.explained_ratio.sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(fit.explained_ratio[0]) == pytest.approx(9 / 14.01, rel=0.05)
    assert fit.transform(fit.mean).abs().max() < 1e-5
    projected = fit.transform(states)
    assert projected.shape == states.shape
    assert torch.allclose(projected.var(0), fit.variance, rtol=1e-3, atol=1e-5)
    top2 = pca(states, n_components=2)
    assert top2.components.shape == (2, N) and top2.transform(states).shape == (len(states), 2)
    assert float(top2.explained_ratio.sum()) == pytest.approx(13 / 14.01, rel=0.02)
    assert top2.total_variance == pytest.approx(fit.total_variance)


def test_pca_flattens_leading_dims(anisotropic):
    states, _ = anisotropic
    shaped = states[:300].reshape(2, 50, 3, N)
    fit, flat = pca(shaped, n_components=3), pca(states[:300], n_components=3)
    assert torch.allclose(fit.components, flat.components, atol=1e-5)
    assert fit.transform(shaped).shape == (2, 50, 3, 3)
    assert torch.allclose(fit.transform(shaped).reshape(300, 3), flat.transform(states[:300]), atol=1e-4)


@pytest.mark.parametrize("n_components", [0, N + 1, 2.0, True])
def test_pca_rejects_bad_n_components(n_components):
    with pytest.raises(ValueError, match="n_components"):
        pca(torch.randn(10, N), n_components=n_components)


def test_pca_rejects_too_few_samples_and_bad_shapes():
    with pytest.raises(ValueError, match="at least 2 samples"):
        pca(torch.randn(1, N))
    with pytest.raises(ValueError, match="states has shape"):
        pca(torch.randn(N))
    with pytest.raises(ValueError, match=r"allowed: \(\.\.\., 6\)"):
        pca(torch.randn(10, N)).transform(torch.randn(10, N + 1))
    with pytest.raises(ValueError, match="NaN or inf"):
        pca(torch.full((10, N), float("nan")))


# --- participation ratio ---------------------------------------------------------------------


def test_participation_ratio_of_isotropic_data_is_the_dimension():
    states = torch.randn(20_000, N, generator=torch.Generator().manual_seed(0))
    ratio = participation_ratio(states)
    assert ratio.shape == () and ratio.dtype == torch.float32
    assert float(ratio) == pytest.approx(N, rel=0.02)


def test_participation_ratio_of_rank_one_data_is_one():
    g = torch.Generator().manual_seed(0)
    states = torch.randn(500, 1, generator=g) * torch.randn(1, N, generator=g) + 2
    assert float(participation_ratio(states)) == pytest.approx(1.0, abs=1e-5)


def test_participation_ratio_matches_the_eigenvalue_formula(anisotropic):
    states, _ = anisotropic
    eigenvalues = torch.linalg.eigvalsh(torch.cov(states.double().T)).clamp(min=0)
    expected = eigenvalues.sum() ** 2 / eigenvalues.square().sum()
    assert float(participation_ratio(states)) == pytest.approx(float(expected), rel=1e-6)
    assert float(expected) == pytest.approx(14.01**2 / (81 + 16 + 1 + 1e-4), rel=0.05)


def test_participation_ratio_is_batched():
    g = torch.Generator().manual_seed(0)
    states = torch.randn(3, 200, N, generator=g) * torch.tensor([[[1.0]], [[3.0]], [[0.2]]])
    states[1, :, :2] *= 10  # a lower-dimensional item
    ratios = participation_ratio(states)
    assert ratios.shape == (3,)
    assert torch.allclose(ratios, torch.stack([participation_ratio(s) for s in states]), rtol=1e-6)
    assert ratios[1] < 2.5 < ratios[0]
    grouped = participation_ratio(states.reshape(3, 20, 10, N), sample_dims=2)
    assert torch.allclose(grouped, ratios, rtol=1e-6)
    assert participation_ratio(states.reshape(1, 3, 200, N)).shape == (1, 3)


def test_participation_ratio_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sample_dims=0"):
        participation_ratio(torch.randn(10, N), sample_dims=0)
    with pytest.raises(ValueError, match="states has shape"):
        participation_ratio(torch.randn(10, N), sample_dims=2)
    with pytest.raises(ValueError, match="at least 2 samples"):
        participation_ratio(torch.randn(3, 1, N))


# --- fixed points ----------------------------------------------------------------------------

#: eigenvalues of the linear test map: a complex pair of modulus 0.6 and real ones
PAIR = 0.6 * complex(math.cos(1.0), math.sin(1.0))
SPECTRUM = torch.tensor([PAIR, PAIR.conjugate(), 0.5, -0.3, 0.2, 0.1], dtype=torch.complex128)


def linear_map(seed: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A (N, N) normal matrix with eigenvalues scale * SPECTRUM, and an offset b (N,)."""
    block = torch.zeros(N, N, dtype=torch.float64)
    block[:2, :2] = 0.6 * torch.tensor([[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]])
    block[2:, 2:] = torch.diag(SPECTRUM[2:].real)
    q = rotation(N, seed)
    b = torch.randn(N, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (scale * q @ block @ q.T).float(), b.float()


def test_fixed_point_of_a_linear_map():
    a, b = linear_map(seed=0)
    expected = torch.linalg.solve(torch.eye(N) - a.double(), b.double()).float()
    starts = expected + torch.randn(8, N, generator=torch.Generator().manual_seed(1))
    fps = find_fixed_points(lambda r: r @ a.T + b, starts, steps=3000, lr=1e-2, tol=1e-10)
    assert isinstance(fps, FixedPoints)
    assert fps.points.shape == (8, N) and fps.speed.shape == (8,) and fps.eigenvalues.shape == (8, N)
    assert fps.converged.all() and fps.speed.max() < 1e-10
    assert (fps.points - expected).abs().max() < 1e-3
    assert fps.stable.all()
    assert torch.allclose(fps.spectral_radius, torch.full((8,), 0.6), atol=1e-5)
    assert fps.eigenvalues.dtype == torch.complex64
    moduli = fps.eigenvalues.abs()
    assert torch.all(moduli[:, :-1] >= moduli[:, 1:] - 1e-6)  # sorted by |.|, descending
    for values in fps.eigenvalues:
        assert match_sets(values.to(torch.complex128), SPECTRUM) < 1e-5
    assert starts.sub(expected).abs().max() > 0.1  # the starts were not modified in place


def test_unstable_fixed_point_is_flagged():
    a, b = linear_map(seed=2, scale=-2.0)  # spectral radius 1.2, no eigenvalue near 1
    expected = torch.linalg.solve(torch.eye(N) - a.double(), b.double()).float()
    fps = find_fixed_points(lambda r: r @ a.T + b, expected[None] + 0.01, steps=3000, tol=1e-10)
    assert fps.converged.all() and (fps.points - expected).abs().max() < 1e-3
    assert not fps.stable.any() and float(fps.spectral_radius[0]) == pytest.approx(1.2, abs=1e-5)


def test_tanh_map_has_three_fixed_points_found_from_several_starts():
    starts = torch.tensor([[-2.0], [-0.5], [-0.1], [0.0], [0.1], [0.5], [2.0]])
    fps = find_fixed_points(lambda r: torch.tanh(2 * r), starts)
    r_star = 0.957504  # r = tanh(2r)
    expected = torch.tensor([-r_star, -r_star, 0.0, 0.0, 0.0, r_star, r_star])
    assert fps.converged.all()
    assert torch.allclose(fps.points.squeeze(1), expected, atol=2e-3)
    assert fps.stable.tolist() == [True, True, False, False, False, True, True]
    slopes = 2 * (1 - expected**2)  # F'(r) = 2 sech^2(2r) = 2 (1 - F(r)^2) at a fixed point
    assert torch.allclose(fps.spectral_radius, slopes, atol=1e-2)
    kept = unique_points(fps.points)
    assert sorted(fps.points[kept].squeeze(1).tolist()) == pytest.approx([-r_star, 0.0, r_star], abs=2e-3)


def row_dependent_map(gains: torch.Tensor, weight: torch.Tensor):
    """F(r)_p = tanh(gains_p * (r_p W^T)) + 0.1: each row with its own gain (context)."""
    return lambda r: torch.tanh(gains[:, None] * (r @ weight.T)) + 0.1


def test_rows_are_independent_and_their_jacobians_block_correct():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(N, N, generator=g) / N**0.5
    gains = torch.tensor([0.2, 0.5, 0.8])
    F = row_dependent_map(gains, weight)
    starts = torch.zeros(3, N)
    together = find_fixed_points(F, starts, tol=1e-10, steps=3000)
    for p in range(3):
        alone = find_fixed_points(
            row_dependent_map(gains[p : p + 1], weight), starts[p : p + 1], tol=1e-10, steps=3000
        )
        assert torch.allclose(together.points[p], alone.points[0], atol=1e-4)
        assert torch.allclose(together.eigenvalues[p], alone.eigenvalues[0], atol=1e-4)
    assert together.converged.all() and (together.points[0] - together.points[2]).abs().max() > 0.01
    jac = jacobians(F, together.points)
    slope = 1 - (F(together.points) - 0.1) ** 2  # d tanh(u)/du
    analytic = slope[:, :, None] * gains[:, None, None] * weight  # J_p = diag(slope_p) g_p W
    assert jac.shape == (3, N, N) and torch.allclose(jac, analytic, atol=1e-5)


def test_jacobians_match_autograd():
    g = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(N, N, generator=g), torch.randn(N, generator=g)

    def F(r):
        return torch.tanh(r @ weight.T + bias) * (1 + 0.1 * r.square()) + torch.sin(r).roll(1, dims=1)

    points = torch.randn(4, N, generator=g)
    dense = torch.autograd.functional.jacobian(F, points)  # (P, N, P, N)
    blocks = dense.diagonal(dim1=0, dim2=2).permute(2, 0, 1)  # (P, N, N)
    assert torch.allclose(jacobians(F, points), blocks, atol=1e-5)
    off_block = dense.clone()
    off_block[torch.arange(4), :, torch.arange(4), :] = 0
    assert off_block.abs().max() == 0  # F is row-wise, as jacobians assumes
    eigenvalues = jacobian_eigenvalues(F, points)
    for p in range(4):
        expected = torch.linalg.eigvals(blocks[p].double())
        assert match_sets(eigenvalues[p].to(torch.complex128), expected) < 1e-4


def test_module_parameters_are_left_untouched():
    torch.manual_seed(0)
    cell = nn.Linear(N, N)
    before = {name: p.detach().clone() for name, p in cell.named_parameters()}
    fps = find_fixed_points(
        lambda r: torch.tanh(cell(r)),
        torch.randn(5, N),
        steps=200,
        noise=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    assert fps.eigenvalues is not None
    for name, p in cell.named_parameters():
        assert p.grad is None and p.requires_grad
        assert torch.equal(p.detach(), before[name])


def test_noise_is_reproducible_and_the_early_stop_keeps_converged_starts():
    def F(r):
        return torch.tanh(2 * r)

    starts = torch.tensor([[0.957504], [-0.957504]])
    stopped = find_fixed_points(F, starts, jacobian=False)
    assert stopped.eigenvalues is None and torch.equal(stopped.points, starts)  # converged at step 0
    with pytest.raises(ValueError, match="eigenvalues is None"):
        _ = stopped.stable
    one = find_fixed_points(F, starts, steps=5, noise=0.3, generator=torch.Generator().manual_seed(3))
    two = find_fixed_points(F, starts, steps=5, noise=0.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(one.points, two.points) and not torch.equal(one.points, starts)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": -1}, "steps=-1"),
        ({"lr": 0.0}, "lr=0.0"),
        ({"tol": -1e-3}, "tol=-0.001"),
        ({"noise": -0.1}, "noise=-0.1"),
    ],
)
def test_find_fixed_points_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        find_fixed_points(torch.tanh, torch.zeros(2, N), **kwargs)


def test_find_fixed_points_rejects_bad_shapes():
    with pytest.raises(ValueError, match="initial has shape"):
        find_fixed_points(torch.tanh, torch.zeros(N))
    with pytest.raises(ValueError, match="F returned"):
        find_fixed_points(lambda r: r.sum(-1), torch.zeros(2, N))


# --- unique points ---------------------------------------------------------------------------


def test_unique_points_collapses_duplicates_and_keeps_distinct_points():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, N, generator=g) * 3
    which = torch.tensor([2, 0, 2, 1, 3, 0, 0, 3])
    points = centres[which] + 1e-4 * torch.randn(8, N, generator=g)
    kept = unique_points(points, tol=1e-2)
    assert kept.dtype == torch.long and kept.tolist() == [0, 1, 3, 4]  # first occurrence of each centre
    assert unique_points(centres).tolist() == [0, 1, 2, 3]


def test_unique_points_is_greedy_over_kept_points():
    # a chain with steps of 0.6 < tol = 1: 0 keeps, 0.6 goes (near 0), 1.2 stays (only near a dropped point)
    points = torch.tensor([[0.0], [0.6], [1.2], [1.8], [2.4]])
    assert unique_points(points, tol=1.0).tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match="tol=0"):
        unique_points(points, tol=0)


# --- comparing groups of networks (notebook 05) ------------------------------------------------


LABELS = ["rule", "excitability", "synaptic", "both", "rule", "excitability", "synaptic", "both"]
GROUPS = ["rule", "excitability", "synaptic", "both"]


def test_by_group_keeps_row_order_and_the_groups_order():
    values = torch.arange(8.0)
    grouped = analysis.by_group(values, LABELS, ["both", "rule"])
    assert list(grouped) == ["both", "rule"]
    assert grouped["both"].tolist() == [3.0, 7.0] and grouped["rule"].tolist() == [0.0, 4.0]
    assert list(analysis.by_group(values, LABELS)) == GROUPS  # default: first appearance
    with pytest.raises(ValueError, match="labels has 3 entries"):
        analysis.by_group(values, LABELS[:3])
    with pytest.raises(ValueError, match="groups \\['film'\\] have no network"):
        analysis.by_group(values, LABELS, ["film"])


def test_mean_sd_over_replicates_and_the_first_row_of_each_label():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 5.0, 4.0])
    first = analysis.first_rows(LABELS, [5, 2, 1, 6, 0])
    assert first == {"excitability": 5, "synaptic": 2, "rule": 0} and list(first) == [
        "excitability",
        "synaptic",
        "rule",
    ]
    summary = analysis.mean_sd(values, LABELS, GROUPS)
    assert summary["rule"] == pytest.approx((2.0, math.sqrt(2.0)))
    assert summary["both"] == pytest.approx((4.0, 0.0))
    single = analysis.mean_sd(torch.tensor([0.5, 0.7]), ["a", "b"])
    assert single == {"a": (0.5, 0.0), "b": pytest.approx((0.7, 0.0))}  # one replicate: sd 0, not NaN


def test_circular_distance_wraps_around_the_circle():
    x = torch.tensor([350.0, 10.0, 180.0, 90.0])
    assert analysis.circular_distance(x, 10.0).tolist() == [20.0, 0.0, 170.0, 80.0]
    radians = analysis.circular_distance(torch.tensor([0.1], dtype=torch.float64), 6.2, period=2 * math.pi)
    assert radians.item() == pytest.approx(2 * math.pi - 6.1)


def test_fixed_point_status_marks_stable_unstable_and_unconverged():
    eig = torch.tensor([[0.5], [1.5], [0.5], [1.5]], dtype=torch.complex64)
    fps = FixedPoints(torch.zeros(4, 1), torch.zeros(4), torch.tensor([True, True, False, False]), eig)
    assert analysis.fixed_point_status(fps).tolist() == [2, 1, 0, 0]


def test_switch_lambdas_on_a_made_up_table():
    """Three networks, four mixtures, two fixed points each; the answer of task B is at 180°."""
    lambdas = [0.0, 0.3, 0.6, 1.0]
    nan = math.nan
    directions = torch.tensor(
        [
            [[0.0, 5.0], [0.0, 160.0], [190.0, 0.0], [180.0, 180.0]],  # within 36° of 180 from lambda 0.3
            [[0.0, 0.0], [200.0, nan], [0.0, 170.0], [0.0, 0.0]],  # 200 at 0.3 is not kept; 170 at 0.6 is
            [[0.0, 0.0], [90.0, 270.0], [0.0, 0.0], [0.0, 0.0]],  # never near 180 (90 and 270 are 90° off)
        ]
    )
    keep = torch.ones_like(directions, dtype=torch.bool)
    keep[1, 1, 0] = False
    switch = analysis.switch_lambdas(directions, keep, lambdas, answer=180.0)
    assert switch[:2].tolist() == pytest.approx([0.3, 0.6]) and math.isnan(switch[2].item())
    assert switch.dtype == torch.float32
    # a tolerance of 100° lets 90° and 270° count at lambda 0.3
    assert analysis.switch_lambdas(directions, keep, lambdas, 180.0, tolerance=100.0)[
        2
    ].item() == pytest.approx(0.3)
    # the answer wraps: 350° is 10° from 0°
    wrapped = analysis.switch_lambdas(
        torch.full((1, 4, 2), 350.0), torch.ones(1, 4, 2, dtype=torch.bool), lambdas, 0.0
    )
    assert wrapped.tolist() == [0.0]
    with pytest.raises(ValueError, match="directions"):
        analysis.switch_lambdas(directions, keep, lambdas[:3], 180.0)


def test_stable_directions_and_state_space_panels_follow_the_named_networks():
    g = torch.Generator().manual_seed(0)
    S, L, B, T, P = 3, 2, 4, 5, 3
    states = torch.randn(S, L, B, T, N, generator=g)
    points = torch.randn(S, L, P, N, generator=g)
    status = torch.randint(0, 3, (S, L, P), generator=g)
    keep = status == 2
    directions = torch.rand(S, L, P, generator=g) * 360
    chosen = analysis.stable_directions(directions, keep, {"a": 2})
    assert [d.tolist() for d in chosen["a"]] == [directions[2, i][keep[2, i]].tolist() for i in range(L)]
    panels = analysis.state_space_panels(states, points, status, {"a": 2, "b": 0})
    traj, fp, st = panels["a"]
    basis = pca(states[2].reshape(-1, N), n_components=2)
    assert traj.shape == (L, B, T, 2) and fp.shape == (L, P, 2)
    torch.testing.assert_close(traj, basis.transform(states[2]))
    torch.testing.assert_close(fp, basis.transform(points[2]))
    assert torch.equal(st, status[2]) and list(panels) == ["a", "b"]


def test_tables_of_notebook_05():
    perf = torch.tensor([[1.0, 0.5], [0.8, 0.9], [0.6, 0.7], [0.4, 0.3]] * 2)
    solved = torch.tensor([True, False, False, False, True, True, False, False])
    t = analysis.performance_table(perf, solved, LABELS, ["go", "anti"], groups=GROUPS, steps=300)
    assert t.header == ("pathway", "go", "anti", "solved")
    assert t.rows[0] == ("rule", "1.00", "0.50", "2/2") and t.rows[1][-1] == "1/2"
    assert "300 steps" in t.caption
    curves = {"rule": torch.tensor([0.9, 0.5, 0.1]), "both": torch.tensor([1.0, 0.75, 0.5])}
    t = analysis.curve_table(curves, [0.0, 0.5, 1.0], symbol="σ")
    assert t.header == ("pathway", "σ=0", "σ=0.5", "σ=1") and t.rows[1] == ("both", "1.00", "0.75", "0.50")
    t = analysis.curve_table(curves, [0.0, 0.5, 1.0], symbol="λ", x_format=".1f", every=2)
    assert t.header == ("pathway", "λ=0.0", "λ=1.0")
    with pytest.raises(ValueError, match="every=0"):
        analysis.curve_table(curves, [0.0, 0.5, 1.0], symbol="λ", every=0)
    switch = torch.tensor([0.6, math.nan, 0.5, math.nan, 0.7, math.nan, math.nan, math.nan])
    t = analysis.replicate_table(switch, LABELS, groups=GROUPS)
    assert t.rows[0] == ("rule", "0.60, 0.70", "0.65")
    assert t.rows[1] == ("excitability", "—, —", "—") and t.rows[2] == ("synaptic", "0.50, —", "0.50")
