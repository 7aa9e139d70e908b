"""The multitask cognitive battery of Yang et al. (2019), generated in one vectorised pass.

Vedovati & Ching (2024), "Synergistic pathways of modulation enable robust task packing",
ask how many tasks one recurrent network can hold ("pack") when each task is selected by a
modulation of the network rather than by an extra input. They use the battery of Yang,
Joglekar, Song, Newsome & Wang (2019, Nature Neuroscience, "Task representations in neural
networks trained to perform many cognitive tasks"; code: gyyang/multitask ``task.py``). This
module re-implements the 13 tasks of that battery that we need (``TASKS``), so that the
capacity experiments can grow the task set one task at a time (``PACKING_ORDER``).

Layout (as in Yang et al.): the inputs are a fixation unit and two rings of ``n_ring``
direction-tuned units (modality 1 and 2); the outputs are a fixation unit and one response
ring. A trial is a sequence of epochs (fixation, stimulus, delay, response); the network must
hold its fixation output high until the go cue (the fixation input going off, or in the
reaction-time and match tasks the onset of the stimulus to respond to) and then report a
direction on the response ring, or keep fixating on a no-go trial (``dms`` / ``dnms``). Every
trial lasts until 500 ms after its go cue (Yang's ``tdim = go + 500 ms``) and is scored at its
own last step, as Yang's ``get_perf``.

The tasks, as Yang's ``task.py`` (``TASKS`` name -> Yang's rule):

- ``go`` / ``anti`` (``fdgo`` / ``fdanti``): a stimulus (onset U(300, 700) ms) stays on; the
  fixation input goes off U(500, 1500) ms after its onset; respond at it / opposite to it;
- ``rt_go`` / ``rt_anti`` (``reactgo`` / ``reactanti``): the fixation input stays on; the
  stimulus appears at U(500, 2500) ms and is the go cue;
- ``dly_go`` / ``dly_anti`` (``delaygo`` / ``delayanti``): the stimulus (onset 300/500/700 ms,
  lasting 200/400/600 ms) is followed by a delay of 200/400/800/1600 ms before the go cue;
- ``dm1`` / ``dm2`` (``dm1`` / ``dm2``): two stimuli 90-270 degrees apart in one modality,
  strengths ``mean +- coherence`` (mean U(0.8, 1.2), random sign), onset U(100, 400) ms,
  lasting 400/800/1600 ms until the go cue; respond at the stronger one;
- ``ctx_dm1`` / ``ctx_dm2`` (``contextdm1`` / ``contextdm2``): both stimuli in both
  modalities, each modality with its own mean, coherence and sign; respond at the stimulus
  that is stronger in the attended modality;
- ``multi_dm`` (``multidm``): overall strengths ``s1, s2 = mean +- coherence``, each split
  across the modalities as ``s +- d / 2`` with ``d = s U(0.2, 0.8)`` (random sign); respond
  at the stimulus with the larger summed strength;
- ``dms`` / ``dnms`` (``dmsgo`` / ``dmsnogo``): the fixation input stays on; a sample (onset
  200/400/600 ms, lasting 200/400/600 ms), a delay of 200/400/800/1600 ms, then a test
  stimulus that stays on and is the go cue, at the sample's location (match) or 20-340
  degrees away; sample and test modalities are drawn independently. ``dms`` responds at the
  test on a match and keeps fixating otherwise, ``dnms`` the reverse.

Why a new generator: Yang's code loops over trials in NumPy and draws one timing per batch.
Here every per-trial quantity is drawn for all trials at once (on the CPU, from an explicit
``torch.Generator``), and the ``(*shape, T, units)`` tensors are built by broadcasting a time
index against per-trial epoch boundaries, directly on the requested device: a batch of 3072
mixed trials takes a few milliseconds. No input noise is added here (the network adds input
and recurrent noise itself), so a batch is a deterministic function of the task ids, the
``TaskConfig`` and the generator state.

Design choices that differ from Yang et al. (2019):

- timings, modalities and every other parameter are drawn per trial, not once per batch
  (Yang draws one timing and, in the single-stimulus and match tasks, one modality per
  batch): this lets one batch mix tasks. Each trial keeps its own length ``response_off``
  (go cue + 500 ms, as Yang's ``tdim``); a batch is padded to its longest trial, and the
  padding (``t >= response_off``, where inputs and targets simply continue) has cost weight
  0 and is never scored;
- coherences default to (0.08, 0.16, 0.32) (Yang: 0.01 to 0.08, or 0.1 to 0.8 with his
  ``easy_task``), an easier setting for small networks and short training runs;
- durations are converted to steps with ``round(ms / dt)`` (at least one step for a drawn
  non-zero duration) instead of Yang's ``int(ms / dt)``; the two agree whenever ``dt``
  divides the duration (every fixed duration at dt = 20 or 100 ms), and a drawn U(a, b)
  duration moves by at most one step;
- the cost mask is one weight per time step (0, 1, 0, 5, as Yang's ``add_c_mask``); the loss
  squares it and doubles the fixation output's weight (Yang's ``c_mask[:, 0] *= 2``), so the
  per-output weights live in the loss, not here;
- there is no rule input: the task is selected by modulating the network (the point of the
  study), and only the 13 tasks above are implemented (no delayed decision or category tasks).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ..checks import check_fields, is_int, is_number

__all__ = [
    "PACKING_ORDER",
    "TASKS",
    "TaskConfig",
    "TrialBatch",
    "first_tasks",
    "generate",
    "performance",
    "popvec",
    "preferred_directions",
    "task_index",
]

TASKS: tuple[str, ...] = (
    "go", "rt_go", "dly_go", "anti", "rt_anti", "dly_anti",
    "dm1", "dm2", "ctx_dm1", "ctx_dm2", "multi_dm", "dms", "dnms",
)  # fmt: skip

# The order in which capacity experiments add tasks (roughly easy -> hard): K tasks = the first K.
PACKING_ORDER: tuple[str, ...] = (
    "go", "anti", "dm1", "dly_go", "rt_go", "dm2", "dly_anti",
    "rt_anti", "ctx_dm1", "ctx_dm2", "multi_dm", "dms", "dnms",
)  # fmt: skip

TWO_PI = 2 * math.pi
TOLERANCE = 0.2 * math.pi  # a response counts as correct within 36 degrees of the target
_IGNORE_MS = 100.0  # the first 100 ms of every trial are not trained (Yang's pre_on)
_CHECK_MS = 100.0  # nor the first 100 ms after the go cue (Yang's check_ons = go + 100 ms)
_RESPONSE_MS = 500.0  # every trial ends 500 ms after its go cue (Yang's tdim)
_BUMP = 0.8  # peak of a tuning bump (inputs and response targets)
_BUMP_WIDTH = math.pi / 8  # distances are measured in units of pi/8 (Yang's get_dist(...)/(pi/8))
_FIX_HIGH, _FIX_LOW, _BASELINE = 0.8, 0.05, 0.05  # fixation-output targets; response-ring floor
_PRE_WEIGHT, _RESPONSE_WEIGHT = 1.0, 5.0  # cost-mask weights before the go cue / in the response
_END = 1 << 30  # an offset step that is never reached: "on until the end of the trial"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TaskConfig:
    """Time step, ring size and decision difficulty shared by every task.

    ``dt`` is the step in ms (Yang et al. use 20; our quick profile uses 100), ``n_ring`` the
    number of direction-tuned units per input ring and in the response ring, ``coherences``
    the strength differences of the decision-making tasks: the two stimuli have strengths
    ``mean +- c`` with ``mean ~ U(0.8, 1.2)`` and ``c`` drawn from ``coherences`` (random sign).
    Coherences must be below 0.8 so that both strengths stay positive.
    """

    dt: float = 100.0
    n_ring: int = 32
    coherences: tuple[float, ...] = (0.08, 0.16, 0.32)

    def __post_init__(self) -> None:
        dt, n, cohs = self.dt, self.n_ring, self.coherences
        cohs_ok = isinstance(cohs, Sequence) and not isinstance(cohs, str) and len(cohs) > 0
        cohs_ok = cohs_ok and all(is_number(c) and 0 < c < 0.8 for c in cohs)
        check_fields(
            self,
            [
                ("dt", is_number(dt) and 0 < dt <= 500, "the step in ms, a number in (0, 500]"),
                ("n_ring", is_int(n) and n >= 4, "an integer >= 4"),
                ("coherences", cohs_ok, "a non-empty sequence of numbers in (0, 0.8)"),
            ],
        )
        object.__setattr__(self, "dt", float(dt))
        object.__setattr__(self, "n_ring", int(n))
        object.__setattr__(self, "coherences", tuple(float(c) for c in cohs))

    @property
    def n_inputs(self) -> int:
        """Input units: fixation, ring of modality 1, ring of modality 2."""
        return 1 + 2 * self.n_ring

    @property
    def n_outputs(self) -> int:
        """Output units: fixation, response ring."""
        return 1 + self.n_ring


def task_index(names: str | Sequence[str]) -> Tensor:
    """Indices into ``TASKS`` of the task ``names`` (one string is one name): ``(len(names),)`` long."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError(f"names=[] must name at least one task; choose from {', '.join(TASKS)}")
    for name in names:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return torch.tensor([TASKS.index(name) for name in names], dtype=torch.long)


def first_tasks(k: int) -> tuple[str, ...]:
    """The first ``k`` tasks of ``PACKING_ORDER``, ``1 <= k <= len(TASKS)``."""
    allowed = f"choose k in [1, {len(TASKS)}]"
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k={k!r} must be an integer; {allowed}")
    if k < 1:
        raise ValueError(f"k={k} must be at least 1; {allowed}")
    if k > len(TASKS):
        raise ValueError(f"k={k} is larger than the {len(TASKS)} tasks available; {allowed}")
    return PACKING_ORDER[:k]


# --------------------------------------------------------------------------- task definitions


@dataclass(frozen=True)
class _Uniform:
    """Duration ~ U(low, high) ms, from a U(0, 1) draw ``u``."""

    low: float
    high: float

    def __call__(self, u: Tensor) -> Tensor:
        return self.low + (self.high - self.low) * u


@dataclass(frozen=True)
class _Choice:
    """Duration drawn uniformly from ``values`` (ms), from a U(0, 1) draw ``u``."""

    values: tuple[float, ...]

    def __call__(self, u: Tensor) -> Tensor:
        index = (u * len(self.values)).long().clamp_(max=len(self.values) - 1)
        return torch.tensor(self.values)[index]


@dataclass(frozen=True)
class _Timing:
    """Epoch durations (ms) of one task family: stimulus onset, stimulus, delay before the go cue.

    ``stimulus`` is how long the first stimulus lasts before the delay; with ``to_end`` it stays
    on until the end of the trial (then ``stimulus`` is the time from its onset to the go cue).
    ``fixation_to_end``: the fixation input never goes off (reaction-time and match tasks, whose
    go cue is the onset of a stimulus).
    """

    onset: Callable[[Tensor], Tensor]
    stimulus: Callable[[Tensor], Tensor]
    delay: Callable[[Tensor], Tensor]
    to_end: bool = False
    fixation_to_end: bool = False


_ZERO = _Choice((0.0,))
_SHORT = _Choice((200.0, 400.0, 600.0))
_DELAYS = _Choice((200.0, 400.0, 800.0, 1600.0))
# Families (Yang's functions): "reach" (fdgo_), "rt" (reactgo_), "delay" (delaygo_),
# "dm" (_dm, _contextdm), "match" (dms_).
_TIMINGS: dict[str, _Timing] = {
    "reach": _Timing(_Uniform(300, 700), _Uniform(500, 1500), _ZERO, to_end=True),
    "rt": _Timing(_Uniform(500, 2500), _ZERO, _ZERO, to_end=True, fixation_to_end=True),
    "delay": _Timing(_Choice((300.0, 500.0, 700.0)), _SHORT, _DELAYS),
    "dm": _Timing(_Uniform(100, 400), _Choice((400.0, 800.0, 1600.0)), _ZERO),
    "match": _Timing(_SHORT, _SHORT, _DELAYS, fixation_to_end=True),
}
_FAMILIES = tuple(_TIMINGS)


@dataclass(frozen=True)
class _Rule:
    """How one task draws its stimuli and maps them to a response.

    dm family: ``carries``, which modalities show the two stimuli; ``attends``, the weight of
    each modality's strengths in the decision (the target is the stimulus with the larger
    ``sum(attends * strength)``); ``split`` (``multi_dm``), one overall strength per stimulus,
    split across the modalities, instead of one independent pair of strengths per modality.
    Match family: ``go_on_match``, respond on a match (dms) or on a non-match (dnms).
    """

    family: str
    anti: bool = False
    carries: tuple[float, float] = (0.0, 0.0)
    attends: tuple[float, float] = (0.0, 0.0)
    split: bool = False
    go_on_match: bool = True


_RULES: dict[str, _Rule] = {
    "go": _Rule("reach"),
    "rt_go": _Rule("rt"),
    "dly_go": _Rule("delay"),
    "anti": _Rule("reach", anti=True),
    "rt_anti": _Rule("rt", anti=True),
    "dly_anti": _Rule("delay", anti=True),
    "dm1": _Rule("dm", carries=(1.0, 0.0), attends=(1.0, 0.0)),
    "dm2": _Rule("dm", carries=(0.0, 1.0), attends=(0.0, 1.0)),
    "ctx_dm1": _Rule("dm", carries=(1.0, 1.0), attends=(1.0, 0.0)),
    "ctx_dm2": _Rule("dm", carries=(1.0, 1.0), attends=(0.0, 1.0)),
    "multi_dm": _Rule("dm", carries=(1.0, 1.0), attends=(1.0, 1.0), split=True),
    "dms": _Rule("match", go_on_match=True),
    "dnms": _Rule("match", go_on_match=False),
}
assert tuple(_RULES) == TASKS

# Per-task lookup tables, indexed by task id (CPU).
_FAMILY_OF = torch.tensor([_FAMILIES.index(_RULES[t].family) for t in TASKS])
_ANTI = torch.tensor([_RULES[t].anti for t in TASKS])
_CARRIES = torch.tensor([_RULES[t].carries for t in TASKS])
_ATTENDS = torch.tensor([_RULES[t].attends for t in TASKS])
_SPLIT = torch.tensor([_RULES[t].split for t in TASKS])
_GO_ON_MATCH = torch.tensor([_RULES[t].go_on_match for t in TASKS])

# The U(0, 1) draws of every trial, one row each, always all drawn in this order. "modality":
# the stimulus's (match: the sample's) modality; "modality2": the test's; "offset": stimulus 2's
# distance from stimulus 1; "mean1/coh1/sign1" and "mean2/coh2/sign2": the strengths of modality
# 1 and 2 (dm1, dm2, ctx_dm; multi_dm uses set 1 for the overall strengths); "split*": multi_dm's
# split of each stimulus's strength across the modalities.
_DRAWS = (
    "modality", "theta1", "offset", "onset", "stimulus", "delay",
    "mean1", "coh1", "sign1", "coh2", "sign2", "match",
    "modality2", "mean2", "split1", "split_sign1", "split2", "split_sign2",
)  # fmt: skip


# --------------------------------------------------------------------------- geometry


def preferred_directions(n_ring: int) -> Tensor:
    """Preferred directions of a ring of ``n_ring`` units: ``(n_ring,)`` evenly spaced in [0, 2pi)."""
    return torch.arange(n_ring, dtype=torch.float32) * (TWO_PI / n_ring)


def _wrap(angle: Tensor) -> Tensor:
    """``angle`` modulo 2pi, guaranteed in [0, 2pi) despite float rounding (NaN stays NaN)."""
    angle = torch.remainder(angle, TWO_PI)
    return torch.where(angle >= TWO_PI, angle - TWO_PI, angle)


def _circular_distance(a: Tensor, b: Tensor) -> Tensor:
    """Absolute angular distance in [0, pi] between ``a`` and ``b`` (broadcast)."""
    d = torch.remainder(a - b, TWO_PI)
    return torch.minimum(d, TWO_PI - d)


def _bump(theta: Tensor, n_ring: int) -> Tensor:
    """Tuning bump ``0.8 exp(-d^2 / 2)`` (d in units of pi/8) centred at ``theta`` (N,): ``(N, n_ring)``."""
    pref = preferred_directions(n_ring).to(theta.device)
    d = _circular_distance(theta[:, None], pref) / _BUMP_WIDTH
    return _BUMP * torch.exp(-0.5 * d * d)


def popvec(ring: Tensor) -> Tensor:
    """Population-vector direction of ring activity: ``(..., n_ring)`` -> ``(...,)`` in [0, 2pi).

    Yang's ``popvec``: the angle of ``(sum_i r_i cos theta_i, sum_i r_i sin theta_i) / sum_i r_i``
    over the preferred directions ``theta_i``. NaN where the summed activity is 0 (no direction;
    never scored as correct); for the non-negative activity of sigmoid outputs this is the
    angle of ``sum_i r_i exp(1j theta_i)``.
    """
    pref = preferred_directions(ring.shape[-1]).to(device=ring.device, dtype=ring.dtype)
    total = ring.sum(-1)
    x = (ring * torch.cos(pref)).sum(-1) / total
    y = (ring * torch.sin(pref)).sum(-1) / total
    return _wrap(torch.atan2(y, x))


# --------------------------------------------------------------------------- the batch


@dataclass(eq=False)
class TrialBatch:
    """A batch of trials of shape ``shape`` (any shape), padded to ``T = steps`` time steps.

    - ``inputs``: ``(*shape, T, n_inputs)`` float32; unit 0 fixation, then the two rings.
    - ``targets``: ``(*shape, T, n_outputs)`` float32; unit 0 fixation (0.8 before the go cue
      and throughout a no-go trial, 0.05 from the go cue on), then the response ring (0.05,
      plus a tuning bump at ``target`` from the go cue on).
    - ``mask``: ``(*shape, T)`` float32 cost weight of every step (Yang's ``add_c_mask``): 0 in
      the first 100 ms, 1 from there until the go cue (``response_on``), 0 in the 100 ms after
      the go cue, 5 from then until ``response_off``, 0 from ``response_off`` on (padding); 100
      ms is ``round(100 / dt)`` steps. The weights are not squared here: the loss multiplies the
      error by them (the fixation output's by twice them) and squares the product (Yang:
      ``c_mask[:, 0] *= 2``, then ``square((y - y_hat) * c_mask)``).
    - ``task``: ``(*shape,)`` long indices into ``TASKS``.
    - ``response_on``: ``(*shape,)`` long, the go cue: first step of the response period.
    - ``response_off``: ``(*shape,)`` long, the exclusive end of the response period = the
      trial's own length (``response_on + round(500 / dt)``); ``T`` is its maximum. Steps from
      ``response_off`` on are padding (inputs and targets continue; weight 0; not scored).
    - ``go``: ``(*shape,)`` bool, False on no-go trials (keep fixating to the end).
    - ``target``: ``(*shape,)`` float32 radians in [0, 2pi), the correct response; NaN where not ``go``.
    - ``stim1`` / ``stim2``: ``(*shape,)`` float32 radians of the first / second stimulus
      (match tasks: the sample / the test; ``stim2`` is NaN for tasks with one stimulus).
    """

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    task: Tensor
    response_on: Tensor
    response_off: Tensor
    go: Tensor
    target: Tensor
    stim1: Tensor
    stim2: Tensor
    config: TaskConfig

    @property
    def shape(self) -> torch.Size:
        """The batch shape ``(*shape,)``."""
        return self.task.shape

    @property
    def steps(self) -> int:
        """``T``, the number of time steps of the (padded) batch."""
        return self.inputs.shape[-2]

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def to(self, device: torch.device | str) -> TrialBatch:
        """The same batch with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device) if f.name != "config" else self.config
            for f in fields(self)
        }
        return TrialBatch(**moved)

    def epochs(self) -> dict[str, Tensor]:
        """Disjoint ``(*shape, T)`` bool masks "fixation", "stimulus", "delay", "response", "after".

        Before ``response_on``: "fixation" until the first stimulus appears, then "stimulus" while
        a stimulus is shown and "delay" while none is (read from the noise-free input rings, so
        also right in the match tasks, whose fixation input stays on: sample = "stimulus", gap =
        "delay", test = "response"); "response" for ``response_on <= t < response_off`` (in
        reaction-time tasks the stimulus appears at ``response_on``: no stimulus or delay epoch);
        "after" for the padding ``t >= response_off``. Together they cover every step.
        """
        t = torch.arange(self.steps, device=self.device)
        before = t < self.response_on[..., None]
        after = t >= self.response_off[..., None]
        shown = self.inputs[..., 1:].ne(0).any(-1)
        seen = shown.cumsum(-1) > 0
        return {
            "fixation": before & ~seen,
            "stimulus": before & shown,
            "delay": before & seen & ~shown,
            "response": ~before & ~after,
            "after": after,
        }


# --------------------------------------------------------------------------- generation


def _check_task_ids(task_ids: Tensor) -> None:
    if not isinstance(task_ids, Tensor):
        raise TypeError(
            f"task_ids must be a torch.Tensor of task indices, got {type(task_ids).__name__}; "
            "use task_index(names) to convert task names"
        )
    if task_ids.dtype.is_floating_point or task_ids.dtype.is_complex or task_ids.dtype == torch.bool:
        raise ValueError(
            f"task_ids must be an integer tensor of indices into TASKS, got dtype {task_ids.dtype}; "
            "use task_index(names) to convert task names"
        )
    if task_ids.numel() == 0:
        raise ValueError(
            f"task_ids of shape {tuple(task_ids.shape)} is empty; it must hold at least one trial"
        )
    low, high = int(task_ids.min()), int(task_ids.max())
    if low < 0 or high >= len(TASKS):
        raise ValueError(
            f"task_ids must lie in [0, {len(TASKS)}) (indices into TASKS); got values from {low} to {high}"
        )


def _steps(ms: Tensor, dt: float) -> Tensor:
    """Drawn durations ``ms`` (N,) in steps: ``round(ms / dt)``, at least 1 for a non-zero duration."""
    steps = torch.round(ms / dt).long()
    return torch.where(ms > 0, steps.clamp(min=1), 0)


def _fixed_steps(ms: float, dt: float) -> int:
    """A fixed duration in steps: ``round(ms / dt)`` (half to even, as ``torch.round``)."""
    return round(ms / dt)


def _timing(family: Tensor, u: dict[str, Tensor], dt: float) -> dict[str, Tensor]:
    """Per-trial epoch boundaries in steps (all (N,) long, CPU) of trials of family ``family`` (N,)."""
    onset = torch.zeros_like(family)
    stimulus, delay = torch.zeros_like(family), torch.zeros_like(family)
    to_end = fix_to_end = torch.zeros_like(family, dtype=torch.bool)
    for index, name in enumerate(_FAMILIES):
        timing, sel = _TIMINGS[name], family == index
        onset = torch.where(sel, _steps(timing.onset(u["onset"]), dt), onset)
        stimulus = torch.where(sel, _steps(timing.stimulus(u["stimulus"]), dt), stimulus)
        delay = torch.where(sel, _steps(timing.delay(u["delay"]), dt), delay)
        to_end = to_end | (sel & timing.to_end)
        fix_to_end = fix_to_end | (sel & timing.fixation_to_end)
    response_on = onset + stimulus + delay
    end = torch.full_like(onset, _END)
    return {
        "stim_on": onset,
        "stim_off": torch.where(to_end, end, onset + stimulus),
        "fix_off": torch.where(fix_to_end, end, response_on),
        "response_on": response_on,
        "response_off": response_on + _fixed_steps(_RESPONSE_MS, dt),
    }


def _sign(u: Tensor) -> Tensor:
    """A random sign (+1 or -1) from a U(0, 1) draw."""
    return torch.where(u < 0.5, 1.0, -1.0)


def _dm_strengths(task: Tensor, u: dict[str, Tensor], config: TaskConfig) -> tuple[Tensor, Tensor]:
    """Strengths ``(N, 2 modalities)`` of stimulus 1 and stimulus 2 in the dm family.

    Per modality (Yang's ``contextdm_genstim``): ``mean +- coherence * sign``, with its own
    mean, coherence and sign, zero where the task's modality carries nothing (dm1 / dm2 use
    one modality, ctx_dm both). ``multi_dm`` (Yang's ``_contextdm(attend_mod='both')``): the
    overall strengths ``s = mean +- coherence * sign`` (modality-1 draws) are each split as
    ``s + d / 2`` (modality 1) and ``s - d / 2`` (modality 2), ``d = s U(0.2, 0.8)`` with a
    random sign, independently for the two stimuli.
    """
    table = _Choice(config.coherences)
    mean = torch.stack([0.8 + 0.4 * u["mean1"], 0.8 + 0.4 * u["mean2"]], -1)
    coherence = torch.stack([table(u["coh1"]) * _sign(u["sign1"]), table(u["coh2"]) * _sign(u["sign2"])], -1)
    carries = _CARRIES[task]
    first, second = (mean + coherence) * carries, (mean - coherence) * carries

    def split(s: Tensor, fraction: Tensor, sign: Tensor) -> Tensor:
        d = s * (0.2 + 0.6 * fraction) * _sign(sign)
        return torch.stack([s + d / 2, s - d / 2], -1)

    split_first = split(mean[:, 0] + coherence[:, 0], u["split1"], u["split_sign1"])
    split_second = split(mean[:, 0] - coherence[:, 0], u["split2"], u["split_sign2"])
    is_split = _SPLIT[task][:, None]
    return torch.where(is_split, split_first, first), torch.where(is_split, split_second, second)


def _trials(task: Tensor, u: dict[str, Tensor], config: TaskConfig) -> dict[str, Tensor]:
    """Directions, strengths (N, 2 modalities) and outcome of every trial (all on the CPU).

    Stimulus A is at ``stim1``; stimulus B (dm: shown with A; match family: the test stimulus)
    at ``stim2``. Single-stimulus tasks give B zero strength.
    """
    family = _FAMILY_OF[task]
    is_dm, is_match = family == _FAMILIES.index("dm"), family == _FAMILIES.index("match")
    theta1 = _wrap(TWO_PI * u["theta1"])
    # Distance of stimulus 2: dm U(pi/2, 3pi/2), match (non-match trials) U(pi/9, 17pi/9). Yang
    # draws the distance with a random sign; both ranges are symmetric about pi, so this is
    # the same distribution modulo 2pi.
    offset = torch.where(
        is_match, math.pi / 9 + (16 * math.pi / 9) * u["offset"], math.pi / 2 + math.pi * u["offset"]
    )
    matched = is_match & (u["match"] < 0.5)
    theta2 = torch.where(matched, theta1, _wrap(theta1 + offset))

    modality_a = torch.stack([u["modality"] < 0.5, u["modality"] >= 0.5], -1).float()  # (N, 2)
    modality_b = torch.stack([u["modality2"] < 0.5, u["modality2"] >= 0.5], -1).float()
    dm_a, dm_b = _dm_strengths(task, u, config)
    strength_a = torch.where(is_dm[:, None], dm_a, modality_a)
    strength_b = torch.where(is_dm[:, None], dm_b, modality_b * is_match[:, None])

    attends = _ATTENDS[task]
    first_wins = (attends * strength_a).sum(-1) > (attends * strength_b).sum(-1)
    stronger = torch.where(first_wins, theta1, theta2)
    single = torch.where(_ANTI[task], _wrap(theta1 + math.pi), theta1)
    target = torch.where(is_dm, stronger, torch.where(is_match, theta2, single))
    go = ~is_match | (matched == _GO_ON_MATCH[task])
    two_stimuli = is_dm | is_match
    return {
        "theta1": theta1,
        "theta2": theta2,
        "strength_a": strength_a,
        "strength_b": strength_b,
        "target": target,
        "go": go,
        "stim2": torch.where(two_stimuli, theta2, math.nan),
        "b_follows": is_match,  # stimulus B starts at the go cue and stays on (else it is shown with A)
    }


def _during(t: Tensor, on: Tensor, off: Tensor) -> Tensor:
    """``(N, T)`` float: 1 where ``on <= t < off``."""
    return ((t >= on[:, None]) & (t < off[:, None])).float()


def _inputs(t: Tensor, times: dict[str, Tensor], trial: dict[str, Tensor], n_ring: int) -> Tensor:
    """Inputs ``(N, T, 1 + 2 n_ring)``: fixation unit, then both rings with stimuli A and B."""
    n, steps = times["stim_on"].shape[0], t.shape[0]
    b_on = torch.where(trial["b_follows"], times["response_on"], times["stim_on"])
    b_off = torch.where(trial["b_follows"], _END, times["stim_off"])
    amp_a = (trial["strength_a"][:, :, None] * _bump(trial["theta1"], n_ring)[:, None, :]).reshape(n, -1)
    amp_b = (trial["strength_b"][:, :, None] * _bump(trial["theta2"], n_ring)[:, None, :]).reshape(n, -1)
    inputs = torch.empty(n, steps, 1 + 2 * n_ring, device=t.device)
    inputs[:, :, 0] = (t < times["fix_off"][:, None]).float()
    ring = inputs[:, :, 1:]
    torch.mul(_during(t, times["stim_on"], times["stim_off"])[:, :, None], amp_a[:, None, :], out=ring)
    ring.addcmul_(_during(t, b_on, b_off)[:, :, None], amp_b[:, None, :])
    return inputs


def _targets(t: Tensor, times: dict[str, Tensor], trial: dict[str, Tensor], n_ring: int) -> Tensor:
    """Targets ``(N, T, 1 + n_ring)``: fixation 0.8 -> 0.05 at the go cue; ring 0.05 + bump at target."""
    responding = (t >= times["response_on"][:, None]) & trial["go"][:, None]  # (N, T)
    aim = torch.where(trial["go"], trial["target"], 0.0)
    targets = torch.empty(aim.shape[0], t.shape[0], 1 + n_ring, device=t.device)
    targets[:, :, 0] = torch.where(responding, _FIX_LOW, _FIX_HIGH)
    torch.mul(responding.float()[:, :, None], _bump(aim, n_ring)[:, None, :], out=targets[:, :, 1:])
    targets[:, :, 1:] += _BASELINE
    return targets


def _mask(t: Tensor, response_on: Tensor, response_off: Tensor, dt: float) -> Tensor:
    """Cost weights ``(N, T)`` (Yang's ``add_c_mask``): 0, then 1 until the go cue, 0 for 100 ms, 5, 0."""
    on, off = response_on[:, None], response_off[:, None]
    before = (t >= _fixed_steps(_IGNORE_MS, dt)) & (t < on)
    response = (t >= on + _fixed_steps(_CHECK_MS, dt)) & (t < off)
    return torch.where(response, _RESPONSE_WEIGHT, torch.where(before, _PRE_WEIGHT, 0.0))


def generate(
    task_ids: Tensor, config: TaskConfig | None = None, generator: torch.Generator | None = None
) -> TrialBatch:
    """A batch of trials: one trial of task ``TASKS[i]`` per entry ``i`` of ``task_ids`` (any shape).

    All random draws are made on the CPU from ``generator`` (the global CPU generator if None),
    ``len(_DRAWS)`` (18) U(0, 1) numbers per trial in a fixed order whatever the tasks or the
    device, so a trial's parameters do not depend on the other trials' tasks; the tensors of
    the batch are on ``task_ids.device``. Every trial lasts ``response_off`` steps; ``T`` is the
    length of the longest trial.
    """
    _check_task_ids(task_ids)
    config = TaskConfig() if config is None else config
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
    device, shape = task_ids.device, task_ids.shape
    task = task_ids.detach().reshape(-1).to("cpu", torch.long)
    draws = torch.rand((len(_DRAWS), task.numel()), generator=generator)
    u = dict(zip(_DRAWS, draws, strict=True))

    times = _timing(_FAMILY_OF[task], u, config.dt)
    trial = _trials(task, u, config)
    steps = int(times["response_off"].max())
    times = {k: v.to(device) for k, v in times.items()}
    trial = {k: v.to(device) for k, v in trial.items()}
    t = torch.arange(steps, device=device)

    n_ring = config.n_ring
    inputs = _inputs(t, times, trial, n_ring)
    targets = _targets(t, times, trial, n_ring)
    target = torch.where(trial["go"], trial["target"], math.nan)
    mask = _mask(t, times["response_on"], times["response_off"], config.dt)
    return TrialBatch(
        inputs=inputs.reshape(*shape, steps, -1),
        targets=targets.reshape(*shape, steps, -1),
        mask=mask.reshape(*shape, steps),
        task=task.to(device).reshape(shape),
        response_on=times["response_on"].reshape(shape),
        response_off=times["response_off"].reshape(shape),
        go=trial["go"].reshape(shape),
        target=target.reshape(shape),
        stim1=trial["theta1"].reshape(shape),
        stim2=trial["stim2"].reshape(shape),
        config=config,
    )


# --------------------------------------------------------------------------- scoring


def performance(outputs: Tensor, batch: TrialBatch) -> Tensor:
    """Per-trial success ``(*shape,)`` float32 (0. or 1.) of network ``outputs`` ``(*shape, T, n_outputs)``.

    Yang's ``get_perf``: each trial is scored at its own last step ``response_off - 1`` only
    (every other step, the padding included, is ignored). ``outputs`` are after the sigmoid
    (in [0, 1]). The network fixates there if its fixation output is above 0.5 (exactly 0.5 is
    not fixating). A go trial is correct when it does not fixate and the population vector
    (``popvec``) of the response ring is within 0.2 pi (36 degrees) of ``target`` (a silent
    ring has no direction and never is); a no-go trial is correct when it fixates. Runs
    on ``outputs.device``. ``outputs`` may have extra leading dimensions (e.g.
    ``(S, *shape, T, n_outputs)`` for a stack of networks run on the same trials); the result
    then has them too.
    """
    expected = (*batch.shape, batch.steps, batch.config.n_outputs)
    lead = outputs.dim() - len(expected)
    if lead < 0 or tuple(outputs.shape[lead:]) != expected:
        raise ValueError(
            f"outputs must have shape {expected} (*shape, T, n_outputs), optionally after leading "
            f"dimensions such as a stack of networks; got {tuple(outputs.shape)}"
        )
    device = outputs.device
    last_step = (batch.response_off.to(device) - 1)[..., None, None]  # (*shape, 1, 1)
    index = last_step.expand(*outputs.shape[:lead], *batch.shape, 1, outputs.shape[-1])
    last = outputs.gather(-2, index).squeeze(-2)  # (..., *shape, n_outputs)
    fixating = last[..., 0] > 0.5
    on_target = _circular_distance(popvec(last[..., 1:]), batch.target.to(device)) < TOLERANCE
    correct = torch.where(batch.go.to(device), ~fixating & on_target, fixating)
    return correct.float()
