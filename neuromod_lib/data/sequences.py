"""Continual-learning task sequences: Split, Permuted and Rotated digits, MNIST-1D and MNIST.

Hong & Pavlic (2022, "Learning to Modulate Random Weights") train a network with fixed random
weights on a sequence of tasks, learning only a per-task modulation; their baselines (the
SupSup lineage: Wortsman et al. 2020) use three benchmarks, each a list of classification
tasks over the same kind of input:

- **Split**: 5 tasks of 2 classes each, task ``i`` = digits ``(2i, 2i+1)`` with labels remapped
  to 0/1 within the task (task-incremental: the model is told which task it is solving);
- **Permuted**: every task is the full 10-class problem after a fixed random pixel permutation;
- **Rotated**: task ``i`` is the 10-class problem with every image rotated by ``10 * i``
  degrees, so 36 tasks cover 0..350 degrees.

:func:`make_sequence` builds one of ``BENCHMARKS`` as a :class:`TaskSequence` of :class:`Task`
tensors, ready for full-batch or mini-batch training on the CPU. Three data sources:

- ``digits``: scikit-learn's bundled ``load_digits`` (1797 real 8x8 handwritten digits, 64
  features, values 0..16): offline and tiny, the default for quick runs;
- ``mnist1d``: MNIST-1D (Greydanus 2020; 40 features, 4000 train / 1000 test), generated
  locally by ``mnist1d.data.make_dataset`` with its default arguments (generator seed 42: the
  canonical data set). Its ``get_dataset`` would download a pickle; it is never called. A
  1-D signal has no rotation, so there is no ``rotated_mnist1d``;
- ``mnist``: real MNIST (28x28) through ``torchvision.datasets.MNIST(root, download=False)``,
  read from the four raw IDX files under ``<root>/MNIST/raw`` (the paper profile). Missing
  files are a ``FileNotFoundError`` naming the folder and the command that downloads them.

Design choices (marked here because the papers do not pin them down):

- train/test: digits has no official split, so a stratified split drawn from ``seed`` with
  ``test_fraction``; MNIST-1D and MNIST keep their own train/test splits (``test_fraction`` is
  then unused). Every task of a permuted or rotated sequence shows the same images; only the
  transform differs;
- permuted task 0 is the identity permutation (the untransformed problem, as in Hong & Pavlic's
  and SupSup's first task); task ``i > 0`` uses the ``i``-th permutation drawn from ``seed``,
  so the first ``k`` tasks do not depend on ``n_tasks``;
- standardisation uses the training set of the untransformed data and is shared by all tasks.
  Split and permuted: per feature, ``(x - mean_j) / max(std_j, 0.5 * std)`` where ``std`` is the
  scalar std of all training pixels: the floor keeps constant or nearly constant pixels (the
  blank corners of digits, border pixels of MNIST) from being blown up to z-scores of 40 or
  more. Per-feature statistics commute with a permutation (permuting standardised features
  equals standardising permuted features with permuted statistics). Rotated: one scalar mean
  and std over all training pixels, so that standardisation is the same map for every pixel and
  a rotation moves standardised values around without changing what they mean;
- rotation acts on the raw images (background 0, also used to fill the corners that rotate in)
  with bilinear interpolation (``affine_grid`` / ``grid_sample``, ``align_corners=False``) before
  standardisation; positive angles turn counter-clockwise as displayed (row 0 on top), as
  ``torch.rot90(x, 1, dims=(-2, -1))`` and ``torchvision``'s ``rotate``. Multiples of 90 degrees
  use exact cosines and sines, so they move pixel centres onto pixel centres;
- ``max_train`` keeps a random subset of at most ``max_train`` training examples per task
  (the same subset for every task of a permuted or rotated sequence); the statistics still come
  from the full training set, so a fast profile sees the same feature scaling as a full one;
- memory: tasks are materialised. Full MNIST costs about 0.22 GB per task (60000 + 10000 images
  of 784 float32), i.e. about 8 GB for 36 rotations: use ``max_train`` for long sequences.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "BENCHMARKS",
    "MAX_SPLIT_TASKS",
    "ROTATION_STEP",
    "Task",
    "TaskSequence",
    "make_sequence",
    "mnist_download_command",
    "rotate",
]

BENCHMARKS: tuple[str, ...] = (
    "split_digits", "permuted_digits", "rotated_digits", "split_mnist1d", "permuted_mnist1d",
    "split_mnist", "permuted_mnist", "rotated_mnist",
)  # fmt: skip
MAX_SPLIT_TASKS = 5  # 10 digits in pairs
ROTATION_STEP = 10  # degrees between consecutive rotated tasks
DEFAULT_N_TASKS = 5  # quick default for every family
_STD_FLOOR = 0.5  # per-feature std floor, as a fraction of the scalar std of all training pixels
_PERMUTATION_STREAM, _SUBSAMPLE_STREAM = 1, 2  # independent random streams derived from ``seed``
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")  # fmt: skip


@dataclass
class Task:
    """One classification task: standardised flattened inputs and labels in ``[0, n_classes)``.

    ``x_train`` is ``(n, D)`` float32, ``y_train`` ``(n,)`` long (likewise for the test set);
    ``classes`` are the original digit labels the task uses (split: 2; otherwise 0..9), so label
    ``k`` of the task is digit ``classes[k]``.
    """

    name: str
    x_train: Tensor = field(repr=False)
    y_train: Tensor = field(repr=False)
    x_test: Tensor = field(repr=False)
    y_test: Tensor = field(repr=False)
    classes: tuple[int, ...] = ()

    def __repr__(self) -> str:
        n_train, n_test = len(self.y_train), len(self.y_test)
        return f"Task({self.name!r}, classes={self.classes}, n_train={n_train}, n_test={n_test})"


@dataclass
class TaskSequence:
    """The tasks of one benchmark, in training order.

    ``n_inputs`` is ``D`` (64 digits, 40 MNIST-1D, 784 MNIST); ``n_classes`` is 2 for split
    benchmarks (labels remapped within each task) and 10 otherwise; ``image_shape`` is
    ``(8, 8)`` or ``(28, 28)`` for images (``x.view(-1, *image_shape)`` shows the task's input, also
    permuted) and ``None`` for MNIST-1D.
    """

    benchmark: str
    tasks: list[Task]
    n_inputs: int
    n_classes: int
    image_shape: tuple[int, ...] | None

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index: int) -> Task:
        return self.tasks[index]

    def __iter__(self):
        return iter(self.tasks)


@dataclass(frozen=True)
class _Data:
    """Raw (unstandardised) float32 data of one source: ``x`` ``(N, D)``, ``y`` ``(N,)`` long."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    image_shape: tuple[int, ...] | None


def mnist_download_command(root: str | os.PathLike) -> str:
    """The shell command that downloads MNIST (train and test) into ``root``."""
    return f'python -c "from torchvision import datasets; datasets.MNIST({str(root)!r}, download=True)"'


# --------------------------------------------------------------------------- entry point


def make_sequence(
    benchmark: str,
    n_tasks: int | None = None,
    *,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    test_fraction: float = 0.25,
    max_train: int | None = None,
) -> TaskSequence:
    """Build ``n_tasks`` tasks (default 5) of ``benchmark``, deterministically from ``seed``.

    ``root`` is the data folder of the ``*_mnist`` benchmarks (required there, unused
    otherwise); ``test_fraction`` the held-out share of the digits (MNIST-1D and MNIST keep
    their own test sets); ``max_train`` caps the training examples per task. Split benchmarks
    have at most 5 tasks; permuted and rotated ones any number (rotated task ``i``: ``10 * i``
    degrees). All tensors are on the CPU.
    """
    family, source = _parse(benchmark)
    n = _check_n_tasks(n_tasks, family)
    _check_options(seed, test_fraction, max_train)
    data = _load(source, root=root, seed=seed, test_fraction=test_fraction)
    build = {"split": _split_tasks, "permuted": _permuted_tasks, "rotated": _rotated_tasks}[family]
    tasks = build(data, n, seed, max_train)
    return TaskSequence(
        benchmark=benchmark,
        tasks=tasks,
        n_inputs=data.x_train.shape[1],
        n_classes=2 if family == "split" else 10,
        image_shape=data.image_shape,
    )


def _parse(benchmark: str) -> tuple[str, str]:
    """``"permuted_digits"`` -> ``("permuted", "digits")``, or a ValueError listing the choices."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark={benchmark!r} is unknown; choose from {', '.join(BENCHMARKS)}")
    family, source = benchmark.split("_", 1)
    return family, source


def _check_n_tasks(n_tasks: int | None, family: str) -> int:
    if n_tasks is None:
        return DEFAULT_N_TASKS
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, (int, np.integer)) or n_tasks < 1:
        raise ValueError(f"n_tasks={n_tasks!r} must be None or an integer >= 1")
    if family == "split" and n_tasks > MAX_SPLIT_TASKS:
        raise ValueError(
            f"n_tasks={n_tasks} is too many for a split benchmark: the maximum is {MAX_SPLIT_TASKS} "
            "(10 digits in pairs)"
        )
    return int(n_tasks)


def _check_options(seed: int, test_fraction: float, max_train: int | None) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an integer >= 0")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise ValueError(f"test_fraction={test_fraction!r} must be a number in (0, 1)")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction!r} must be a number in (0, 1)")
    if max_train is not None and (
        isinstance(max_train, bool) or not isinstance(max_train, (int, np.integer)) or max_train < 1
    ):
        raise ValueError(f"max_train={max_train!r} must be None or an integer >= 1")


def _generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for one purpose (``stream``), independent of the other streams of ``seed``."""
    state = np.random.SeedSequence([int(seed), stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


# --------------------------------------------------------------------------- data sources


def _load(source: str, *, root: str | os.PathLike | None, seed: int, test_fraction: float) -> _Data:
    if source == "digits":
        return _load_digits(seed, test_fraction)
    if source == "mnist1d":
        return _load_mnist1d()
    return _load_mnist(root)


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[Tensor, Tensor]:
    """scikit-learn's bundled digits: ``(1797, 64)`` float32 in 0..16 and ``(1797,)`` long labels."""
    from sklearn.datasets import load_digits  # imported on first use: scikit-learn is slow to import

    bunch = load_digits()
    return torch.from_numpy(bunch.data.astype(np.float32)), torch.from_numpy(bunch.target.astype(np.int64))


def _load_digits(seed: int, test_fraction: float) -> _Data:
    """The digits with a stratified train/test split drawn from ``seed``."""
    from sklearn.model_selection import train_test_split

    x, y = _digits_arrays()
    train, test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, stratify=y.numpy(), random_state=seed
    )
    train, test = torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(test))
    return _Data(x[train], y[train], x[test], y[test], image_shape=(8, 8))


@lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """MNIST-1D generated locally (default arguments): x ``(4000, 40)`` / ``(1000, 40)`` float32."""
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:  # make_dataset seeds the global NumPy and Python generators: leave them as they were
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)

    def as_x(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    def as_y(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.int64))

    return as_x(data["x"]), as_y(data["y"]), as_x(data["x_test"]), as_y(data["y_test"])


def _load_mnist1d() -> _Data:
    return _Data(*_mnist1d_arrays(), image_shape=None)


def _load_mnist(root: str | os.PathLike | None) -> _Data:
    """Real MNIST (official train/test files) from ``<root>/MNIST/raw``, never downloaded."""
    if root is None:
        raise ValueError(
            "root=None: the *_mnist benchmarks read real MNIST from a folder; pass root=... "
            f"(download it with: {mnist_download_command('<root>')})"
        )
    from torchvision import datasets

    parts = []
    for train in (True, False):
        try:
            ds = datasets.MNIST(str(root), train=train, download=False)
        except RuntimeError as err:
            if "not found" not in str(err).lower():
                raise
            folder = Path(root) / "MNIST" / "raw"
            raise FileNotFoundError(
                f"MNIST not found in {str(folder)!r} (expected {', '.join(_MNIST_FILES)}); "
                f"download it with:\n  {mnist_download_command(root)}"
            ) from err
        parts += [ds.data.reshape(len(ds.data), -1).float(), ds.targets.long()]
    return _Data(*parts, image_shape=(28, 28))


# --------------------------------------------------------------------------- standardisation


def _feature_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-feature mean and floored std of ``x`` ``(N, D)``: two ``(D,)`` tensors (see module doc)."""
    floor = _STD_FLOOR * x.std().clamp_min(1e-8)
    return x.mean(0), x.std(0).clamp_min(floor)


def _scalar_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and std of all entries of ``x``: two 0-d tensors."""
    return x.mean(), x.std().clamp_min(1e-8)


def _subsample(index: Tensor, max_train: int | None, gen: torch.Generator) -> Tensor:
    """At most ``max_train`` entries of ``index`` ``(n,)``, drawn without replacement, in order."""
    if max_train is None or len(index) <= max_train:
        return index
    keep = torch.randperm(len(index), generator=gen)[:max_train].sort().values
    return index[keep]


# --------------------------------------------------------------------------- task families


def _split_tasks(data: _Data, n: int, seed: int, max_train: int | None) -> list[Task]:
    """Task ``i``: digits ``(2i, 2i+1)`` -> labels 0/1; features standardised per feature."""
    mean, std = _feature_stats(data.x_train)
    gen = _generator(seed, _SUBSAMPLE_STREAM)
    tasks = []
    for i in range(n):
        pair = (2 * i, 2 * i + 1)
        train = _subsample(_pair_index(data.y_train, pair), max_train, gen)
        test = _pair_index(data.y_test, pair)
        tasks.append(
            Task(
                name=f"digits {pair[0]}/{pair[1]}",
                x_train=(data.x_train[train] - mean) / std,
                y_train=(data.y_train[train] == pair[1]).long(),
                x_test=(data.x_test[test] - mean) / std,
                y_test=(data.y_test[test] == pair[1]).long(),
                classes=pair,
            )
        )
    return tasks


def _pair_index(y: Tensor, pair: tuple[int, int]) -> Tensor:
    """Positions of the examples of ``y`` ``(N,)`` whose label is in ``pair``: ``(n,)`` long."""
    return torch.nonzero((y == pair[0]) | (y == pair[1])).flatten()


def _permutations(n_inputs: int, n: int, seed: int) -> Tensor:
    """``(n, n_inputs)`` long: row 0 the identity, row ``i > 0`` the ``i``-th permutation of ``seed``."""
    gen = _generator(seed, _PERMUTATION_STREAM)
    rows = [torch.arange(n_inputs)] + [torch.randperm(n_inputs, generator=gen) for _ in range(n - 1)]
    return torch.stack(rows)


def _permuted_tasks(data: _Data, n: int, seed: int, max_train: int | None) -> list[Task]:
    """Task ``i``: the 10-class problem with features permuted by ``_permutations(...)[i]``."""
    mean, std = _feature_stats(data.x_train)
    train = _subsample(torch.arange(len(data.y_train)), max_train, _generator(seed, _SUBSAMPLE_STREAM))
    x_train, x_test = (data.x_train[train] - mean) / std, (data.x_test - mean) / std
    y_train = data.y_train[train]
    perms = _permutations(x_train.shape[1], n, seed)
    return [
        Task(
            name=f"permutation {i}",
            x_train=x_train.index_select(1, perm),
            y_train=y_train.clone(),
            x_test=x_test.index_select(1, perm),
            y_test=data.y_test.clone(),
            classes=tuple(range(10)),
        )
        for i, perm in enumerate(perms)
    ]


def _rotated_tasks(data: _Data, n: int, seed: int, max_train: int | None) -> list[Task]:
    """Task ``i``: the 10-class problem with images rotated by ``10 * i`` degrees; scalar standardisation."""
    mean, std = _scalar_stats(data.x_train)
    train = _subsample(torch.arange(len(data.y_train)), max_train, _generator(seed, _SUBSAMPLE_STREAM))
    shape = data.image_shape
    images_train = data.x_train[train].reshape(-1, *shape)
    images_test = data.x_test.reshape(-1, *shape)
    tasks = []
    for i in range(n):
        degrees = ROTATION_STEP * i
        tasks.append(
            Task(
                name=f"rotation {degrees}°",
                x_train=(rotate(images_train, degrees).flatten(1) - mean) / std,
                y_train=data.y_train[train].clone(),
                x_test=(rotate(images_test, degrees).flatten(1) - mean) / std,
                y_test=data.y_test.clone(),
                classes=tuple(range(10)),
            )
        )
    return tasks


def rotate(images: Tensor, degrees: float) -> Tensor:
    """Rotate float ``images`` ``(N, H, W)`` counter-clockwise by ``degrees``: ``(N, H, W)``.

    One bilinear ``grid_sample`` for the whole batch (one sampling grid, expanded over the
    images without a copy); pixels that rotate in from outside are 0. Square images; multiples
    of 90 degrees use exact cosines and sines; multiples of 360 return a copy.
    """
    if degrees % 360 == 0:
        return images.clone()
    cos, sin = _cos_sin(degrees)
    # affine_grid maps output to input coordinates (x right, y down, normalised to [-1, 1]);
    # sampling at R(-angle) with y pointing down turns the content counter-clockwise on screen.
    theta = torch.tensor([[[cos, -sin, 0.0], [sin, cos, 0.0]]], dtype=images.dtype)
    n, h, w = images.shape
    grid = F.affine_grid(theta, [1, 1, h, w], align_corners=False).expand(n, h, w, 2)
    out = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0]


def _cos_sin(degrees: float) -> tuple[float, float]:
    """Cosine and sine of ``degrees``, exact for multiples of 90 (``math.cos(pi / 2)`` is 6e-17)."""
    if degrees % 90 == 0:
        return {0: (1.0, 0.0), 1: (0.0, 1.0), 2: (-1.0, 0.0), 3: (0.0, -1.0)}[int(degrees // 90) % 4]
    rad = math.radians(degrees)
    return math.cos(rad), math.sin(rad)
