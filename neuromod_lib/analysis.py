"""Dynamics analysis of recurrent networks: PCA, dimensionality and fixed points.

Vedovati & Ching (2024) ask how one recurrent network packs many tasks into its dynamics,
and answer with three views of the hidden states, all of which live here:

* :func:`pca` — one low-dimensional basis fitted to the states of *all* contexts, in which
  each context's trajectories are then drawn (:meth:`PCA.transform`);
* :func:`participation_ratio` — the dimensionality ``(sum λ)² / sum λ²`` of the states'
  covariance, one number per context, batched;
* :func:`find_fixed_points` — the fixed (and slow) points of the discrete-time map
  ``r_{t+1} = F(r_t)`` found by minimising ``q = ½|F(r) - r|²`` from many starts, as in
  Sussillo & Barak (2013) and Driscoll, Shenoy & Sussillo (2024), with their linearisation
  (:func:`jacobians`, :func:`jacobian_eigenvalues`) and de-duplication (:func:`unique_points`).

Why generic: the module never imports the RNN. It works on tensors of states and on a
callable ``F`` that maps states ``(P, N)`` to next states ``(P, N)`` row by row, so one call
analyses many contexts at once (each row may carry its own context, baked into ``F``), on
any device. Every computation is batched: no Python loop runs over samples, points or time
steps. Eigen-decompositions and covariances are computed in float64 (on the CPU where the
device has no float64, e.g. ``mps``), and results come back in the input's dtype and device.

Notebook 05 looks at *groups* of networks (the replicates of each context pathway) with these
views; the second half of the module holds the grouping: values grouped by label
(:func:`by_group`, :func:`mean_sd`, :func:`first_rows`), the λ at which their fixed points switch
task (:func:`switch_lambdas`) and the notebook's tables. Its robustness measures and their tests
are :mod:`neuromod_lib.ambiguity`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.func import vjp, vmap

from .tables import Table, table

__all__ = [
    "PCA",
    "FixedPoints",
    "pca",
    "participation_ratio",
    "find_fixed_points",
    "jacobians",
    "jacobian_eigenvalues",
    "unique_points",
    "by_group",
    "first_rows",
    "mean_sd",
    "circular_distance",
    "fixed_point_status",
    "switch_lambdas",
    "stable_directions",
    "state_space_panels",
    "performance_table",
    "curve_table",
    "replicate_table",
]

#: how often (in optimisation steps) find_fixed_points checks whether every row has converged
CHECK_EVERY = 50

Map = Callable[[torch.Tensor], torch.Tensor]


# --- helpers ---------------------------------------------------------------------------------


def _numerics_device(device: torch.device) -> torch.device:
    """Where float64 linear algebra runs: the device itself if it has float64, else the CPU."""
    return device if device.type in ("cpu", "cuda") else torch.device("cpu")


def _out_dtype(tensor: torch.Tensor) -> torch.dtype:
    """The dtype results are returned in: the input's float32/float64, else float32."""
    return tensor.dtype if tensor.dtype in (torch.float32, torch.float64) else torch.float32


def _check_states(states: torch.Tensor, min_dims: int = 2) -> None:
    if not isinstance(states, torch.Tensor):
        raise ValueError(f"states must be a torch.Tensor, got {type(states).__name__}")
    if states.ndim < min_dims:
        raise ValueError(
            f"states has shape {tuple(states.shape)}; allowed: at least {min_dims} dims (..., samples, N)"
        )


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not (value >= 0 if allow_zero else value > 0):
        allowed = "a number >= 0" if allow_zero else "a number > 0"
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {allowed}")


def _check_int(name: str, value: int, low: int, high: int | None = None) -> None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if not is_int or value < low or (high is not None and value > high):
        allowed = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {allowed}")


def _check_points(name: str, points: torch.Tensor) -> None:
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or 0 in points.shape:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"{name} has shape {shape}; allowed: (P, N) with P, N >= 1")


def _centered_covariance(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance in float64 of samples ``(*batch, M, N)``.

    Returns ``mean (*batch, N)`` and ``cov (*batch, N, N)`` on the numerics device.
    """
    m = samples.shape[-2]
    if m < 2:
        raise ValueError(f"states has {m} sample(s) per covariance; allowed: at least 2 samples")
    x = samples.to(_numerics_device(samples.device), torch.float64)
    mean = x.mean(-2)
    centered = x - mean.unsqueeze(-2)
    cov = centered.mT @ centered / (m - 1)
    if not torch.isfinite(cov).all():
        raise ValueError("states contains NaN or inf; allowed: finite values only")
    return mean, cov


# --- PCA -------------------------------------------------------------------------------------


@dataclass
class PCA:
    """A principal-component basis of N-dimensional states.

    ``mean (N,)``, ``components (n, N)`` (orthonormal rows, by decreasing variance, each
    signed so that its largest-magnitude entry is positive), ``variance (n,)`` along each
    component and ``total_variance`` (of all N dimensions, so ratios of a truncated basis
    sum to less than 1).
    """

    mean: torch.Tensor
    components: torch.Tensor
    variance: torch.Tensor
    total_variance: float

    @property
    def explained_ratio(self) -> torch.Tensor:
        """``(n,)`` share of the total variance along each component."""
        return self.variance / self.total_variance

    def transform(self, states: torch.Tensor) -> torch.Tensor:
        """Project states ``(..., N)`` onto the components: ``(..., n)``, on the states' device."""
        n_features = self.components.shape[1]
        if not isinstance(states, torch.Tensor) or states.ndim < 1 or states.shape[-1] != n_features:
            shape = tuple(states.shape) if isinstance(states, torch.Tensor) else type(states).__name__
            raise ValueError(f"states has shape {shape}; allowed: (..., {n_features})")
        dtype = _out_dtype(states)
        mean = self.mean.to(states.device, dtype)
        components = self.components.to(states.device, dtype)
        return (states.to(dtype) - mean) @ components.T


def _sign_fixed(vectors: torch.Tensor) -> torch.Tensor:
    """Flip each row ``(n, N)`` so that its largest-magnitude entry is positive."""
    largest = vectors.gather(1, vectors.abs().argmax(1, keepdim=True))
    return vectors * torch.where(largest < 0, -1.0, 1.0).to(vectors.dtype)


def pca(states: torch.Tensor, n_components: int | None = None) -> PCA:
    """Fit a PCA to states ``(..., N)``; every leading dim is a sample dim.

    E.g. states ``(contexts, trials, T, N)`` give one basis shared by all contexts. The
    covariance is eigen-decomposed in float64; the result is in the input's dtype (float32
    unless the input is float64) on the input's device. ``n_components`` defaults to N.
    """
    _check_states(states)
    n_features = states.shape[-1]
    if n_components is None:
        n_components = n_features
    _check_int("n_components", n_components, 1, n_features)
    mean, cov = _centered_covariance(states.reshape(-1, n_features))
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    variance = eigenvalues.flip(0)[:n_components].clamp(min=0)
    components = _sign_fixed(eigenvectors.flip(1)[:, :n_components].T)
    dtype, device = _out_dtype(states), states.device
    return PCA(
        mean=mean.to(device, dtype),
        components=components.to(device, dtype),
        variance=variance.to(device, dtype),
        total_variance=float(eigenvalues.clamp(min=0).sum()),
    )


def participation_ratio(states: torch.Tensor, sample_dims: int = 1) -> torch.Tensor:
    """Participation ratio ``(sum λ)² / sum λ²`` of the covariance eigenvalues λ.

    ``states (*batch, *samples, N)``: the last ``sample_dims`` dims before N are samples, any
    dims before them a batch; returns ``(*batch,)`` (0-dim without batch dims). Computed
    exactly without an eigensolver, as ``trace(C)² / |C|_F²`` (C symmetric, so
    ``sum λ = trace C`` and ``sum λ² = |C|_F²``), batched, in float64. NaN where the states
    do not vary at all.
    """
    _check_int("sample_dims", sample_dims, 1)
    _check_states(states, min_dims=sample_dims + 1)
    batch = states.shape[: states.ndim - sample_dims - 1]
    _, cov = _centered_covariance(states.reshape(*batch, -1, states.shape[-1]))
    trace = cov.diagonal(dim1=-2, dim2=-1).sum(-1)
    ratio = trace**2 / cov.square().sum((-2, -1))
    return ratio.to(states.device, _out_dtype(states))


# --- fixed points ----------------------------------------------------------------------------


@dataclass
class FixedPoints:
    """Fixed (or slow) points of a discrete-time map ``r_{t+1} = F(r_t)``.

    ``points (P, N)`` are the final states of the optimisation, ``speed (P,)`` is
    ``q = ½|F(r) - r|²`` there, ``converged (P,)`` says ``speed < tol``, and
    ``eigenvalues (P, N)`` (complex, by decreasing modulus) are those of the Jacobian of F
    at each point, or None if not computed.
    """

    points: torch.Tensor
    speed: torch.Tensor
    converged: torch.Tensor
    eigenvalues: torch.Tensor | None = None

    @property
    def spectral_radius(self) -> torch.Tensor:
        """``(P,)`` largest eigenvalue modulus of the Jacobian at each point."""
        if self.eigenvalues is None:
            raise ValueError(
                "eigenvalues is None; allowed: FixedPoints with eigenvalues "
                "(find_fixed_points(..., jacobian=True) or jacobian_eigenvalues)"
            )
        return self.eigenvalues.abs().amax(-1)

    @property
    def stable(self) -> torch.Tensor:
        """``(P,)`` bool: linearly stable (spectral radius < 1, F being a discrete-time map)."""
        return self.spectral_radius < 1


def _speed(F: Map, states: torch.Tensor) -> torch.Tensor:
    """``q = ½|F(r) - r|²`` of states ``(P, N)``: ``(P,)``."""
    after = F(states)
    if not isinstance(after, torch.Tensor) or after.shape != states.shape:
        shape = tuple(after.shape) if isinstance(after, torch.Tensor) else type(after).__name__
        raise ValueError(f"F returned {shape} for states {tuple(states.shape)}; allowed: the states' shape")
    return 0.5 * (after - states).square().sum(-1)


def _starting_states(initial: torch.Tensor, noise: float, generator: torch.Generator | None) -> torch.Tensor:
    """``initial (P, N)`` detached, as float32/float64, plus Gaussian noise drawn on the CPU."""
    dtype = _out_dtype(initial)
    states = initial.detach().to(dtype).clone()
    if noise > 0:
        perturbation = torch.randn(states.shape, generator=generator, dtype=dtype)
        states += noise * perturbation.to(states.device)
    return states


def find_fixed_points(
    F: Map,
    initial: torch.Tensor,
    *,
    steps: int = 2000,
    lr: float = 1e-2,
    tol: float = 1e-6,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
    jacobian: bool = True,
) -> FixedPoints:
    """Find fixed points of ``F`` by minimising ``q_p = ½|F(r_p) - r_p|²`` from each row of ``initial``.

    ``F`` maps ``(P, N) -> (P, N)`` row by row (row p may carry its own context) with
    differentiable torch ops; ``initial (P, N)`` are the starts (e.g. states visited by the
    network), perturbed by Gaussian ``noise`` (std, drawn on the CPU with ``generator``).
    All rows are optimised at once by Adam on ``sum_p q_p``: rows are independent and Adam
    is element-wise, so this is the same as one optimisation per row. Stops after ``steps``
    or once every row has ``q < tol`` (checked every :data:`CHECK_EVERY` steps). Gradients
    are taken w.r.t. the states only: the parameters F closes over are neither changed nor
    given a ``.grad``. With ``jacobian=True`` the Jacobian eigenvalues at the final points
    are filled in. Rows that did not converge are slow points (local minima of q), or need
    more steps.
    """
    _check_points("initial", initial)
    _check_int("steps", steps, 0)
    _check_positive("lr", lr)
    _check_positive("tol", tol)
    _check_positive("noise", noise, allow_zero=True)
    states = _starting_states(initial, noise, generator).requires_grad_(True)
    optimizer = torch.optim.Adam([states], lr=lr)
    with torch.enable_grad():
        for step in range(steps):
            speed = _speed(F, states)
            if step % CHECK_EVERY == 0 and bool((speed < tol).all()):
                break
            (states.grad,) = torch.autograd.grad(speed.sum(), states)
            optimizer.step()
    points = states.detach()
    with torch.no_grad():
        speed = _speed(F, points)
    eigenvalues = jacobian_eigenvalues(F, points) if jacobian else None
    return FixedPoints(points=points, speed=speed, converged=speed < tol, eigenvalues=eigenvalues)


JACOBIAN_CHUNK = 8  #: cotangents per batched pullback in :func:`jacobians`


def jacobians(F: Map, points: torch.Tensor) -> torch.Tensor:
    """Jacobians ``(P, N, N)`` of a row-wise map F at ``points (P, N)``: ``J[p, i, j] = dF_{p,i} / dr_{p,j}``.

    Exact (reverse mode): one ``torch.func.vjp`` of F at ``points``, whose pullback is vmapped
    over the N basis cotangents ``(N, P, N)``, :data:`JACOBIAN_CHUNK` at a time (a pullback through
    per-row weight matrices ``(P, N, N)`` may expand them once per cotangent). Relies on row
    independence (row p of F's output depends on row p of its input only); cross-row terms would
    be summed in, wrongly. Memory is ``P * N * N`` values plus one chunk's intermediates.
    """
    _check_points("points", points)
    with torch.enable_grad():
        after, pullback = vjp(F, points.detach())
    if after.shape != points.shape:
        raise ValueError(
            f"F returned {tuple(after.shape)} for points {tuple(points.shape)}; allowed: the same shape"
        )
    n_points, n_features = points.shape
    basis = torch.eye(n_features, dtype=after.dtype, device=after.device)
    cotangents = basis.unsqueeze(1).expand(n_features, n_points, n_features)
    # in chunks of cotangents: a batched pullback may expand F's weights once per cotangent
    (rows,) = vmap(pullback, chunk_size=JACOBIAN_CHUNK)(cotangents)  # (N_out, P, N_in)
    return rows.permute(1, 0, 2).detach()


def jacobian_eigenvalues(F: Map, points: torch.Tensor) -> torch.Tensor:
    """Eigenvalues ``(P, N)`` (complex) of F's Jacobian at each of ``points (P, N)``, by decreasing modulus.

    Computed in float64 (on the CPU if the device has no ``eigvals``, e.g. ``mps``) and
    returned as complex64 (complex128 for float64 points) on the points' device.
    """
    matrices = jacobians(F, points)
    values = torch.linalg.eigvals(matrices.to(_numerics_device(matrices.device), torch.float64))
    order = values.abs().argsort(dim=-1, descending=True)
    values = values.gather(-1, order)
    complex_dtype = torch.complex128 if points.dtype == torch.float64 else torch.complex64
    return values.to(points.device, complex_dtype)


def unique_points(points: torch.Tensor, tol: float = 1e-2) -> torch.Tensor:
    """Indices ``(U,)`` (long, ascending) of a greedy de-duplicated subset of ``points (P, N)``.

    Greedy in row order: a point is kept unless it lies within ``tol`` (Euclidean) of an
    earlier *kept* point — sort the rows first (e.g. by speed) to prefer some. Vectorised:
    with ``close`` the strictly upper-triangular mask of pairs within ``tol``, the kept set
    is the fixed point of ``keep[i] = not any_j (keep[j] and close[j, i])``; iterating that
    from "keep all" fixes at least one more leading entry per pass, so it ends after at most
    the longest chain of near neighbours (usually a few passes). Memory is ``P * P``.
    """
    _check_points("points", points)
    _check_positive("tol", tol)
    n_points = points.shape[0]
    distances = torch.cdist(points.unsqueeze(0), points.unsqueeze(0)).squeeze(0)  # (P, P)
    close = (distances < tol).triu(diagonal=1).to(points.dtype)
    keep = torch.ones(n_points, dtype=torch.bool, device=points.device)
    for _ in range(n_points):
        updated = (keep.to(points.dtype) @ close) == 0
        if torch.equal(updated, keep):
            break
        keep = updated
    return keep.nonzero().squeeze(1)


# --- comparing groups of networks (notebook 05) -------------------------------------------------
#
# Notebook 05 trains several replicates of each context pathway in one stack: network ``s`` has the
# label ``labels[s]`` (its pathway). The functions below group per-network values by label, score
# the networks under ambiguous contexts, find where their fixed points switch task, and lay the
# results out as tables and computed sentences.


def _groups(labels: Sequence[str], groups: Sequence[str] | None) -> list[str]:
    order = list(dict.fromkeys(labels)) if groups is None else list(groups)
    missing = [g for g in order if g not in labels]
    if missing:
        raise ValueError(f"groups {missing} have no network; labels: {sorted(set(labels))}")
    return order


def by_group(
    values: torch.Tensor, labels: Sequence[str], groups: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """The rows of ``values (S, ...)`` of each group: ``{g: values[s for which labels[s] == g]}``.

    Rows keep their order; groups come in the order of ``groups`` (default: first appearance in
    ``labels``). ``ValueError`` if ``labels`` does not name one label per row, or a group has no row.
    """
    if len(labels) != len(values):
        raise ValueError(
            f"labels has {len(labels)} entries for {len(values)} rows of values; allowed: one per row"
        )
    return {g: values[[s for s, q in enumerate(labels) if q == g]] for g in _groups(labels, groups)}


def first_rows(labels: Sequence[str], rows: Sequence[int]) -> dict[str, int]:
    """``{label: the first of rows with it}``, labels in the order they first appear among ``rows``."""
    out: dict[str, int] = {}
    for s in rows:
        out.setdefault(labels[s], s)
    return out


def mean_sd(
    values: torch.Tensor, labels: Sequence[str], groups: Sequence[str] | None = None
) -> dict[str, tuple[float, float]]:
    """``{g: (mean, sd)}`` over the rows of each group of ``values (S,)``; sd 0.0 for a single row."""
    return {
        g: (float(v.mean()), float(v.std()) if len(v) > 1 else 0.0)
        for g, v in by_group(values, labels, groups).items()
    }


def circular_distance(x: torch.Tensor, y: torch.Tensor | float, period: float = 360.0) -> torch.Tensor:
    """The distance between angles ``x`` and ``y`` on a circle of ``period`` (360: degrees), in
    ``[0, period / 2]``."""
    d = torch.remainder(x - y, period)
    return torch.minimum(d, period - d)


def fixed_point_status(points: FixedPoints) -> torch.Tensor:
    """``(P,)`` long: 2 for a stable fixed point, 1 for an unstable one, 0 where the search did not
    converge (what :func:`neuromod_lib.plots.state_space` reads)."""
    return points.converged.long() * (1 + points.stable.long())


def switch_lambdas(
    directions: torch.Tensor,
    keep: torch.Tensor,
    lambdas: Sequence[float],
    answer: float,
    *,
    tolerance: float = 36.0,
) -> torch.Tensor:
    """Per network, the first λ at which a kept fixed point reads out ``answer``: where it switches task.

    ``directions (S, L, P)``: the response direction (degrees) read out at each of ``P`` fixed points
    of each network under each of the ``L`` mixtures of ``lambdas``; ``keep (S, L, P)`` bool: the
    points that count (e.g. the stable ones). A point reads out ``answer`` when its direction lies
    within ``tolerance`` degrees of it on the circle. Returns ``(S,)`` float32: that λ, NaN for a
    network that never switches.
    """
    if directions.ndim != 3 or keep.shape != directions.shape or directions.shape[1] != len(lambdas):
        raise ValueError(
            f"directions {tuple(directions.shape)} and keep {tuple(keep.shape)} must both be "
            f"(S, {len(lambdas)}, P): one entry per network, lambda and fixed point"
        )
    hit = ((circular_distance(directions, answer) < tolerance) & keep).any(2)  # (S, L)
    lam = torch.tensor(list(lambdas))
    first = hit.long().argmax(1)  # the first True (0 if none)
    return torch.where(hit.any(1), lam[first], torch.full_like(lam[first], math.nan))


def stable_directions(
    directions: torch.Tensor, keep: torch.Tensor, networks: Mapping[str, int]
) -> dict[str, list[torch.Tensor]]:
    """``{name: [directions of the kept points under each λ]}`` for the network ``networks[name]``:
    what :func:`neuromod_lib.plots.fixed_point_directions` draws. ``directions``, ``keep`` ``(S, L, P)``."""
    return {
        name: [directions[s, i][keep[s, i]] for i in range(directions.shape[1])]
        for name, s in networks.items()
    }


def state_space_panels(
    states: torch.Tensor, points: torch.Tensor, status: torch.Tensor, networks: Mapping[str, int]
) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """For each named network: its trajectories and fixed points in its own first two principal components.

    ``states (S, L, B, T, N)``: the hidden states of ``B`` trials of each network under each of ``L``
    contexts; ``points (S, L, P, N)`` its fixed points and ``status (S, L, P)`` theirs
    (:func:`fixed_point_status`); ``networks``: ``{name: network index}``. One PCA per network is fitted
    to all its states (every context), so the contexts share its axes. Returns
    ``{name: (trajectories (L, B, T, 2), points (L, P, 2), status (L, P))}``, what
    :func:`neuromod_lib.plots.state_space` draws.
    """
    panels = {}
    for name, s in networks.items():
        basis = pca(states[s].reshape(-1, states.shape[-1]), n_components=2)
        panels[name] = (basis.transform(states[s]), basis.transform(points[s]), status[s])
    return panels


# --- tables and the computed answer of notebook 05 ----------------------------------------------


def performance_table(
    perf: torch.Tensor,
    solved: torch.Tensor,
    labels: Sequence[str],
    tasks: Sequence[str],
    *,
    groups: Sequence[str] | None = None,
    steps: int | None = None,
) -> Table:
    """Trained performance per task, mean over each group's replicates, and how many of them solve
    every task. ``perf (S, K)`` for the ``K`` ``tasks``; ``solved (S,)`` bool."""
    rows = []
    for g, values in by_group(perf, labels, groups).items():
        done = by_group(solved, labels, [g])[g]
        rows.append([g, *values.mean(0).tolist(), f"{int(done.sum())}/{len(done)}"])
    budget = f"; trained for {steps} steps" if steps is not None else ""
    return table(
        rows,
        ["pathway", *tasks, "solved"],
        formats=dict.fromkeys(tasks, ".2f"),
        caption=f"Performance per task, mean over replicates{budget}.",
    )


def curve_table(
    curves: Mapping[str, torch.Tensor],
    xs: Sequence[float],
    *,
    symbol: str,
    x_format: str = "g",
    every: int = 1,
    fmt: str = ".2f",
    caption: str = "",
) -> Table:
    """One row per curve (``{name: values (L,)}`` at the ``L`` points ``xs``), one column per
    ``every``-th point, headed ``<symbol>=<x>``."""
    if every < 1:
        raise ValueError(f"every={every!r} is not allowed; allowed: an int >= 1")
    kept = list(range(len(xs)))[::every]
    headers = [f"{symbol}={format(xs[i], x_format)}" for i in kept]
    rows = [[name, *(float(values[i]) for i in kept)] for name, values in curves.items()]
    return table(rows, ["pathway", *headers], formats=dict.fromkeys(headers, fmt), caption=caption)


def replicate_table(
    values: torch.Tensor,
    labels: Sequence[str],
    *,
    groups: Sequence[str] | None = None,
    fmt: str = ".2f",
    caption: str = "",
) -> Table:
    """One row per group: each replicate's value of ``values (S,)`` (``—`` for NaN) and their mean
    over the values that are not NaN (``—`` if none is)."""
    rows = []
    for g, v in by_group(values, labels, groups).items():
        finite = v[~v.isnan()]
        rows.append(
            [
                g,
                ", ".join("—" if math.isnan(x) else format(x, fmt) for x in v.tolist()),
                float(finite.mean()) if len(finite) else None,
            ]  # fmt: skip
        )
    return table(rows, ["pathway", "replicates", "mean"], formats={"mean": fmt}, caption=caption)
