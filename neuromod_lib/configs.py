"""What each notebook can be told: one frozen dataclass per notebook, each parameter declared once.

A field is a parameter: its type annotation, its default (the ``quick`` value), its help and its
:class:`~neuromod_lib.checks.Rule` (bounds, choices, list entries), all in one :func:`param`.
Making a config checks every field and the rules that tie fields together, so a bad value stops
at once with one line naming the parameter and what is allowed. The ``smoke`` and ``paper``
profiles are small tables of values that override these defaults
(:data:`neuromod_lib.profiles.PROFILE_VALUES`); the command line, ``list NN`` and every notebook's
parameters cell read the same fields.

A config is also a read-only mapping (``cfg["steps"]``, ``"sizes" in cfg``, ``cfg.items()``):
the record of a run (:func:`neuromod_lib.results.record`) stores it as it is, with the notebook
and profile it was made for.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

from .adaptation import PLACEMENTS
from .checks import ParameterError, Rule
from .continual import METHODS, ContinualConfig
from .data.sequences import BENCHMARKS, TaskSequence, make_sequence
from .data.tasks import TASKS
from .device import _DEVICE_PATTERN
from .families import FAMILIES, TASK_SETS
from .models.cnn import BACKBONES
from .models.random_weights import RandomWeightConfig
from .models.rnn import PATHWAYS

PROFILES: tuple[str, ...] = ("smoke", "quick", "paper")
DEFAULT_PROFILE = "quick"
#: the most training steps any parameter accepts
MAX_STEPS = 10**7
_NAME_LIST = re.compile(r"^\s*[a-z_0-9]+\s*(,\s*[a-z_0-9]+\s*)*$")
_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


def default_results_dir() -> str:
    """Where notebooks record their runs when ``results_dir`` is not given: ``$NEUROMOD_RESULTS_DIR``
    if set (the test suite points it at a temporary folder, so that nbval never writes into your
    ``results/``), else ``../results`` (relative to ``notebooks/``)."""
    return os.environ.get("NEUROMOD_RESULTS_DIR") or "../results"


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is one of :data:`PROFILES`, else ``ParameterError`` naming them."""
    if profile not in PROFILES:
        raise ParameterError(f"profile={profile!r} is unknown; allowed: {', '.join(PROFILES)}")
    return profile


def param(default: Any, help: str, **rule: Any) -> Any:  # noqa: A002 - the word papermill uses
    """A parameter field: ``default`` (its ``quick`` value; a list is copied for every config, a
    function is called), ``help`` (one line, no ``=``: papermill reads it), and the keyword
    arguments of its :class:`~neuromod_lib.checks.Rule` (``low``, ``high``, ``above``,
    ``choices``, ``pattern``, ``allowed``; ``item`` a dict of them for a list's entries)."""
    metadata = {"help": help, "rule": rule}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Spec:
    """One declared parameter as the CLI, ``list NN`` and the parameters cells read it."""

    name: str
    rule: Rule
    help: str
    type_name: str
    default: Any


def _rule(annotation: str, rule: Mapping[str, Any]) -> Rule:
    """The :class:`Rule` of a field annotated ``int``/``float``/``str``/``bool``/``list[T]``."""
    listed = re.fullmatch(r"list\[(\w+)\]", annotation)
    if listed:
        return Rule(list, item=Rule(_TYPES[listed.group(1)], **rule.get("item", {})))
    return Rule(_TYPES[annotation], **rule)


@dataclass(frozen=True)
class NotebookConfig(Mapping):
    """The parameters every notebook takes; a subclass per notebook adds its own (:func:`param`).

    ``profile`` names the profile the values came from (not a parameter). Subclasses that tie
    parameters together override :meth:`check_together`.
    """

    NOTEBOOK: ClassVar[str] = ""

    profile: str = DEFAULT_PROFILE
    seed: int = param(0, "seed of every random draw", low=0, high=2**32 - 1)
    device: str = param(
        "auto", "where to compute", pattern=_DEVICE_PATTERN, allowed="auto, cpu, cuda, cuda:N or mps"
    )
    results_dir: str = param(
        default_results_dir,
        "folder for the records (relative to notebooks/): $NEUROMOD_RESULTS_DIR if set, else ../results",
    )

    def __post_init__(self) -> None:
        check_profile(self.profile)
        for spec in specs(type(self)).values():
            object.__setattr__(self, spec.name, spec.rule.check(spec.name, getattr(self, spec.name)))
        self.check_together()

    def check_together(self) -> None:
        """Rules between parameters (the device must be present here)."""
        from .device import pick_device

        try:
            pick_device(self.device)
        except ValueError as error:
            raise ParameterError(f"parameter {error}") from None

    def __getattr__(self, name: str) -> Any:
        """Only reached for a name that is not a field: say which parameters there are."""
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"{type(self).__name__} has no parameter {name!r}; parameters: {', '.join(specs(type(self)))}"
        )

    @property
    def notebook(self) -> str:
        """The notebook this configuration belongs to."""
        return self.NOTEBOOK

    # --- a read-only mapping: notebook, profile, then the parameters ---------------------------
    def __getitem__(self, key: str) -> Any:
        if key == "notebook":
            return self.NOTEBOOK
        if key == "profile" or key in specs(type(self)):
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(("notebook", "profile", *specs(type(self))))

    def __len__(self) -> int:
        return 2 + len(specs(type(self)))

    __hash__ = None  # type: ignore[assignment] - list values: not hashable


@cache
def specs(cls: type[NotebookConfig]) -> dict[str, Spec]:
    """Every parameter of ``cls`` in declaration order (the common ones first)."""
    out = {}
    for f in dataclasses.fields(cls):
        if "rule" not in f.metadata:
            continue
        annotation = str(f.type)  # a string: this module postpones annotations
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        out[f.name] = Spec(
            f.name, _rule(annotation, f.metadata["rule"]), f.metadata["help"], annotation, default
        )
    return out


def _refuse(name: str, value: Any, why: str, allowed: str) -> ParameterError:
    return ParameterError(f"parameter {name}={value!r} is not allowed: {why}; allowed: {allowed}")


def _steps_multiple(cfg: NotebookConfig) -> None:
    if cfg.steps % cfg.eval_every:
        raise _refuse(
            "steps", cfg.steps, f"not a multiple of eval_every={cfg.eval_every}", "a multiple of eval_every"
        )


def _adaptable_attributes(cfg: NotebookConfig, name: str) -> None:
    """At most the attributes the protocol adapts to (held-out: half of them)."""
    from .setups import adaptable_attributes

    protocol = cfg.get("protocol", "held_out")
    most = adaptable_attributes(cfg.dataset, protocol)
    if cfg[name] > most:
        which = "held-out attributes" if protocol == "held_out" else f"attributes (protocol={protocol})"
        raise _refuse(name, cfg[name], f"more than the {most} {which} of {cfg.dataset}", f"1 to {most}")


# --- notebooks 01-03: a frozen backbone adapted to new tasks ---------------------------------------


@dataclass(frozen=True)
class _Adaptation(NotebookConfig):
    """Data, backbone pretraining and the adaptation budget shared by notebooks 01–03."""

    dataset: str = param("generated", "data set", choices=("generated", "celeba"))
    data_root: str = param("../data", "folder of the real data sets (paper profile)")
    verify_data: bool = param(True, "check the real data's published MD5 sums")
    n_images: int = param(6000, "images to use (0: all)", low=0, high=10**7)
    # 16 px: a quarter of the compute of 32 px, so every condition can train to saturation on a CPU
    image_size: int = param(16, "image side in pixels", low=8, high=512)
    weights: str = param("", "local ImageNet state_dict file for resnet18/50 ('': none)")
    n_tasks: int = param(3, "held-out tasks to adapt to", low=1, high=40)
    # 250 images, 12 per task and step: measured to saturate every condition of notebook 01 within
    # its 2 000 steps (500 images, 8 per step: head-only and SE gains were still improving)
    n_adapt: int = param(250, "training images the held-out tasks learn from (0: all)", low=0, high=10**7)
    pretrain_epochs: int = param(6, "backbone pretraining epochs", low=1, high=1000)
    steps: int = param(2000, "adaptation steps (all conditions)", low=1, high=MAX_STEPS)
    eval_every: int = param(200, "steps between evaluations", low=1)
    batch_per_task: int = param(12, "samples per task per step", low=1, high=4096)
    lrs: list[float] = param(
        [0.001, 0.003, 0.01],
        "learning rates searched on validation for every condition (fine-tuning: its backbone at lr/10)",
        item={"above": 0.0, "high": 1.0},
    )
    n_seeds: int = param(5, "adaptation seeds", low=1, high=20)
    sigma_m: float = param(0.1, "std of the shared modulator m (stochastic comodulation)", low=0.0)
    draws: int = param(
        2,
        "modulator draws per routed image for the guided readout (the training draw included)",
        low=2,
        high=64,
    )
    route_images: int = param(
        8, "images per guided task that the readout's routing pass sees", low=1, high=4096
    )
    route_every: int = param(8, "steps between the readout's routing passes", low=1, high=MAX_STEPS)
    saturation_tol: float = param(
        0.5, "budget saturated if validation error falls less than this (points) in its last third", low=0.0
    )

    def check_together(self) -> None:
        """``steps`` a multiple of ``eval_every``."""
        super().check_together()
        _steps_multiple(self)


@dataclass(frozen=True)
class GainModulationConfig(_Adaptation):
    """Notebook 01: per-task gains on a frozen CNN (Boeshertz, Haimerl & Savin 2023)."""

    NOTEBOOK: ClassVar[str] = "01_gain_modulation"

    gain_sites: str = param(
        "late",
        "where gains act: early, late, all, or a comma list of sites",
        pattern=_NAME_LIST,
        allowed="early, late, all, or a comma list of site names (see neuromod_lib.models.cnn)",
    )
    backbone: str = param("convnet", "backbone network", choices=BACKBONES)
    protocol: str = param(
        "held_out",
        "held_out: even attributes pretrain, the gains adapt to odd ones; all: every attribute "
        "(the literature's CelebA protocol, official test split)",
        choices=("held_out", "all"),
    )

    def check_together(self) -> None:
        """At most the attributes the protocol adapts to; the gain sites exist on this backbone (the
        library's own check, before any kernel)."""
        super().check_together()
        _adaptable_attributes(self, "n_tasks")
        from .adaptation import placement_sites
        from .models.cnn import build_backbone

        try:
            placement_sites(build_backbone(self.backbone), self.gain_sites)
        except ValueError as error:
            raise ParameterError(f"parameter {error}") from None


@dataclass(frozen=True)
class ComodulationConfig(GainModulationConfig):
    """Notebook 02: stochastic comodulation against deterministic gains (same set-up as 01)."""

    NOTEBOOK: ClassVar[str] = "02_stochastic_comodulation"


@dataclass(frozen=True)
class ArchitectureConfig(_Adaptation):
    """Notebook 03: backbones x where the gains act, on superclass tasks."""

    NOTEBOOK: ClassVar[str] = "03_architecture_study"

    dataset: str = param("generated", "data set", choices=("generated", "cifar100"))
    # a backbone x placement grid of deterministic and stochastic gains, each with the learning-rate
    # search and a saturating budget: two small backbones, 3 tasks and 3 seeds keep it near 3 minutes;
    # 600 images per superclass give each 5-way task 60 validation images
    # 24 000 images: 120 validation images per superclass, so that choices on validation are not noise
    n_images: int = param(24000, "images to use (0: all)", low=0, high=10**7)
    n_tasks: int = param(2, "held-out superclasses", low=1, high=10)
    n_adapt: int = param(0, "training images the held-out tasks learn from (0: all)", low=0, high=10**7)
    n_seeds: int = param(5, "adaptation seeds", low=1, high=20)
    image_size: int = param(16, "image side in pixels (CIFAR-100 is 32)", low=8, high=512)
    n_pretrain: int = param(10, "superclasses that pretrain the backbone", low=1, high=19)
    backbones: list[str] = param(["convnet", "resnet_tiny"], "list of backbones", item={"choices": BACKBONES})
    placements: list[str] = param(["early", "late"], "list of early, late, all", item={"choices": PLACEMENTS})

    def check_together(self) -> None:
        """Pretraining and held-out superclasses together at most the 20 there are."""
        super().check_together()
        if self.n_pretrain + self.n_tasks > 20:
            raise _refuse(
                "n_tasks", self.n_tasks, f"with n_pretrain={self.n_pretrain}, more than the 20 superclasses",
                f"at most {20 - self.n_pretrain}",
            )  # fmt: skip


# --- notebooks 04-05: recurrent networks and their context pathways --------------------------------


@dataclass(frozen=True)
class _Recurrent(NotebookConfig):
    """Tasks, network dynamics and training budget shared by notebooks 04–05.

    quick: dt = 100 ms steps (T ~ 20-35), ReLU, no input noise, a 16-unit ring, small batches and
    a larger learning rate, so that a few hundred small networks train together in about three
    minutes on a laptop CPU, long enough for their verdicts to saturate (measured: every network
    that solves its tasks at N <= 8 does so within about 2 000 steps); paper: Yang et al.'s
    dt = 20 ms, tau = 100 ms, softplus, 32-unit rings, batch 64.
    """

    pathways: list[str] = param(
        ["rule", "excitability", "synaptic", "both"],
        "list of context pathways: rule, excitability, synaptic, both",
        item={"choices": PATHWAYS},
    )
    replicates: int = param(3, "networks (seeds) per condition", low=1, high=64)
    steps: int = param(3600, "training steps (a multiple of eval_every)", low=1, high=MAX_STEPS)
    eval_every: int = param(200, "steps between evaluations", low=1)
    batch: int = param(12, "trials per network per step", low=1, high=65536)
    lr: float = param(0.01, "Adam learning rate", above=0.0, high=1.0)
    criterion: float = param(0.9, "performance every task must reach", above=0.0, high=1.0)
    eval_trials: int = param(64, "evaluation trials per task for the learning curves", low=1, high=65536)
    final_trials: int = param(
        256,
        "evaluation trials per task for the verdict (at the end and at 2/3 of the steps)",
        low=1,
        high=65536,
    )
    full_budget: bool = param(True, "train every network all the steps (no stop at criterion)")
    dt: float = param(100.0, "time step (ms)", above=0.0, high=500.0)
    tau: float = param(200.0, "neuronal time constant (ms), at least dt", above=0.0)
    n_ring: int = param(16, "units per stimulus / response ring", low=4, high=256)
    activation: str = param("relu", "f", choices=("relu", "softplus"))
    rec_noise: float = param(0.05, "recurrent noise sigma_rec (Yang et al.: 0.05)", low=0.0)
    input_noise: float = param(0.0, "input noise sigma_x", low=0.0)
    synaptic: str = param("lowrank", "form of the synaptic pathway", choices=("lowrank", "elementwise"))
    rank: int = param(1, "rank of the low-rank synaptic change per task", low=1, high=64)
    matched: bool = param(True, "give every modulated pathway the same 2NK context parameters")

    def check_together(self) -> None:
        """``steps`` a multiple of ``eval_every``; ``tau`` at least ``dt``."""
        super().check_together()
        _steps_multiple(self)
        if self.tau < self.dt:
            raise _refuse(
                "tau", self.tau, f"shorter than the time step dt={self.dt}", f"a number >= dt ({self.dt})"
            )


@dataclass(frozen=True)
class PackingConfig(_Recurrent):
    """Notebook 04: how many tasks fit in N neurons, per context pathway (Vedovati & Ching 2024).

    quick: N = 4 and 8 (capacity 1-2, below the six tasks of K) with five replicates, the fewest
    for which the one-sided test of "capacity rises with N" over replicates can reach p < 0.05;
    lr 0.02 (measured, 240 networks: at 0.01 five cells were still changing after 2/3 of the 3 600
    steps, and three at 0.02; at 0.01 and 5 400 steps still four).
    """

    NOTEBOOK: ClassVar[str] = "04_rnn_task_packing"

    sizes: list[int] = param([4, 8], "list of network sizes N", item={"low": 1, "high": 4096})
    replicates: int = param(5, "networks (seeds) per condition", low=1, high=64)
    lr: float = param(0.02, "Adam learning rate", above=0.0, high=1.0)
    ks: list[int] = param(
        [1, 2, 3, 4, 5, 6],
        "list of task counts K (first K tasks of the packing order)",
        item={"low": 1, "high": len(TASKS)},
    )

    def check_together(self) -> None:
        """``full_budget``: the saturation check compares every network at 2/3 and at the end of the
        whole budget, so no network may stop early."""
        super().check_together()
        if not self.full_budget:
            raise _refuse(
                "full_budget",
                self.full_budget,
                "the saturation check needs every network trained for all the steps",
                "True",
            )


@dataclass(frozen=True)
class AmbiguityConfig(_Recurrent):
    """Notebook 05: mixed and noisy contexts, and the dynamics they give."""

    NOTEBOOK: ClassVar[str] = "05_rnn_ambiguity_and_dynamics"

    n_neurons: int = param(8, "network size N", low=1, high=4096)
    tasks: list[str] = param(
        ["go", "anti"], "list of the tasks every network learns", item={"choices": TASKS}
    )
    replicates: int = param(16, "networks (seeds) per pathway", low=1, high=64)
    steps: int = param(6000, "training steps (a multiple of eval_every)", low=1, high=MAX_STEPS)
    task_a: str = param("go", "first task of the ambiguous pair (one of tasks)", choices=TASKS)
    task_b: str = param("anti", "second task of the ambiguous pair (one of tasks)", choices=TASKS)
    n_lambdas: int = param(11, "mixture levels", low=2, high=1001)
    sigmas: list[float] = param(
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.5], "list of context noise levels", item={"low": 0.0, "high": 100.0}
    )
    fp_steps: int = param(1500, "fixed-point optimisation steps", low=1, high=MAX_STEPS)

    def check_together(self) -> None:
        """The ambiguous pair: two different tasks of ``tasks``."""
        super().check_together()
        for name in ("task_a", "task_b"):
            if self[name] not in self.tasks:
                raise _refuse(
                    name, self[name], f"not one of tasks={self.tasks!r}", "one of " + ", ".join(self.tasks)
                )
        if self.task_a == self.task_b:
            raise _refuse(
                "task_b", self.task_b, "the same task as task_a", "another of " + ", ".join(self.tasks)
            )


# --- notebooks 06-07: task sequences, random weights and every family ------------------------------

#: input values per sample of each task sequence (for ``inputs_per_unit`` and the memory estimate)
INPUTS = {"digits": 64, "mnist1d": 40, "mnist": 784}


def inputs_of(benchmark: str) -> int:
    """Input values per sample of the task sequence ``benchmark``."""
    return INPUTS[benchmark.rsplit("_", 1)[-1]]


def _inputs_per_unit_within_inputs(cfg: NotebookConfig) -> None:
    d = inputs_of(cfg.benchmark)
    if cfg.inputs_per_unit > d:
        raise _refuse(
            "inputs_per_unit",
            cfg.inputs_per_unit,
            f"more than the {d} inputs of {cfg.benchmark}",
            f"an integer from 1 to {d}",
        )


@dataclass(frozen=True)
class ContinualNotebookConfig(NotebookConfig):
    """Notebook 06: contexts on fixed random weights, task after task (Hong & Pavlic 2022)."""

    NOTEBOOK: ClassVar[str] = "06_random_weight_continual_learning"

    benchmark: str = param("rotated_digits", "task sequence", choices=BENCHMARKS)
    data_root: str = param("../data", "folder of the real data sets (MNIST, paper profile)")
    n_tasks: int = param(10, "tasks in the sequence", low=1, high=100)
    max_train: int = param(0, "training samples per task (0: all)", low=0)
    epochs: int = param(5, "epochs per task", low=1, high=1000)
    batch: int = param(128, "batch size", low=1, high=65536)
    methods: list[str] = param(
        ["random_weights", "finetune", "ewc", "si", "supermask", "joint"],
        "list of methods",
        item={"choices": METHODS},
    )
    expansion: float = param(
        10.0, "hidden units per input of the random expansion (at least 1)", low=1.0, high=10_000.0
    )
    inputs_per_unit: int = param(
        7, "inputs summed by each hidden unit (at most the inputs per sample)", low=1
    )
    rw_lr: float = param(0.01, "RMSprop learning rate of the contexts", above=0.0)
    dense_lr: float = param(0.001, "Adam learning rate of the dense baselines", above=0.0)
    ewc_lambda: float = param(100.0, "EWC penalty strength", low=0.0)
    si_c: float = param(0.5, "SI penalty strength", low=0.0)
    mask_sparsity: float = param(0.5, "fraction of weights a supermask keeps", above=0.0, high=1.0)
    search: bool = param(
        True,
        "choose each method's searched hyperparameter on validation data (False: use the values above)",
    )
    search_tasks: int = param(
        3, "first tasks the hyperparameter search trains and validates on", low=1, high=100
    )

    def check_together(self) -> None:
        """``inputs_per_unit`` at most the sequence's inputs per sample."""
        super().check_together()
        _inputs_per_unit_within_inputs(self)

    def budget(self) -> ContinualConfig:
        """How every method learns the sequence (epochs, batch, learning rates, penalties)."""
        return ContinualConfig(
            epochs=self.epochs, batch=self.batch, seed=self.seed, rw_lr=self.rw_lr, expansion=self.expansion,
            inputs_per_unit=self.inputs_per_unit, dense_lr=self.dense_lr, ewc_lambda=self.ewc_lambda,
            si_c=self.si_c, mask_sparsity=self.mask_sparsity,
        )  # fmt: skip

    def sequence(self) -> TaskSequence:
        """The task sequence (checks the data are present and the task count before any training)."""
        max_train = self.max_train or None
        root = self.data_root
        return make_sequence(self.benchmark, self.n_tasks, seed=self.seed, root=root, max_train=max_train)

    def network(self, sequence: TaskSequence) -> RandomWeightConfig:
        """The random-weight network for ``sequence``: its inputs and classes, this expansion and seed."""
        return RandomWeightConfig(
            sequence.n_inputs, sequence.n_classes, expansion=self.expansion,
            inputs_per_unit=self.inputs_per_unit, seed=self.seed,
        )  # fmt: skip


@dataclass(frozen=True)
class FamiliesConfig(NotebookConfig):
    """Notebook 07: every modulation family on the same task sets."""

    NOTEBOOK: ClassVar[str] = "07_modulation_families_compared"

    task_sets: list[str] = param(
        ["attributes", "digits", "cognitive"],
        "list of task sets: attributes, digits, cognitive",
        item={"choices": TASK_SETS},
    )
    families: list[str] = param(
        ["deterministic_gain", "stochastic_gain", "excitability", "synaptic", "random_weights", "finetune"],
        "list of modulation families (and the finetune reference)",
        item={"choices": (*FAMILIES, "finetune")},
    )
    # images: notebook 01's held-out attribute set-up (on the quick profile the same cache key, so a
    # run after 01 reuses its backbone; 01's paper profile pretrains on all 40 attributes, this one
    # on the 20 pretraining attributes of the held-out protocol, so it pretrains its own)
    dataset: str = param("generated", "image data set", choices=("generated", "celeba"))
    data_root: str = param("../data", "folder of the real data sets (paper profile)")
    verify_data: bool = param(True, "check the real data's published MD5 sums")
    n_images: int = param(6000, "images to use (0: all)", low=0, high=10**7)
    image_size: int = param(32, "image side in pixels", low=8, high=512)
    backbone: str = param("convnet", "backbone network", choices=BACKBONES)
    weights: str = param("", "local ImageNet state_dict file for resnet18/50 ('': none)")
    pretrain_epochs: int = param(6, "backbone pretraining epochs", low=1, high=1000)
    n_attributes: int = param(8, "held-out attribute tasks", low=2, high=20)
    attribute_expansion: float = param(
        2.0, "shared width per image feature (H is expansion x D)", low=1.0, high=10_000.0
    )
    # digits: a continual sequence of notebook 06
    benchmark: str = param("rotated_digits", "digit task sequence", choices=BENCHMARKS)
    n_digit_tasks: int = param(10, "tasks in the digit sequence", low=2, high=100)
    max_train: int = param(0, "training samples per task (0: all)", low=0)
    digit_expansion: float = param(
        10.0, "shared width per pixel (H is expansion x D)", low=1.0, high=10_000.0
    )
    # how every feedforward family learns (one budget for all)
    epochs: int = param(3, "epochs per task", low=1, high=1000)
    batch: int = param(128, "batch size", low=1, high=65536)
    lr: float = param(0.01, "Adam learning rate of modulations (and per-task heads)", above=0.0)
    trunk_lr: float = param(0.001, "Adam learning rate of the shared layer (first task only)", above=0.0)
    readout: str = param(
        "shared", "one readout for all tasks, or a head per task", choices=("shared", "per_task")
    )
    rank: int = param(0, "synaptic rank per task (0: matched to excitability's 2H values)", low=0, high=4096)
    sigma_m: float = param(0.1, "std of the stochastic modulator m", low=0.0)
    inputs_per_unit: int = param(
        7, "inputs summed by each random-weight hidden unit (at most the inputs)", low=1
    )
    rw_lr: float = param(0.01, "RMSprop learning rate of the random-weight contexts", above=0.0)
    dense_lr: float = param(0.001, "Adam learning rate of the finetune reference", above=0.0)
    search: bool = param(
        True, "choose each family's learning rate on validation data (False: use the values above)"
    )
    # cognitive tasks: notebook 05's networks (its profile's dynamics and budget)
    rnn_tasks: list[str] = param(
        ["go", "anti", "dm1", "dly_go"], "list of cognitive tasks", item={"choices": TASKS}
    )
    rnn_neurons: int = param(32, "RNN size N", low=1, high=4096)
    rnn_replicates: int = param(2, "RNNs per family", low=1, high=20)
    rnn_steps: int = param(1500, "RNN training steps at most", low=1, high=MAX_STEPS)
    # robustness
    ambiguity_lambda: float = param(
        0.4, "weight of the wrong task in the ambiguous context (1-l) e_a + l e_b", low=0.0, high=0.5
    )
    context_noise: float = param(0.5, "sigma of the noisy context e_a + sigma xi", above=0.0)

    def check_together(self) -> None:
        """``inputs_per_unit`` at most the digits' inputs; at most the held-out attributes; two or more
        cognitive tasks."""
        super().check_together()
        _inputs_per_unit_within_inputs(self)
        _adaptable_attributes(self, "n_attributes")
        if len(self.rnn_tasks) < 2:
            raise _refuse(
                "rnn_tasks", self.rnn_tasks, "one task cannot be mixed with another", "two or more tasks"
            )


@dataclass(frozen=True)
class OverviewConfig(NotebookConfig):
    """Notebook 00: a tuned population under a gain and a threshold."""

    NOTEBOOK: ClassVar[str] = "00_overview"

    n_neurons: int = param(16, "neurons in the tuned population", low=1, high=4096)
    kappa: float = param(2.0, "concentration of the tuning curves (larger: narrower)", above=0.0)
    gain: float = param(2.0, "multiplicative gain of the modulated population", low=0.0)
    threshold: float = param(0.3, "threshold (excitability) of the modulated population", low=0.0, high=0.95)


#: the config class of every notebook, in notebook order
CONFIGS: dict[str, type[NotebookConfig]] = {
    cls.NOTEBOOK: cls
    for cls in (
        OverviewConfig,
        GainModulationConfig,
        ComodulationConfig,
        ArchitectureConfig,
        PackingConfig,
        AmbiguityConfig,
        ContinualNotebookConfig,
        FamiliesConfig,
    )
}
