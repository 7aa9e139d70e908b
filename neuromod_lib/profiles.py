"""Validated parameter sets for every notebook: the ``smoke``, ``quick`` and ``paper`` profiles.

A notebook's parameters cell lists every tunable with the value ``None`` ("take the
profile's value"); its next cell calls :func:`resolve`, which fills in the profile, applies
the user's overrides and checks every value, so that a typo or an out-of-range number
fails at once, before any training, with a message naming the parameter and what is allowed.

- ``smoke``: seconds; for the test suite's papermill runs.
- ``quick``: minutes on a laptop CPU with the embedded data; the committed notebooks.
- ``paper``: the full reproduction, on a GPU with the real data sets.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .adaptation import PLACEMENTS
from .continual import METHODS
from .data.sequences import BENCHMARKS
from .data.tasks import TASKS
from .device import _DEVICE_PATTERN
from .families import FAMILIES, TASK_SETS
from .models.cnn import BACKBONES
from .models.rnn import PATHWAYS

PROFILES: tuple[str, ...] = ("smoke", "quick", "paper")
DEFAULT_PROFILE = "quick"
#: the most training steps any parameter accepts
MAX_STEPS = 10**7
_NAME_LIST = re.compile(r"^\s*[a-z_0-9]+\s*(,\s*[a-z_0-9]+\s*)*$")
_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


class ParameterError(ValueError):
    """A notebook parameter, profile or notebook name that is not allowed."""


@dataclass(frozen=True)
class Param:
    """One tunable: its type, its value per profile, and what values are allowed.

    ``value`` is one value for every profile or a dict ``{profile: value}`` (a missing
    ``smoke`` falls back to ``quick``). ``low``/``high`` are inclusive bounds,
    ``above`` an exclusive lower bound, ``choices`` a closed set, ``pattern`` a check on
    strings (a compiled regex) described by ``allowed``. ``item`` (with ``kind=list``) makes the
    parameter a list such as ``[8, 16, 32]`` whose every entry is checked by that Param; a list
    holds at least one entry and none twice. On the command line (and in papermill's ``-p``) a list
    is written with commas, ``8,16,32``.
    """

    kind: type
    value: Any
    help: str
    low: float | None = None
    high: float | None = None
    above: float | None = None
    choices: tuple[Any, ...] | None = None
    pattern: Any = None
    allowed: str | None = None
    item: Param | None = None

    def default(self, profile: str) -> Any:
        """The value this parameter takes under ``profile`` (a callable value is called each time)."""
        if callable(self.value):
            return self.value()
        if not isinstance(self.value, dict):
            return self.value
        return self.value.get(profile, self.value.get("quick"))

    def describe(self) -> str:
        """What is allowed, in words (used in every error message)."""
        if self.allowed:
            return self.allowed
        if self.item is not None:
            return "a list of " + self.item.describe().removeprefix("one of ").replace(
                "an integer", "integers"
            ).replace("a number", "numbers")
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        parts = [_KINDS[self.kind]]
        if self.above is not None:
            parts.append(f"> {self.above}")
        if self.low is not None:
            parts.append(f">= {self.low}")
        if self.high is not None:
            parts.append(f"<= {self.high}")
        return " ".join(parts)

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise ParameterError.

        A list parameter also takes its command-line form, a comma string (``"8,16"``).
        """
        if self.item is not None:
            return self._check_list(name, value)
        bad = ParameterError(f"parameter {name}={value!r} is not allowed; allowed: {self.describe()}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad
            value = float(value)
        elif not isinstance(value, self.kind):
            raise bad
        if self.choices is not None and value not in self.choices:
            raise bad
        if self.pattern is not None and not self.pattern.match(value):
            raise bad
        if self.low is not None and value < self.low:
            raise bad
        if self.high is not None and value > self.high:
            raise bad
        if self.above is not None and value <= self.above:
            raise bad
        return value

    def _check_list(self, name: str, value: Any) -> list[Any]:
        """``value`` (a list, a tuple or a comma string) as a list of checked entries, none twice."""
        text = isinstance(value, str)
        entries = [e.strip() for e in value.split(",")] if text else value
        if not isinstance(entries, (list, tuple)) or not entries:
            raise ParameterError(f"parameter {name}={value!r} is not allowed; allowed: {self.describe()}")
        checked: list[Any] = []
        for entry in entries:
            try:
                item = self.item.parse(name, entry) if text else self.item.check(name, entry)
            except ParameterError:
                raise ParameterError(
                    f"parameter {name}={value!r} is not allowed: entry {entry!r}; allowed: {self.describe()}"
                ) from None
            if item in checked:
                raise ParameterError(
                    f"parameter {name}={value!r} lists {entry!r} twice; allowed: {self.describe()}"
                )
            checked.append(item)
        return checked

    def parse(self, name: str, text: str) -> Any:
        """Convert command-line text (``-p name=text``; a list: ``a,b,c``) to this parameter's type,
        then check it."""
        if self.item is not None:
            return self._check_list(name, text)
        try:
            if self.kind is bool:
                lowered = text.strip().lower()
                if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError
                value: Any = lowered in {"true", "1", "yes"}
            else:
                value = self.kind(text)
        except ValueError:
            raise ParameterError(
                f"parameter {name}={text!r} is not {_KINDS[self.kind]}; allowed: {self.describe()}"
            ) from None
        return self.check(name, value)


def default_results_dir() -> str:
    """Where notebooks record their runs when ``results_dir`` is not given: ``$NEUROMOD_RESULTS_DIR``
    if set (the test suite points it at a temporary folder, so that nbval never writes into your
    ``results/``), else ``../results`` (relative to ``notebooks/``)."""
    return os.environ.get("NEUROMOD_RESULTS_DIR") or "../results"


#: Parameters every notebook takes.
COMMON: dict[str, Param] = {
    "seed": Param(int, 0, "seed of every random draw", low=0, high=2**32 - 1),
    "device": Param(
        str, "auto", "where to compute", pattern=_DEVICE_PATTERN, allowed="auto, cpu, cuda, cuda:N or mps"
    ),
    "results_dir": Param(
        str,
        lambda: default_results_dir(),
        "folder for the records (relative to notebooks/): $NEUROMOD_RESULTS_DIR if set, else ../results",
    ),
}

#: Each notebook's own parameters (besides COMMON), by notebook name.
NOTEBOOK_PARAMS: dict[str, dict[str, Param]] = {
    "00_overview": {
        "n_neurons": Param(
            int, {"smoke": 8, "quick": 16, "paper": 64}, "neurons in the tuned population", low=1, high=4096
        ),
        "kappa": Param(float, 2.0, "concentration of the tuning curves (larger: narrower)", above=0.0),
        "gain": Param(float, 2.0, "multiplicative gain of the modulated population", low=0.0),
        "threshold": Param(
            float, 0.3, "threshold (excitability) of the modulated population", low=0.0, high=0.95
        ),
    },
}


def _cnn_params(
    datasets: tuple[str, ...], paper_dataset: str, n_tasks: dict[str, int], max_tasks: int
) -> dict:
    """Parameters shared by the CNN notebooks 01–03 (data, backbone, pretraining, adaptation budget)."""
    return {
        "dataset": Param(str, {"quick": "generated", "paper": paper_dataset}, "data set", choices=datasets),
        "data_root": Param(str, "../data", "folder of the real data sets (paper profile)"),
        "verify_data": Param(bool, True, "check the real data's published MD5 sums"),
        "n_images": Param(
            int, {"smoke": 900, "quick": 6000, "paper": 0}, "images to use (0: all)", low=0, high=10**7
        ),
        "image_size": Param(int, {"quick": 32, "paper": 64}, "image side in pixels", low=8, high=512),
        "weights": Param(str, "", "local ImageNet state_dict file for resnet18/50 ('': none)"),
        "n_tasks": Param(int, n_tasks, "held-out tasks to adapt to", low=1, high=max_tasks),
        "pretrain_epochs": Param(
            int, {"smoke": 1, "quick": 6, "paper": 15}, "backbone pretraining epochs", low=1, high=1000
        ),
        "steps": Param(
            int,
            {"smoke": 20, "quick": 300, "paper": 3000},
            "adaptation steps (all conditions)",
            low=1,
            high=MAX_STEPS,
        ),
        "eval_every": Param(
            int, {"smoke": 10, "quick": 60, "paper": 300}, "steps between evaluations", low=1
        ),
        "batch_per_task": Param(
            int, {"smoke": 4, "quick": 8, "paper": 32}, "samples per task per step", low=1, high=4096
        ),
        "lr": Param(float, 0.01, "Adam learning rate of heads, gains, FiLM, SE", above=0.0),
        "n_seeds": Param(int, {"smoke": 2, "quick": 3, "paper": 3}, "adaptation seeds", low=1, high=10),
        "sigma_m": Param(float, 0.1, "std of the shared modulator m (stochastic comodulation)", low=0.0),
        "gain_sites": Param(
            str,
            "late",
            "where gains act: early, late, all, or a comma list of sites",
            pattern=_NAME_LIST,
            allowed="early, late, all, or a comma list of site names (see neuromod_lib.models.cnn)",
        ),
    }


def _backbone_param(quick: str, paper: str) -> Param:
    return Param(str, {"quick": quick, "paper": paper}, "backbone network", choices=BACKBONES)


NOTEBOOK_PARAMS.update(
    {
        "01_gain_modulation": {
            **_cnn_params(("generated", "celeba"), "celeba", {"smoke": 3, "quick": 8, "paper": 20}, 20),
            "backbone": _backbone_param("convnet", "resnet18"),
        },
        "02_stochastic_comodulation": {
            **_cnn_params(("generated", "celeba"), "celeba", {"smoke": 3, "quick": 8, "paper": 20}, 20),
            "backbone": _backbone_param("convnet", "resnet18"),
        },
        "03_architecture_study": {
            **{
                k: v
                for k, v in _cnn_params(
                    ("generated", "cifar100"), "cifar100", {"smoke": 2, "quick": 10, "paper": 10}, 10
                ).items()
                if k not in ("gain_sites", "image_size")
            },
            "image_size": Param(int, 32, "image side in pixels (CIFAR-100 is 32)", low=8, high=512),
            # a 3 x 4 grid of runs: fewer tasks and steps than 01-02 keep the quick profile near 3 minutes
            "n_tasks": Param(
                int, {"smoke": 2, "quick": 6, "paper": 10}, "held-out superclasses", low=1, high=10
            ),
            "steps": Param(
                int, {"smoke": 20, "quick": 200, "paper": 3000}, "adaptation steps", low=1, high=MAX_STEPS
            ),
            "eval_every": Param(
                int, {"smoke": 10, "quick": 50, "paper": 300}, "steps between evaluations", low=1
            ),
            "n_pretrain": Param(
                int,
                {"smoke": 4, "quick": 10, "paper": 10},
                "superclasses that pretrain the backbone",
                low=1,
                high=19,
            ),
            "backbones": Param(
                list,
                {
                    "smoke": ["convnet", "resnet_small"],
                    "quick": ["convnet", "convnet_deep", "resnet_small"],
                    "paper": ["resnet18", "resnet50", "convnet_wide"],
                },
                "list of backbones",
                item=Param(str, None, "backbone", choices=BACKBONES),
            ),
            "placements": Param(
                list,
                ["early", "late", "all"],
                "list of early, late, all",
                item=Param(str, None, "placement", choices=PLACEMENTS),
            ),
        },
    }
)


def _rnn_params() -> dict:
    """Parameters shared by the RNN notebooks 04–05 (tasks, network dynamics, training budget).

    quick: dt = 100 ms steps (T ~ 20-35), ReLU, no input noise, a 16-unit ring, batch 32 and a
    larger learning rate, so that dozens of networks train together in about two minutes on a
    laptop CPU; paper: Yang et al.'s dt = 20 ms, tau = 100 ms, softplus, 32-unit rings, batch 64.
    """
    return {
        "pathways": Param(
            list,
            ["rule", "excitability", "synaptic", "both"],
            "list of context pathways: rule, excitability, synaptic, both",
            item=Param(str, None, "pathway", choices=PATHWAYS),
        ),
        "replicates": Param(
            int, {"smoke": 2, "quick": 3, "paper": 5}, "networks (seeds) per condition", low=1, high=20
        ),
        "steps": Param(
            int,
            {"smoke": 40, "quick": 1500, "paper": 20000},
            "training steps at most (a multiple of eval_every)",
            low=1,
            high=MAX_STEPS,
        ),
        "eval_every": Param(
            int, {"smoke": 20, "quick": 100, "paper": 500}, "steps between evaluations", low=1
        ),
        "batch": Param(
            int, {"smoke": 16, "quick": 32, "paper": 64}, "trials per network per step", low=1, high=65536
        ),
        "lr": Param(float, {"quick": 3e-3, "paper": 1e-3}, "Adam learning rate", above=0.0, high=1.0),
        "criterion": Param(float, 0.9, "performance every task must reach", above=0.0, high=1.0),
        "eval_trials": Param(
            int, {"smoke": 16, "quick": 64, "paper": 256}, "evaluation trials per task", low=1, high=65536
        ),
        "dt": Param(float, {"quick": 100.0, "paper": 20.0}, "time step (ms)", above=0.0, high=500.0),
        "tau": Param(
            float, {"quick": 200.0, "paper": 100.0}, "neuronal time constant (ms), at least dt", above=0.0
        ),
        "n_ring": Param(
            int, {"quick": 16, "paper": 32}, "units per stimulus / response ring", low=4, high=256
        ),
        "activation": Param(str, {"quick": "relu", "paper": "softplus"}, "f", choices=("relu", "softplus")),
        "rec_noise": Param(float, 0.05, "recurrent noise sigma_rec (Yang et al.: 0.05)", low=0.0),
        "input_noise": Param(float, {"quick": 0.0, "paper": 0.01}, "input noise sigma_x", low=0.0),
        "synaptic": Param(str, "lowrank", "form of the synaptic pathway", choices=("lowrank", "elementwise")),
        "rank": Param(int, 1, "rank of the low-rank synaptic change per task", low=1, high=64),
        "matched": Param(bool, False, "give every modulated pathway the same 2NK context parameters"),
    }


NOTEBOOK_PARAMS.update(
    {
        "04_rnn_task_packing": {
            **_rnn_params(),
            "sizes": Param(
                list,
                {"smoke": [8, 16], "quick": [8, 16, 32], "paper": [16, 32, 64, 128, 256]},
                "list of network sizes N",
                item=Param(int, None, "N", low=1, high=4096),
            ),
            "ks": Param(
                list,
                {"smoke": [1, 2], "quick": [1, 2, 3, 4], "paper": [1, 2, 4, 6, 8, 10, 13]},
                "list of task counts K (first K tasks of the packing order)",
                item=Param(int, None, "K", low=1, high=len(TASKS)),
            ),
        },
        "05_rnn_ambiguity_and_dynamics": {
            **_rnn_params(),
            "n_neurons": Param(
                int, {"smoke": 16, "quick": 64, "paper": 256}, "network size N", low=1, high=4096
            ),
            "tasks": Param(
                list,
                ["go", "anti", "dm1", "dly_go"],
                "list of the tasks every network learns",
                item=Param(str, None, "task", choices=TASKS),
            ),
            "task_a": Param(str, "go", "first task of the ambiguous pair (one of tasks)", choices=TASKS),
            "task_b": Param(str, "anti", "second task of the ambiguous pair (one of tasks)", choices=TASKS),
            "n_lambdas": Param(
                int, {"smoke": 3, "quick": 11, "paper": 21}, "mixture levels", low=2, high=1001
            ),
            "sigmas": Param(
                list,
                {
                    "smoke": [0.0, 1.0],
                    "quick": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5],
                    "paper": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0],
                },
                "list of context noise levels",
                item=Param(float, None, "sigma", low=0.0, high=100.0),
            ),
            "fp_steps": Param(
                int,
                {"smoke": 50, "quick": 1500, "paper": 5000},
                "fixed-point optimisation steps",
                low=1,
                high=MAX_STEPS,
            ),
        },
    }
)


NOTEBOOK_PARAMS["06_random_weight_continual_learning"] = {
    "benchmark": Param(
        str,
        {"quick": "rotated_digits", "paper": "permuted_mnist"},
        "task sequence",
        choices=BENCHMARKS,
    ),
    "data_root": Param(str, "../data", "folder of the real data sets (MNIST, paper profile)"),
    "n_tasks": Param(int, {"smoke": 2, "quick": 10, "paper": 10}, "tasks in the sequence", low=1, high=100),
    "max_train": Param(
        int, {"smoke": 200, "quick": 0, "paper": 0}, "training samples per task (0: all)", low=0
    ),
    "epochs": Param(int, {"smoke": 1, "quick": 5, "paper": 3}, "epochs per task", low=1, high=1000),
    "batch": Param(int, 128, "batch size", low=1, high=65536),
    "methods": Param(
        list,
        ["random_weights", "finetune", "ewc", "si", "supermask", "joint"],
        "list of methods",
        item=Param(str, None, "method", choices=METHODS),
    ),
    "expansion": Param(
        float, 10.0, "hidden units per input of the random expansion (at least 1)", low=1.0, high=10_000.0
    ),
    "inputs_per_unit": Param(
        int, 7, "inputs summed by each hidden unit (at most the inputs per sample)", low=1
    ),
    "rw_lr": Param(float, 1e-2, "RMSprop learning rate of the contexts", above=0.0),
    "dense_lr": Param(float, 1e-3, "Adam learning rate of the dense baselines", above=0.0),
    "ewc_lambda": Param(float, 100.0, "EWC penalty strength", low=0.0),
    "si_c": Param(float, 0.5, "SI penalty strength", low=0.0),
    "mask_sparsity": Param(float, 0.5, "fraction of weights a supermask keeps", above=0.0, high=1.0),
}


class Config(dict):
    """A resolved, validated parameter set; read values as ``cfg.name`` or ``cfg["name"]``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r}; parameters: {', '.join(self)}") from None

    @property
    def notebook(self) -> str:
        """The notebook this configuration belongs to."""
        return self["notebook"]

    @property
    def profile(self) -> str:
        """The profile it was resolved from."""
        return self["profile"]


def notebook_names() -> list[str]:
    """Notebooks that have a parameter specification."""
    return list(NOTEBOOK_PARAMS)


def spec(notebook: str) -> dict[str, Param]:
    """Every parameter ``notebook`` takes (common ones first)."""
    if notebook not in NOTEBOOK_PARAMS:
        raise ParameterError(f"notebook={notebook!r} is unknown; allowed: {', '.join(NOTEBOOK_PARAMS)}")
    return {**COMMON, **NOTEBOOK_PARAMS[notebook]}


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is one of PROFILES, else raise ParameterError."""
    if profile not in PROFILES:
        raise ParameterError(f"profile={profile!r} is unknown; allowed: {', '.join(PROFILES)}")
    return profile


def _check_known(notebook: str, names: Mapping[str, Any] | list[str]) -> dict[str, Param]:
    params = spec(notebook)
    for name in names:
        if name not in params:
            raise ParameterError(
                f"parameter {name!r} is unknown to notebook {notebook}; allowed: {', '.join(params)}"
            )
    return params


def resolve(
    notebook: str,
    profile: str = DEFAULT_PROFILE,
    namespace: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Config:
    """Validated parameters of ``notebook`` under ``profile``; ``None`` values take the profile's.

    ``namespace``: a notebook's ``globals()``: every parameter of the notebook found there (set in
    its parameters cell, or injected by papermill) overrides the profile, so a parameters cell
    lists only the few parameters users change most and any other can still be set.
    ``overrides``: values given by name (they win over ``namespace``).
    Raises ParameterError (a ValueError) naming the parameter and the allowed values.
    """
    check_profile(profile)
    params = _check_known(notebook, overrides)
    given = {name: namespace[name] for name in params if namespace is not None and name in namespace}
    given.update(overrides)
    values = {name: p.check(name, p.default(profile)) for name, p in params.items()}
    values.update({name: params[name].check(name, v) for name, v in given.items() if v is not None})
    cfg = Config(notebook=notebook, profile=profile, **values)
    for check in _TOGETHER.get(notebook, ()):
        check(cfg)
    check_memory(cfg)
    return cfg


# --- checks of several parameters together --------------------------------------------------------


def _refuse(name: str, value: Any, why: str, allowed: str) -> ParameterError:
    return ParameterError(f"parameter {name}={value!r} is not allowed: {why}; allowed: {allowed}")


def _steps_multiple(cfg: Config) -> None:
    if cfg.steps % cfg.eval_every:
        raise _refuse(
            "steps", cfg.steps, f"not a multiple of eval_every={cfg.eval_every}", "a multiple of eval_every"
        )


def _tau_not_below_dt(cfg: Config) -> None:
    if cfg.tau < cfg.dt:
        raise _refuse("tau", cfg.tau, f"shorter than the time step dt={cfg.dt}", f"a number >= dt ({cfg.dt})")


def _pair_in_tasks(cfg: Config) -> None:
    tasks = cfg.tasks
    for name in ("task_a", "task_b"):
        if cfg[name] not in tasks:
            raise _refuse(name, cfg[name], f"not one of tasks={cfg.tasks!r}", "one of " + ", ".join(tasks))
    if cfg.task_a == cfg.task_b:
        raise _refuse("task_b", cfg.task_b, "the same task as task_a", "another of " + ", ".join(tasks))


def _gain_sites_of_backbone(cfg: Config) -> None:
    """The library's own check (:func:`neuromod_lib.adaptation.placement_sites`), before any kernel."""
    from .adaptation import placement_sites
    from .models.cnn import build_backbone

    try:
        placement_sites(build_backbone(cfg.backbone), cfg.gain_sites)
    except ValueError as error:
        raise ParameterError(f"parameter {error}") from None


#: input values per sample of each task sequence (for ``k`` and the memory estimate)
_INPUTS = {"digits": 64, "mnist1d": 40, "mnist": 784}


def _inputs(benchmark: str) -> int:
    return _INPUTS[benchmark.rsplit("_", 1)[-1]]


def _inputs_per_unit_within_inputs(cfg: Config) -> None:
    d = _inputs(cfg.benchmark)
    if cfg.inputs_per_unit > d:
        raise _refuse(
            "inputs_per_unit",
            cfg.inputs_per_unit,
            f"more than the {d} inputs of {cfg.benchmark}",
            f"an integer from 1 to {d}",
        )


def _device_available(cfg: Config) -> None:
    from .device import pick_device

    try:
        pick_device(cfg.device)
    except ValueError as error:
        raise ParameterError(f"parameter {error}") from None


_RNN_CHECKS = (_steps_multiple, _tau_not_below_dt)
_TOGETHER: dict[str, tuple[Any, ...]] = {
    "01_gain_modulation": (_gain_sites_of_backbone,),
    "02_stochastic_comodulation": (_gain_sites_of_backbone,),
    "04_rnn_task_packing": _RNN_CHECKS,
    "05_rnn_ambiguity_and_dynamics": (*_RNN_CHECKS, _pair_in_tasks),
    "06_random_weight_continual_learning": (_inputs_per_unit_within_inputs,),
    "07_modulation_families_compared": (_inputs_per_unit_within_inputs,),
}
for _name in NOTEBOOK_PARAMS:
    _TOGETHER[_name] = (_device_available, *_TOGETHER.get(_name, ()))


# --- memory ----------------------------------------------------------------------------------------

_FLOAT = 4  # bytes of a float32
_FULL_SETS = {"celeba": 202_599, "cifar100": 60_000}
#: trial length in ms that the RNN estimate assumes (the longest of Yang et al.'s tasks, with a delay)
_TRIAL_MS = 3_000.0


def _rnn_bytes(n: int, networks: int, batch: int, k: int, dt: float) -> float:
    """A stack of ``networks`` RNNs of ``n`` units trained together: weights with their gradients
    and Adam moments, and the activations of one batch (``batch`` trials per network) kept for
    backpropagation through ``_TRIAL_MS / dt`` steps (about four tensors per step)."""
    steps = _TRIAL_MS / dt
    weights = 4 * networks * (n * n + 2 * k * n + 40 * n)
    return _FLOAT * (weights + 4 * networks * batch * steps * n)


def _continual_bytes(d: int, expansion: float, n_tasks: int) -> float:
    """Random expansion of ``d`` inputs to ``h = expansion * d`` units: the dense baselines of the
    same width (weights, gradient, Adam moments, EWC/SI statistics: ~8 copies of ``h x d``), one
    context per task, and one batch of hidden activity."""
    h = expansion * d
    return _FLOAT * (8 * h * d + 4 * n_tasks * h + 2 * 1024 * h)


def memory_estimate(cfg: Config) -> tuple[float, str]:
    """A rough upper estimate (bytes) of the largest allocation ``cfg`` asks for, and the parameter
    that drives it (to name it in the error). Only the terms that grow with the parameters count."""
    v = cfg
    terms: list[tuple[float, str]] = [(0.0, "")]
    if "n_images" in v:
        n = v.n_images or _FULL_SETS.get(v.dataset, 0)
        # uint8 images, held once as loaded and once as the split used
        terms.append((2 * 3 * n * v.image_size**2, "n_images" if v.n_images else "image_size"))
    if "sizes" in v:
        networks = len(v.pathways) * len(v.ks) * v.replicates
        k, n = max(v.ks), max(v.sizes)
        terms.append((_rnn_bytes(n, networks, v.batch, k, v.dt), "sizes"))
    if "n_neurons" in v and "pathways" in v:
        networks = len(v.pathways) * v.replicates
        terms.append((_rnn_bytes(v.n_neurons, networks, v.batch, len(v.tasks), v.dt), "n_neurons"))
    if "rnn_neurons" in v:
        terms.append(
            (
                _rnn_bytes(v.rnn_neurons, 2 * v.rnn_replicates, 64, len(v.rnn_tasks), 20.0),
                "rnn_neurons",
            )
        )
    if "expansion" in v:
        terms.append((_continual_bytes(_inputs(v.benchmark), v.expansion, v.n_tasks), "expansion"))
    if "digit_expansion" in v:
        d = _inputs(v.benchmark)
        terms.append((_continual_bytes(d, v.digit_expansion, v.n_digit_tasks), "digit_expansion"))
    return max(terms)


def memory_limit() -> float:
    """This machine's physical memory in bytes ($NEUROMOD_MEMORY_LIMIT_GB overrides it)."""
    override = os.environ.get("NEUROMOD_MEMORY_LIMIT_GB")
    if override:
        return float(override) * 2**30
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n < 2**40 else f"{n / 2**40:,.1f} TiB"


def check_memory(cfg: Config) -> None:
    """Refuse parameters whose estimated memory exceeds this machine's (before anything runs)."""
    need, name = memory_estimate(cfg)
    limit = memory_limit()
    if need > limit:
        raise ParameterError(
            f"parameter {name}={cfg[name]!r} is not allowed: with these parameters the run needs about "
            f"{_gib(need)} of memory (estimate), more than this machine's {_gib(limit)}; "
            f"allowed: smaller values of {name} (or of the sizes that multiply it)"
        )


def parse_overrides(notebook: str, pairs: list[str]) -> dict[str, Any]:
    """Parse ``["key=value", ...]`` from the command line into typed, checked values."""
    texts: dict[str, str] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"-p {pair!r} is not of the form key=value")
        texts[key.strip()] = text.strip()
    params = _check_known(notebook, texts)
    return {key: params[key].parse(key, text) for key, text in texts.items()}


NOTEBOOK_PARAMS["07_modulation_families_compared"] = {
    "task_sets": Param(
        list,
        ["attributes", "digits", "cognitive"],
        "list of task sets: attributes, digits, cognitive",
        item=Param(str, None, "task set", choices=TASK_SETS),
    ),
    "families": Param(
        list,
        ["deterministic_gain", "stochastic_gain", "excitability", "synaptic", "random_weights", "finetune"],
        "list of modulation families (and the finetune reference)",
        item=Param(str, None, "family", choices=(*FAMILIES, "finetune")),
    ),
    # images: notebook 01's attribute set-up (same cache key, so a run after 01 reuses its backbone)
    "dataset": Param(
        str, {"quick": "generated", "paper": "celeba"}, "image data set", choices=("generated", "celeba")
    ),
    "data_root": Param(str, "../data", "folder of the real data sets (paper profile)"),
    "verify_data": Param(bool, True, "check the real data's published MD5 sums"),
    "n_images": Param(
        int, {"smoke": 900, "quick": 6000, "paper": 0}, "images to use (0: all)", low=0, high=10**7
    ),
    "image_size": Param(int, {"quick": 32, "paper": 64}, "image side in pixels", low=8, high=512),
    "backbone": _backbone_param("convnet", "resnet18"),
    "weights": Param(str, "", "local ImageNet state_dict file for resnet18/50 ('': none)"),
    "pretrain_epochs": Param(
        int, {"smoke": 1, "quick": 6, "paper": 15}, "backbone pretraining epochs", low=1, high=1000
    ),
    "n_attributes": Param(
        int, {"smoke": 3, "quick": 8, "paper": 20}, "held-out attribute tasks", low=2, high=20
    ),
    "attribute_expansion": Param(
        float, 2.0, "shared width per image feature (H is expansion x D)", low=1.0, high=10_000.0
    ),
    # digits: a continual sequence of notebook 06
    "benchmark": Param(
        str,
        {"quick": "rotated_digits", "paper": "rotated_mnist"},
        "digit task sequence",
        choices=BENCHMARKS,
    ),
    "n_digit_tasks": Param(
        int, {"smoke": 3, "quick": 10, "paper": 10}, "tasks in the digit sequence", low=2, high=100
    ),
    "max_train": Param(
        int, {"smoke": 200, "quick": 0, "paper": 0}, "training samples per task (0: all)", low=0
    ),
    "digit_expansion": Param(
        float, 10.0, "shared width per pixel (H is expansion x D)", low=1.0, high=10_000.0
    ),
    # how every feedforward family learns (one budget for all)
    "epochs": Param(int, {"smoke": 1, "quick": 3, "paper": 5}, "epochs per task", low=1, high=1000),
    "batch": Param(int, 128, "batch size", low=1, high=65536),
    "lr": Param(float, 1e-2, "Adam learning rate of modulations (and per-task heads)", above=0.0),
    "trunk_lr": Param(float, 1e-3, "Adam learning rate of the shared layer (first task only)", above=0.0),
    "readout": Param(
        str, "shared", "one readout for all tasks, or a head per task", choices=("shared", "per_task")
    ),
    "rank": Param(
        int, 0, "synaptic rank per task (0: matched to excitability's 2H values)", low=0, high=4096
    ),
    "sigma_m": Param(float, 0.1, "std of the stochastic modulator m", low=0.0),
    "inputs_per_unit": Param(
        int, 7, "inputs summed by each random-weight hidden unit (at most the inputs)", low=1
    ),
    "rw_lr": Param(float, 1e-2, "RMSprop learning rate of the random-weight contexts", above=0.0),
    "dense_lr": Param(float, 1e-3, "Adam learning rate of the finetune reference", above=0.0),
    # cognitive tasks: notebook 05's networks (its profile's dynamics and budget)
    "rnn_tasks": Param(
        list,
        ["go", "anti", "dm1", "dly_go"],
        "list of cognitive tasks",
        item=Param(str, None, "task", choices=TASKS),
    ),
    "rnn_neurons": Param(int, {"smoke": 16, "quick": 32, "paper": 256}, "RNN size N", low=1, high=4096),
    "rnn_replicates": Param(int, {"smoke": 1, "quick": 2, "paper": 5}, "RNNs per family", low=1, high=20),
    "rnn_steps": Param(
        int, {"smoke": 40, "quick": 1500, "paper": 20000}, "RNN training steps at most", low=1, high=MAX_STEPS
    ),
    # robustness
    "ambiguity_lambda": Param(
        float, 0.4, "weight of the wrong task in the ambiguous context (1-l) e_a + l e_b", low=0.0, high=0.5
    ),
    "context_noise": Param(float, 0.5, "sigma of the noisy context e_a + sigma xi", above=0.0),
}


DESCRIBE_HEADER = ["parameter", "type", *PROFILES, "allowed", "description"]
_TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool"}


def type_name(param: Param) -> str:
    """``int``, ``float``, ``str``, ``bool``, or ``list[int]`` (a list) for ``param``."""
    if param.item is not None:
        return f"list[{_TYPE_NAMES[param.item.kind]}]"
    return _TYPE_NAMES[param.kind]


def describe_parameters(notebook: str) -> list[list[str]]:
    """One row per parameter of ``notebook`` (see DESCRIBE_HEADER): what ``list NB`` prints."""
    rows = []
    for name, param in spec(notebook).items():
        values = [repr(param.default(profile)) for profile in PROFILES]
        rows.append([name, type_name(param), *values, param.describe(), param.help])
    return rows


_PROFILE_HELP = "smoke (seconds, tests), quick (laptop CPU, embedded data), paper (GPU, real data)"

#: the parameters each notebook's parameters cell shows: those a user changes most (every other
#: parameter can be set all the same: a line in that cell, papermill -p, or the CLI's -p)
SHOWN: dict[str, tuple[str, ...]] = {
    "00_overview": ("n_neurons", "kappa", "gain", "threshold"),
    "01_gain_modulation": ("seed", "device", "backbone", "gain_sites", "steps", "n_seeds"),
    "02_stochastic_comodulation": ("seed", "device", "sigma_m", "gain_sites", "steps", "n_seeds"),
    "03_architecture_study": ("seed", "device", "backbones", "placements", "steps", "n_seeds"),
    "04_rnn_task_packing": ("seed", "device", "pathways", "sizes", "ks", "replicates"),
    "05_rnn_ambiguity_and_dynamics": ("seed", "device", "pathways", "n_neurons", "task_a", "task_b"),
    "06_random_weight_continual_learning": ("seed", "device", "benchmark", "n_tasks", "methods"),
    "07_modulation_families_compared": ("seed", "device", "task_sets", "families", "readout"),
}


def parameters_cell(notebook: str) -> str:
    """The source of ``notebook``'s papermill ``parameters`` cell, generated from its spec.

    ``profile`` and the parameters of :data:`SHOWN`, each ``None`` ("the profile's value"); the
    notebook's next cell passes ``globals()`` to :func:`resolve`, so any other parameter set here or
    injected by papermill counts too. Each line carries its type and help as papermill reads them
    (``papermill --help-notebook``; papermill skips a line with a second ``=``, so no help text holds
    one). A test keeps the committed cells equal to this.
    """
    params = spec(notebook)
    lines = [
        f'profile = "{DEFAULT_PROFILE}"  # type: str  {_PROFILE_HELP}',
        "# None: the profile's value. Every other parameter can be set here too; all of them, their",
        f"# values and what is allowed: python -m neuromod_lib list {notebook[:2]}",
    ]
    lines += [
        f"{name} = None  # type: {type_name(params[name])}  {params[name].help}" for name in SHOWN[notebook]
    ]
    return "\n".join(lines)


#: the call of :func:`resolve` that follows the parameters cell in every notebook
RESOLVE_CALL = "cfg = nm.profiles.resolve(NOTEBOOK, profile, globals())"
