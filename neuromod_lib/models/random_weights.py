"""A fixed random network whose tasks differ only in a learned context: "learning to modulate random weights".

This is the model of Hong & Pavlic (2022/2023), "Learning to Modulate Random Weights:
Neuromodulation-inspired Neural Networks for Efficient Continual Learning" (arXiv:2204.04297),
following the authors' follow-up ("FlyNet") code. It mimics the insect mushroom body::

    z   = M x                          M: (H, D) fixed sparse binary expansion, H = expansion * D
    h   = ReLU(z - mean_j z_j)         global inhibition: each sample's mean over the H units
    y_t = s_t * W_R (c_t * h)          W_R: (C, H) fixed random readout, no bias

Each row of ``M`` (a Kenyon-cell-like hidden unit) has exactly ``k`` ones at random, distinct
input positions. ``M`` and ``W_R`` are drawn once from ``config.seed`` and never trained. Each
task ``t`` learns only a context vector ``c_t`` (``H`` values, multiplying the hidden units
elementwise: a neuromodulator-like gain) and a scalar strength ``s_t``: ``H + 1`` values per task.
Once a task is learned its context is frozen, so later tasks cannot change it: there is no
forgetting by construction, and a saved model is its seed plus its contexts.

Initialisation: as in the reference code, ``W_R`` is PyTorch's ``nn.Linear`` default, uniform in
``±1/sqrt(H)``, and ``c_t`` is Xavier-normal for a ``(1, H)`` tensor, std ``sqrt(2 / (1 + H))``.
The strength differs: the reference draws ``s_t`` Xavier-normal for a ``(1, 1)`` tensor, i.e.
from N(0, 1); here ``s_t = 1``, so that every task starts from the same, positive scale (an
audit of this project found the difference negligible). The paper
trains each task with cross-entropy and RMSprop (lr 1e-2, batch 128).

Design choices:

- **M is stored as indices.** The buffer ``expansion_indices`` ``(H, k)`` holds each hidden
  unit's input positions (sorted); :meth:`RandomWeightNet.expansion_matrix` gives the dense
  ``(H, D)`` 0/1 matrix. ``M x`` is a sparse CSR product (built per call from the indices, ~15 us)
  on CPU and CUDA and a gather-and-sum elsewhere (e.g. ``mps``). For D = 784, H = 7840, C = 10,
  B = 128 on 2 CPU threads (medians on a busy shared machine), ``M x`` took 2.5 ms as CSR against
  13 ms as a dense ``(H, D)`` buffer (17 ms as a gather), and a training step (forward, backward,
  RMSprop) 13 ms against 23 ms (27 ms); CSR was the fastest in every repeat.
- **One Parameter per task.** ``contexts`` and ``strengths`` are :class:`torch.nn.ParameterList`
  of ``(H,)`` and ``()`` parameters, so :meth:`RandomWeightNet.add_task` works after construction
  and an optimizer on :meth:`RandomWeightNet.task_parameters` can only ever touch that task.
- **Freezing is enforced twice:** a frozen task's parameters stop requiring gradients *and* are
  detached in every forward pass, so even ``net.requires_grad_(True)`` or an optimizer over all
  parameters cannot change them. An unfrozen task absent from a batch gets a zero gradient.
- **Mixed batches** gather each sample's context and strength by task id: no loop over samples.
- Inputs ``(B, ...)`` are flattened to ``(B, D)`` (so image batches can be passed as they are).
"""

from __future__ import annotations

import math
import operator
import os
import warnings
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from ..checks import check_fields, is_int, is_number
from ..modulation import check_task_ids, context_vectors, is_task_ids, random_weight_logits
from ..storage import load_checkpoint, save_checkpoint

FORMAT = "neuromod.RandomWeightNet/2"  # 2: the config field k became inputs_per_unit


@dataclass(frozen=True)
class RandomWeightConfig:
    """Sizes of a :class:`RandomWeightNet` and the seed of its random weights; checked when made.

    ``n_inputs`` D, ``n_classes`` C; ``expansion`` (>= 1) sets ``n_hidden = round(expansion * D)``;
    ``inputs_per_unit`` k, the ones per hidden unit (``1 <= k <= D``); ``seed`` of the fixed weights
    ``M`` and ``W_R``.
    """

    n_inputs: int
    n_classes: int
    expansion: float = 10.0
    inputs_per_unit: int = 7
    seed: int = 0

    def __post_init__(self) -> None:
        d, k = self.n_inputs, self.inputs_per_unit
        check_fields(
            self,
            [
                ("n_inputs", is_int(d) and d >= 1, "an integer >= 1"),
                ("n_classes", is_int(self.n_classes) and self.n_classes >= 1, "an integer >= 1"),
                ("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0"),
                (
                    "expansion",
                    is_number(self.expansion) and self.expansion >= 1,
                    "a finite number >= 1 (n_hidden = expansion * n_inputs)",
                ),
                (
                    "inputs_per_unit",
                    is_int(k) and is_int(d) and 1 <= k <= d,
                    f"an integer in [1, n_inputs={d}] (ones per hidden unit)",
                ),
            ],
        )

    @property
    def n_hidden(self) -> int:
        """H, the number of hidden (Kenyon-cell-like) units."""
        return round(self.expansion * self.n_inputs)


def _draw_expansion(config: RandomWeightConfig, generator: torch.Generator) -> torch.Tensor:
    """``(H, k)`` sorted input positions: each row a uniformly random k-subset of ``range(D)``."""
    scores = torch.rand(config.n_hidden, config.n_inputs, generator=generator)
    return scores.topk(config.inputs_per_unit, dim=1).indices.sort(dim=1).values


def _draw_readout(config: RandomWeightConfig, generator: torch.Generator) -> torch.Tensor:
    """``(C, H)`` uniform in ``±1/sqrt(H)``: ``nn.Linear``'s default weight initialisation."""
    bound = 1.0 / math.sqrt(config.n_hidden)
    return (2 * torch.rand(config.n_classes, config.n_hidden, generator=generator) - 1) * bound


def expand_sparse(indices: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``M x`` (M: 0/1 with ones at ``indices`` ``(H, k)``) as a CSR product: ``(B, D)`` → ``(B, H)``."""
    h, k = indices.shape
    rows = torch.arange(0, h * k + 1, k, device=indices.device)
    ones = torch.ones(h * k, device=indices.device, dtype=x.dtype)
    with warnings.catch_warnings():  # "sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        m = torch.sparse_csr_tensor(rows, indices.reshape(-1), ones, (h, x.shape[1]), check_invariants=False)
    return (m @ x.t().contiguous()).t().contiguous()


def expand_gather(indices: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``M x`` as a gather and a sum over the ``k`` inputs of each hidden unit (any device)."""
    return x[:, indices].sum(-1)


def _task_range(n: int) -> str:
    return f"0..{n - 1}" if n else "none (add one with add_task())"


class RandomWeightNet(nn.Module):
    """Fixed random expansion and readout, modulated per task by a context and a strength.

    Buffers (never trained, not in the ``state_dict``): ``expansion_indices`` ``(H, k)`` long and
    ``readout`` ``(C, H)``, both rebuilt from ``config.seed``. Parameters, per task ``t``:
    ``contexts[t]`` ``(H,)`` and ``strengths[t]`` ``()``. See the module docstring.
    """

    def __init__(self, config: RandomWeightConfig) -> None:
        super().__init__()
        self.config = config
        gen = torch.Generator().manual_seed(config.seed)
        self.register_buffer("expansion_indices", _draw_expansion(config, gen), persistent=False)
        self.register_buffer("readout", _draw_readout(config, gen), persistent=False)
        self.contexts = nn.ParameterList()
        self.strengths = nn.ParameterList()
        self._frozen: set[int] = set()

    # --- tasks -------------------------------------------------------------------------------
    @property
    def n_tasks(self) -> int:
        return len(self.contexts)

    def add_task(self, generator: torch.Generator | None = None) -> int:
        """Append a task: context ``(H,)`` Xavier-normal (std ``sqrt(2/(1+H))``), strength 1; return its id.

        Drawn on the CPU from ``generator`` (torch's global RNG if None), then moved beside the buffers.
        """
        h, ref = self.config.n_hidden, self.readout
        context = torch.randn(h, generator=generator) * math.sqrt(2.0 / (1 + h))
        self.contexts.append(nn.Parameter(context.to(ref.device, ref.dtype)))
        self.strengths.append(nn.Parameter(torch.ones((), device=ref.device, dtype=ref.dtype)))
        return self.n_tasks - 1

    def _check_task(self, task: object) -> int:
        """``task`` as an int if it is an existing task id (any integer type), else ``ValueError``."""
        try:
            index = operator.index(task)  # type: ignore[arg-type]
        except TypeError:
            index = None
        if index is None or isinstance(task, bool) or not 0 <= index < self.n_tasks:
            raise ValueError(f"task {task!r} was never added; tasks: {_task_range(self.n_tasks)}")
        return index

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        """``[context (H,), strength ()]`` of ``task``, to optimise; ``ValueError`` if unknown or frozen."""
        task = self._check_task(task)
        if task in self._frozen:
            raise ValueError(f"task {task} is frozen; its context and strength can no longer be trained")
        return [self.contexts[task], self.strengths[task]]

    def freeze(self, task: int) -> None:
        """Make ``task``'s context and strength immutable (no gradient, detached in every forward)."""
        task = self._check_task(task)
        self._frozen.add(task)
        self.contexts[task].requires_grad_(False)
        self.strengths[task].requires_grad_(False)

    def frozen(self, task: int) -> bool:
        """Whether ``task`` has been frozen."""
        return self._check_task(task) in self._frozen

    def _task_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every task's context ``(T, H)`` and strength ``(T,)``; frozen tasks detached."""
        if not self.n_tasks:
            raise ValueError("no task was ever added; add one with add_task()")
        frozen = self._frozen
        contexts = [c.detach() if t in frozen else c for t, c in enumerate(self.contexts)]
        strengths = [s.detach() if t in frozen else s for t, s in enumerate(self.strengths)]
        return torch.stack(contexts), torch.stack(strengths)

    # --- the network -------------------------------------------------------------------------
    def expansion_matrix(self) -> torch.Tensor:
        """The dense ``(H, D)`` 0/1 expansion ``M`` (for inspection; the forward pass stays sparse)."""
        h, d = self.config.n_hidden, self.config.n_inputs
        m = torch.zeros(h, d, device=self.readout.device, dtype=self.readout.dtype)
        return m.scatter_(1, self.expansion_indices, 1.0)

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        d = self.config.n_inputs
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or math.prod(x.shape[1:]) != d:
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be (B, {d}) (or (B, ...) with {d} values per sample); got {shape}")
        return x.reshape(x.shape[0], d).to(self.readout.device, self.readout.dtype)

    def _expand(self, x: torch.Tensor) -> torch.Tensor:
        """``M x``: ``(B, D)`` → ``(B, H)``, sparse (CSR) on CPU/CUDA, gather-and-sum elsewhere."""
        if x.device.type in ("cpu", "cuda"):
            return expand_sparse(self.expansion_indices, x)
        return expand_gather(self.expansion_indices, x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden activity ``h = ReLU(M x - mean_j (M x)_j)``: ``(B, D)`` → ``(B, H)``."""
        z = self._expand(self._flat(x))
        return torch.relu(z - z.mean(dim=1, keepdim=True))

    @property
    def n_contexts(self) -> int:
        """The length of context vectors: one weight per task added so far."""
        return self.n_tasks

    def _context(self, context: torch.Tensor | int, batch: int) -> torch.Tensor:
        """A checked context on the buffers' device: task ids ``(B,)`` long, or vectors ``(B, T)``."""
        if is_task_ids(context):
            ids = check_task_ids(context, self.n_tasks, batch, learned=True)
            return ids.to(self.readout.device)
        return context_vectors(context, self.n_tasks, batch).to(self.readout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | int) -> torch.Tensor:
        """Logits ``(B, C)`` of each sample under its context: ``x`` ``(B, D)``.

        ``context``: task ids ``(B,)`` (an int: one task for the whole batch), each sample under its
        own task, ``s_t W_R (c_t * h)``; or context vectors ``(B, T)``, each sample's modulation the
        mix ``sum_t context[:, t] s_t c_t`` of the tasks' scaled contexts (a one-hot row gives that
        task's logits up to rounding; a mixture or a noisy vector is the ambiguous or noisy context
        of notebook 07's robustness tests). See :func:`~neuromod_lib.modulation.random_weight_logits`.
        """
        h = self.features(x)
        context = self._context(context, h.shape[0])
        contexts, strengths = self._task_values()
        return random_weight_logits(h, context, contexts, strengths, self.readout)

    def context_logits(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C)`` under context vectors ``(B, T)``: :meth:`forward` with vectors."""
        return self(x, context)

    def all_task_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Every task's logits at once, ``(T, B, C)`` (e.g. for :func:`infer_task`).

        Computed with each task's effective readout ``c_t * W_R^T`` ``(T, H, C)``, which is smaller
        than the ``(T, B, H)`` modulated activities when ``C < B``.
        """
        h = self.features(x)
        contexts, strengths = self._task_values()
        return random_weight_logits(h, None, contexts, strengths, self.readout)

    # --- sizes -------------------------------------------------------------------------------
    def learned_parameters_per_task(self) -> int:
        """``H + 1``: a context value per hidden unit and one strength."""
        return self.config.n_hidden + 1

    def bytes_per_task(self) -> int:
        """Bytes stored per task: ``(H + 1)`` values of the model's dtype (``4 (H + 1)`` in float32)."""
        return self.learned_parameters_per_task() * self.readout.element_size()

    def dense_parameters(self) -> int:
        """Parameters of the equivalent dense net D-H-C with biases: ``D H + H + H C + C``."""
        d, h, c = self.config.n_inputs, self.config.n_hidden, self.config.n_classes
        return d * h + h + h * c + c

    # --- storage -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Atomically write the config (seed included), contexts ``(T, H)``, strengths ``(T,)``, frozen."""
        h = self.config.n_hidden
        contexts = torch.stack(list(self.contexts)) if self.n_tasks else torch.zeros(0, h)
        strengths = torch.stack(list(self.strengths)) if self.n_tasks else torch.zeros(0)
        state = {
            "format": FORMAT,
            **asdict(self.config),
            "contexts": contexts.detach().cpu().clone(),
            "strengths": strengths.detach().cpu().clone(),
            "frozen": [t in self._frozen for t in range(self.n_tasks)],
        }
        save_checkpoint(state, path)

    @classmethod
    def load(cls, path: str | os.PathLike, config: RandomWeightConfig | None = None) -> RandomWeightNet:
        """Rebuild a saved net from its seed and contexts (on the CPU).

        ``config``: the config expected; ``ValueError`` naming every field that differs from the file's.
        """
        state = load_checkpoint(path)
        if state.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not a saved RandomWeightNet (format {state.get('format')!r})")
        saved = RandomWeightConfig(**{f.name: state[f.name] for f in fields(RandomWeightConfig)})
        if config is not None and config != saved:
            diff = [
                f"{f.name}: file has {getattr(saved, f.name)!r}, config has {getattr(config, f.name)!r}"
                for f in fields(RandomWeightConfig)
                if getattr(saved, f.name) != getattr(config, f.name)
            ]
            raise ValueError(f"{str(path)!r} does not match the config: {'; '.join(diff)}")
        net = cls(saved)
        contexts, strengths, frozen = state["contexts"], state["strengths"], state["frozen"]
        t = len(frozen)
        if contexts.shape != (t, saved.n_hidden) or strengths.shape != (t,):
            raise ValueError(
                f"{str(path)!r} is corrupt: contexts {list(contexts.shape)}, strengths "
                f"{list(strengths.shape)} for {t} tasks of H={saved.n_hidden}"
            )
        for context, strength, is_frozen in zip(contexts, strengths, frozen, strict=True):
            task = net.add_task(torch.Generator())  # values overwritten; the global RNG untouched
            with torch.no_grad():
                net.contexts[task].copy_(context)
                net.strengths[task].copy_(strength)
            if is_frozen:
                net.freeze(task)
        return net

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"D={c.n_inputs}, H={c.n_hidden}, C={c.n_classes}, inputs_per_unit={c.inputs_per_unit}, "
            f"seed={c.seed}, tasks={self.n_tasks}, frozen={sorted(self._frozen)}"
        )


def task_entropy(logits_per_task: torch.Tensor) -> torch.Tensor:
    """Softmax entropy (nats) of each task's prediction: ``(T, B, C)`` → ``(T, B)``."""
    if not isinstance(logits_per_task, torch.Tensor) or logits_per_task.dim() != 3:
        shape = list(logits_per_task.shape) if isinstance(logits_per_task, torch.Tensor) else "not a tensor"
        raise ValueError(f"logits_per_task must be (T, B, C); got {shape}")
    logp = torch.log_softmax(logits_per_task, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def infer_task(logits_per_task: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """The task with the most confident prediction (lowest entropy): ``(T, B, C)`` → ``(B,)``.

    One-shot task inference as in SupSup (Wortsman et al. 2020). ``groups=None``: per sample;
    ``groups`` ``(B,)`` long: every sample of a group gets the task of lowest *mean* entropy over
    the group — SupSup's protocol, where a test batch comes from one task and one task is inferred
    for the whole batch. Ties go to the lowest task id.
    """
    entropy = task_entropy(logits_per_task)
    if entropy.shape[0] == 0:
        raise ValueError("logits_per_task has no task (T = 0)")
    if groups is None:
        return entropy.argmin(dim=0)
    if groups.shape != entropy.shape[1:]:
        raise ValueError(
            f"groups must be ({entropy.shape[1]},): one group id per sample; got {list(groups.shape)}"
        )
    n = int(groups.max()) + 1 if groups.numel() else 0
    total = entropy.new_zeros(entropy.shape[0], n).index_add_(1, groups, entropy)
    count = torch.bincount(groups, minlength=n).clamp(min=1)
    return (total / count).argmin(dim=0)[groups]
