"""Task-specific readouts: linear heads per task, and the modulator-guided readout.

:class:`TaskHeads` holds one linear classifier per task in a single ``(T, K, D)`` tensor and
applies each sample's own head with one gather and one einsum (no loop over tasks).

:class:`ModulatorGuidedReadout` is the decoder of stochastic comodulation (Boeshertz, Haimerl &
Savin 2023). When the gains of task-relevant units fluctuate with a shared random modulator m,
those units covary with m: the modulator *tags* them. The readout weights each last-layer unit k
by ``a_k = max(0, cov(h_k, m))``, normalised to mean 1 over units, and decodes ``W (h * a)``.
The covariance should measure *modulator-driven* variance: :meth:`ModulatorStatistics.update_draws`
takes it across several modulator draws of the same image (a routing pass), per image, then
averages over the task's images of the batch; :meth:`ModulatorStatistics.update` takes it across
the samples of a batch (different images: image variance mixes in). Either way the estimate is
smoothed across batches by a running average with rate ``max(1 / (n + 1), 1 / window)`` (n:
batches already seen for that task): an exact average for the first ``window`` batches, then an
exponential one with time constant ``window`` (100 by default, as in the predecessor code). The
weights are statistics, not parameters: no gradient flows through them, and the readout adds no
learnable parameters.

Does the modulator tag the units a task needs? :func:`unit_correlation` correlates each unit's
readout weight with its relevance measured without the modulator (notebook 02's tagging figure).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .modulation import check_task_ids


def _check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} must be an integer >= 1")
    return value


def _check_features(h: torch.Tensor, in_features: int) -> None:
    if not isinstance(h, torch.Tensor) or h.dim() != 2 or h.shape[1] != in_features:
        shape = list(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise ValueError(f"h has shape {shape}; expected (B, {in_features})")


class TaskHeads(nn.Module):
    """One linear layer ``D → K`` per task: ``weight`` (T, K, D), ``bias`` (T, K).

    Initialised like ``nn.Linear``: every entry uniform in ``[-1/sqrt(D), 1/sqrt(D)]``.
    """

    def __init__(self, n_tasks: int, in_features: int, n_outputs: int = 2) -> None:
        super().__init__()
        self.n_tasks = _check_positive_int("n_tasks", n_tasks)
        self.in_features = _check_positive_int("in_features", in_features)
        self.n_outputs = _check_positive_int("n_outputs", n_outputs)
        bound = 1 / math.sqrt(in_features)  # nn.Linear's default: U(-1/sqrt(D), 1/sqrt(D))
        self.weight = nn.Parameter(torch.empty(n_tasks, n_outputs, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_tasks, n_outputs).uniform_(-bound, bound))

    def forward(self, h: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Features ``(B, D)`` and task ids ``(B,)`` → outputs ``(B, K)`` of each sample's own head."""
        _check_features(h, self.in_features)
        task_ids = check_task_ids(task_ids, self.n_tasks, batch=h.shape[0]).to(h.device)
        return self._decode(h, task_ids)

    def _decode(self, h: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """``forward`` without the checks (for callers that have checked already)."""
        return torch.einsum("bkd,bd->bk", self.weight[task_ids], h) + self.bias[task_ids]

    def all_tasks(self, h: torch.Tensor) -> torch.Tensor:
        """Features ``(B, D)`` → the outputs of every task's head for every sample ``(B, T, K)``."""
        _check_features(h, self.in_features)
        return torch.einsum("bd,tkd->btk", h, self.weight) + self.bias

    def extra_repr(self) -> str:
        return f"n_tasks={self.n_tasks}, in_features={self.in_features}, n_outputs={self.n_outputs}"


class ModulatorStatistics(nn.Module):
    """Per-context running covariances ``cov(h_k, m)`` of units with the modulator, and the unit
    weights they give: the part of the modulator-guided readout that is statistics, not parameters.

    Kept apart from the heads so that a network with one shared readout (notebook 07) can keep
    the statistics of each context. Buffers (saved in the state_dict): ``covariance`` (T, D) and
    ``n_batches`` (T,). ``window``: the running average's longest time constant, in batches.
    """

    def __init__(self, n_tasks: int, in_features: int, window: int = 100) -> None:
        super().__init__()
        self.n_tasks = _check_positive_int("n_tasks", n_tasks)
        self.in_features = _check_positive_int("in_features", in_features)
        self.window = _check_positive_int("window", window)
        self.register_buffer("covariance", torch.zeros(self.n_tasks, self.in_features))
        self.register_buffer("n_batches", torch.zeros(self.n_tasks, dtype=torch.long))
        #: which tasks use the guided weights (the others decode with a = 1: a plain readout)
        self.register_buffer("guided", torch.ones(self.n_tasks, dtype=torch.bool), persistent=False)

    @property
    def weights(self) -> torch.Tensor:
        """Per-task unit weights ``(T, D)``: ``relu(covariance)`` normalised to mean 1 (all ones if all
        0, and for the tasks that ``guided`` marks as plain)."""
        positive = self.covariance.detach().clamp(min=0)
        mean = positive.mean(dim=1, keepdim=True)
        weights = torch.where(
            mean > 0, positive / mean.clamp(min=torch.finfo(mean.dtype).tiny), torch.ones_like(positive)
        )
        return torch.where(self.guided[:, None], weights, torch.ones_like(weights))

    @torch.no_grad()
    def update(self, h: torch.Tensor, task_ids: torch.Tensor, m: torch.Tensor) -> None:
        """Fold this batch's per-task covariances ``cov(h_k, m)`` *across samples* (unbiased) into the
        running averages. Across different images this mixes image variance into the estimate; see
        :meth:`update_draws` for the modulator-driven covariance."""
        h, m = h.detach().to(self.covariance.dtype), m.detach().to(h.device, self.covariance.dtype)
        n = torch.bincount(task_ids, minlength=self.n_tasks).to(h.dtype)
        sum_h = torch.zeros_like(self.covariance).index_add_(0, task_ids, h)
        sum_m = torch.zeros_like(n).index_add_(0, task_ids, m)
        sum_hm = torch.zeros_like(self.covariance).index_add_(0, task_ids, h * m[:, None])
        batch_cov = (sum_hm - sum_h * (sum_m / n.clamp(min=1))[:, None]) / (n - 1).clamp(min=1)[:, None]
        self._fold(batch_cov, n >= 2)

    @torch.no_grad()
    def update_draws(self, h: torch.Tensor, task_ids: torch.Tensor, m: torch.Tensor) -> None:
        """Fold the *modulator-driven* covariances into the running averages: ``h`` ``(R, B, D)`` the
        units of B images under R modulator draws ``m`` ``(R, B)`` each (R >= 2).

        Per image, ``cov(h_k, m)`` over its R draws (unbiased): the image is the same, so only the
        modulator varies; per task, the mean over that task's images of the batch.
        """
        if h.dim() != 3 or m.shape != h.shape[:2] or h.shape[0] < 2:
            raise ValueError(
                f"h {list(h.shape)} and m {list(m.shape)} must be (R, B, D) and (R, B) with R >= 2 draws"
            )
        h, m = h.detach().to(self.covariance.dtype), m.detach().to(h.device, self.covariance.dtype)
        hc, mc = h - h.mean(0), m - m.mean(0)
        per_image = (hc * mc[..., None]).sum(0) / (h.shape[0] - 1)  # (B, D)
        n = torch.bincount(task_ids, minlength=self.n_tasks).to(h.dtype)
        total = torch.zeros_like(self.covariance).index_add_(0, task_ids, per_image)
        self._fold(total / n.clamp(min=1)[:, None], n >= 1)

    def _fold(self, batch_cov: torch.Tensor, seen: torch.Tensor) -> None:
        """Running average: rate ``max(1 / (n + 1), 1 / window)`` for the tasks ``seen`` in this batch."""
        rate = (1 / (self.n_batches + 1).to(batch_cov.dtype)).clamp(min=1 / self.window)
        rate = torch.where(seen, rate, torch.zeros_like(rate))
        self.covariance += rate[:, None] * (batch_cov - self.covariance)
        self.n_batches += seen.long()

    def extra_repr(self) -> str:
        return f"window={self.window}"


class ModulatorGuidedReadout(ModulatorStatistics):
    """Task heads applied to ``h * a[task]``, with ``a`` the per-task modulator-covariance weights.

    ``forward(h (B, D), task_ids (B,), m (B,) | None)``: in training mode with ``m`` given, first
    update the per-task covariance estimates from this batch (tasks with fewer than 2 samples in
    the batch are left as they are), then decode with the updated weights. In eval mode, or
    without ``m``, the stored weights are used as they are. Before any statistics exist, a = 1.

    Construction: ``ModulatorGuidedReadout(heads)`` wraps existing :class:`TaskHeads`;
    ``ModulatorGuidedReadout(n_tasks, in_features, n_outputs=2)`` makes its own.
    ``window``: the running average's longest time constant, in batches.

    Buffers (saved in the state_dict): ``covariance`` (T, D) and ``n_batches`` (T,).
    """

    def __init__(
        self,
        heads: TaskHeads | int,
        in_features: int | None = None,
        n_outputs: int = 2,
        window: int = 100,
    ) -> None:
        if isinstance(heads, TaskHeads):
            if in_features not in (None, heads.in_features):
                raise ValueError(f"in_features={in_features!r} differs from the heads' {heads.in_features}")
        elif in_features is None:
            raise ValueError("in_features is required when heads is a number of tasks")
        else:
            heads = TaskHeads(heads, in_features, n_outputs)
        super().__init__(heads.n_tasks, heads.in_features, window)
        self.heads = heads

    @property
    def extra_parameters(self) -> int:
        """Learnable parameters beyond the heads' (0: the weights are statistics)."""
        heads = {id(p) for p in self.heads.parameters()}
        return sum(p.numel() for p in self.parameters() if id(p) not in heads)

    def forward(self, h: torch.Tensor, task_ids: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        """Features ``(B, D)``, task ids ``(B,)``, modulator ``(B,)`` or None → outputs ``(B, K)``."""
        _check_features(h, self.in_features)
        task_ids = check_task_ids(task_ids, self.n_tasks, batch=h.shape[0]).to(h.device)
        if self.training and m is not None:
            if m.shape != (h.shape[0],):
                raise ValueError(f"m has shape {list(m.shape)}; expected ({h.shape[0]},)")
            self.update(h, task_ids, m)
        return self.heads._decode(h * self.weights[task_ids].to(h.dtype), task_ids)


def unit_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over units (the last dimension) of two per-unit quantities ``(..., D)``
    → ``(...)``, e.g. one value per seed and task. Notebook 02 correlates each unit's relevance
    (measured without the modulator) with its guided readout weight: positive when the readout
    listens to the units the task needs. A constant vector gives 0.
    """
    if x.shape != y.shape:
        raise ValueError(f"x has shape {list(x.shape)} but y {list(y.shape)}; expected the same (..., D)")
    xc = x - x.mean(-1, keepdim=True)
    yc = y - y.mean(-1, keepdim=True)
    return (xc * yc).sum(-1) / (xc.norm(dim=-1) * yc.norm(dim=-1)).clamp(min=1e-12)

