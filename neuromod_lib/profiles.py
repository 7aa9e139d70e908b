"""The ``smoke``, ``quick`` and ``paper`` profiles: small tables of values, and how a notebook resolves them.

Every parameter is declared once, as a field of its notebook's config dataclass
(:mod:`neuromod_lib.configs`): type, ``quick`` value, help and what is allowed. A profile here is
only the values that differ from those defaults, in the spirit of nanoGPT's config files:

- ``smoke``: seconds; for the test suite's papermill runs.
- ``quick``: minutes on a laptop CPU with the embedded data; the committed notebooks (the defaults).
- ``paper``: the full reproduction, on a GPU with the real data sets.

:func:`resolve` makes a notebook's config from a profile and the user's values (checked by the
config itself, before anything runs) and refuses sizes this machine's memory cannot hold; the
command line, ``list NN`` and each notebook's parameters cell read the same declarations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .checks import ParameterError
from .configs import (
    CONFIGS,
    DEFAULT_PROFILE,
    MAX_STEPS,
    PROFILES,
    NotebookConfig,
    Spec,
    check_profile,
    default_results_dir,
    inputs_of,
    specs,
)

__all__ = [
    "DEFAULT_PROFILE",
    "MAX_STEPS",
    "PROFILES",
    "PROFILE_VALUES",
    "SHOWN",
    "Config",
    "ParameterError",
    "default_results_dir",
    "describe_parameters",
    "notebook_names",
    "parameters_cell",
    "parse_overrides",
    "resolve",
    "spec",
]

#: a resolved notebook configuration (one of :data:`neuromod_lib.configs.CONFIGS`)
Config = NotebookConfig

_CNN_SMOKE = {
    "n_images": 900,
    "pretrain_epochs": 1,
    "steps": 20,
    "eval_every": 10,
    "batch_per_task": 4,
    "n_seeds": 2,
}
#: the literature's CelebA protocol (Sener & Koltun 2018): all 40 attributes, official test split
_CELEBA = {
    "dataset": "celeba", "protocol": "all", "n_images": 0, "image_size": 64, "n_tasks": 40,
    "pretrain_epochs": 15, "steps": 3000, "eval_every": 300, "batch_per_task": 32, "backbone": "resnet18",
    "n_adapt": 0,
    "n_seeds": 5,
}  # fmt: skip
_RNN_SMOKE = {
    "replicates": 2,
    "steps": 40,
    "eval_every": 20,
    "batch": 16,
    "eval_trials": 16,
    "final_trials": 16,
}
#: Yang et al.'s dynamics and a GPU budget
_RNN_PAPER = {
    "replicates": 5, "steps": 20000, "eval_every": 500, "batch": 64, "lr": 0.001, "eval_trials": 256,
    "dt": 20.0, "tau": 100.0, "n_ring": 32, "activation": "softplus", "input_noise": 0.01,
}  # fmt: skip

#: Per notebook, the values of the ``smoke`` and ``paper`` profiles that differ from the config's
#: defaults (which are the ``quick`` profile).
PROFILE_VALUES: dict[str, dict[str, dict[str, Any]]] = {
    "00_overview": {"smoke": {"n_neurons": 8}, "paper": {"n_neurons": 64}},
    "01_gain_modulation": {"smoke": {**_CNN_SMOKE, "n_tasks": 3}, "paper": _CELEBA},
    "02_stochastic_comodulation": {"smoke": {**_CNN_SMOKE, "n_tasks": 3}, "paper": _CELEBA},
    "03_architecture_study": {
        "smoke": {**_CNN_SMOKE, "n_tasks": 2, "n_pretrain": 4, "backbones": ["convnet", "resnet_small"]},
        "paper": {
            "dataset": "cifar100",
            "n_images": 0,
            "image_size": 32,
            "n_seeds": 5,
            "n_tasks": 10,
            "pretrain_epochs": 15,
            "steps": 3000,
            "eval_every": 300,
            "batch_per_task": 32,
            "backbones": ["resnet18", "resnet50", "convnet_wide"],
            "placements": ["early", "late", "all"],
        },  # fmt: skip
    },
    "04_rnn_task_packing": {
        "smoke": {**_RNN_SMOKE, "sizes": [8, 16], "ks": [1, 2]},
        "paper": {**_RNN_PAPER, "sizes": [16, 32, 64, 128, 256], "ks": [1, 2, 4, 6, 8, 10, 13]},
    },
    "05_rnn_ambiguity_and_dynamics": {
        "smoke": {**_RNN_SMOKE, "n_neurons": 16, "n_lambdas": 3, "sigmas": [0.0, 1.0], "fp_steps": 50},
        "paper": {
            **_RNN_PAPER,
            "replicates": 16,
            "n_neurons": 32,
            "tasks": ["go", "anti", "dm1", "dly_go", "rt_go", "dm2"],
            "n_lambdas": 21,
            "sigmas": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0],
            "fp_steps": 5000,
        },  # fmt: skip
    },
    "06_random_weight_continual_learning": {
        "smoke": {"n_tasks": 2, "max_train": 200, "epochs": 1},
        "paper": {"benchmark": "permuted_mnist", "epochs": 3},
    },
    "07_modulation_families_compared": {
        "smoke": {
            "n_images": 900,
            "pretrain_epochs": 1,
            "n_attributes": 3,
            "n_digit_tasks": 3,
            "max_train": 200,
            "epochs": 1,
            "rnn_neurons": 16,
            "rnn_replicates": 1,
            "rnn_steps": 40,
        },  # fmt: skip
        "paper": {
            "dataset": "celeba",
            "n_images": 0,
            "image_size": 64,
            "backbone": "resnet18",
            "pretrain_epochs": 15,
            "n_attributes": 20,
            "benchmark": "rotated_mnist",
            "epochs": 5,
            "rnn_neurons": 256,
            "rnn_replicates": 5,
            "rnn_steps": 20000,
        },  # fmt: skip
    },
}


def notebook_names() -> list[str]:
    """Notebooks that have a config."""
    return list(CONFIGS)


def _config_class(notebook: str) -> type[NotebookConfig]:
    if notebook not in CONFIGS:
        raise ParameterError(f"notebook={notebook!r} is unknown; allowed: {', '.join(CONFIGS)}")
    return CONFIGS[notebook]


def spec(notebook: str) -> dict[str, Spec]:
    """Every parameter ``notebook`` takes (common ones first), as its config declares it."""
    return specs(_config_class(notebook))


def profile_value(notebook: str, profile: str, name: str) -> Any:
    """The value parameter ``name`` of ``notebook`` takes under ``profile`` (before any override)."""
    values = PROFILE_VALUES.get(notebook, {}).get(profile, {})
    return values[name] if name in values else spec(notebook)[name].default


def _check_known(notebook: str, names: Mapping[str, Any] | list[str]) -> dict[str, Spec]:
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
) -> NotebookConfig:
    """The checked config of ``notebook`` under ``profile``; ``None`` values take the profile's.

    ``namespace``: a notebook's ``globals()``: every parameter of the notebook found there (set in
    its parameters cell, or injected by papermill) overrides the profile, so a parameters cell
    lists only the few parameters users change most and any other can still be set.
    ``overrides``: values given by name (they win over ``namespace``). The config checks every
    value (:mod:`neuromod_lib.configs`); then the memory the run needs is checked against this
    machine's. Raises ParameterError (a ValueError) naming the parameter and the allowed values.
    """
    check_profile(profile)
    params = _check_known(notebook, overrides)
    given = {name: namespace[name] for name in params if namespace is not None and name in namespace}
    given.update(overrides)
    values = {**PROFILE_VALUES.get(notebook, {}).get(profile, {})}
    values.update({name: v for name, v in given.items() if v is not None})
    cfg = _config_class(notebook)(profile=profile, **values)
    check_memory(cfg)
    return cfg


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


def memory_estimate(cfg: NotebookConfig) -> tuple[float, str]:
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
        terms.append((_continual_bytes(inputs_of(v.benchmark), v.expansion, v.n_tasks), "expansion"))
    if "digit_expansion" in v:
        d = inputs_of(v.benchmark)
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


def check_memory(cfg: NotebookConfig) -> None:
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
    return {key: params[key].rule.parse(key, text) for key, text in texts.items()}


DESCRIBE_HEADER = ["parameter", "type", *PROFILES, "allowed", "description"]


def describe_parameters(notebook: str) -> list[list[str]]:
    """One row per parameter of ``notebook`` (see DESCRIBE_HEADER): what ``list NB`` prints."""
    rows = []
    for name, p in spec(notebook).items():
        values = [repr(profile_value(notebook, profile, name)) for profile in PROFILES]
        rows.append([name, p.type_name, *values, p.rule.describe(), p.help])
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
        f"{name} = None  # type: {params[name].type_name}  {params[name].help}" for name in SHOWN[notebook]
    ]
    return "\n".join(lines)


#: the call of :func:`resolve` that follows the parameters cell in every notebook
RESOLVE_CALL = "cfg = nm.profiles.resolve(NOTEBOOK, profile, globals())"
