"""Continual-learning task sequences (:mod:`neuromod_lib.data.sequences`).

What could go wrong and is checked here: wrong shapes, dtypes, devices or label ranges; split
tasks with the wrong digit pairs or labels that are not remapped to 0/1; "permutations" that
lose or duplicate pixels, a first task that is not the untransformed problem, tasks that repeat,
sequences that are not reproducible from ``seed``; rotations in the wrong direction, by the
wrong angle or with a different interpolation than torchvision's ``rotate``; standardisation
that does not centre and scale the training data (or blows up near-constant pixels);
``max_train`` that subsamples differently per task or changes the test set; arguments that are
accepted although they cannot work; real MNIST read from the wrong files, in the wrong order,
or downloaded; MNIST-1D fetched over the network instead of generated.

The untransformed data are recovered independently: the rotated task 0 is the raw data up to
one scalar affine map (raw digits are integers 0..16), so its rows must be rows of
``load_digits``; the MNIST fixtures are tiny IDX files written here in the real format.
"""

from __future__ import annotations

import socket
import struct
import urllib.request

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torchvision import datasets
from torchvision.transforms.v2 import functional as TF

from neuromod_lib.data import sequences
from neuromod_lib.data.sequences import BENCHMARKS, Task, TaskSequence, make_sequence, mnist_download_command

pytestmark = pytest.mark.usefixtures("one_thread")

EMBEDDED = ("split_digits", "permuted_digits", "rotated_digits", "split_mnist1d", "permuted_mnist1d")
SHAPES = {"digits": (64, (8, 8)), "mnist1d": (40, None), "mnist": (784, (28, 28))}
N_DIGITS = 1797


@pytest.fixture
def offline(monkeypatch, no_download):
    """Any network access or torchvision MNIST download fails the test.

    Attempts are also recorded and checked afterwards: ``mnist1d.get_dataset`` swallows every
    exception of its download (bare ``except``) and would hide the raised error.
    """
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("network access was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(datasets.MNIST, "download", lambda self: refuse())
    yield
    assert not attempts, "network access was attempted"


def raw_digits_of(x_rot0: torch.Tensor) -> torch.Tensor:
    """Undo the scalar standardisation of rotated task 0 (raw digits span exactly 0..16)."""
    scale = 16.0 / (x_rot0.max() - x_rot0.min())
    return ((x_rot0 - x_rot0.min()) * scale).double()


def column_match(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(D, D)`` bool: column j of ``a`` equals column k of ``b`` (``a``, ``b``: ``(n, D)``)."""
    return (a[:, :, None] == b[:, None, :]).all(0)


# --------------------------------------------------------------------------- shapes and labels


@pytest.mark.parametrize("benchmark", EMBEDDED)
def test_shapes_dtypes_and_labels(benchmark, offline):
    seq = make_sequence(benchmark, seed=3)
    family, source = benchmark.split("_")
    n_inputs, image_shape = SHAPES[source]
    assert isinstance(seq, TaskSequence) and seq.benchmark == benchmark
    assert len(seq) == 5 and all(isinstance(task, Task) for task in seq)
    assert (seq.n_inputs, seq.image_shape) == (n_inputs, image_shape)
    assert seq.n_classes == (2 if family == "split" else 10)
    for i, task in enumerate(seq):
        assert task is seq[i]
        for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
            assert x.dtype == torch.float32 and y.dtype == torch.long
            assert x.device.type == "cpu" and y.device.type == "cpu"
            assert x.ndim == 2 and x.shape[1] == n_inputs and y.shape == (x.shape[0],) and len(y) > 0
            assert torch.isfinite(x).all()
            assert set(y.unique().tolist()) == set(range(seq.n_classes))  # every class present
        expected = (2 * i, 2 * i + 1) if family == "split" else tuple(range(10))
        assert task.classes == expected
    names = [task.name for task in seq]
    assert len(set(names)) == 5
    assert names[1] == {"split": "digits 2/3", "permuted": "permutation 1", "rotated": "rotation 10°"}[family]


def test_digits_split_is_stratified_and_complete():
    seq = make_sequence("permuted_digits", 1, seed=5, test_fraction=0.25)
    task = seq[0]
    assert len(task.y_train) + len(task.y_test) == N_DIGITS
    assert abs(len(task.y_test) - 0.25 * N_DIGITS) <= 1
    counts = torch.bincount(torch.from_numpy(load_digits().target), minlength=10).double()
    test_counts = torch.bincount(task.y_test, minlength=10).double()
    assert torch.allclose(
        test_counts / counts, torch.full((10,), 0.25, dtype=torch.float64), atol=0.02
    )  # stratified
    other = make_sequence("permuted_digits", 1, seed=6, test_fraction=0.25)[0]
    assert not torch.equal(task.x_test, other.x_test)  # another seed, another split


def test_rotation_zero_is_the_raw_data():
    """Rotated task 0, unstandardised, holds exactly rows of ``load_digits`` (train and test disjoint)."""
    task = make_sequence("rotated_digits", 1, seed=2)[0]
    x = torch.cat([task.x_train, task.x_test])
    raw = raw_digits_of(x)
    assert torch.allclose(raw, raw.round(), atol=1e-3)  # integers 0..16: the scalar map was undone
    bunch = load_digits()
    digits = {
        tuple(row): label
        for row, label in zip(bunch.data.astype(int).tolist(), bunch.target.tolist(), strict=True)
    }
    rows = [tuple(row) for row in raw.round().long().tolist()]
    labels = torch.cat([task.y_train, task.y_test]).tolist()
    assert len(set(rows)) >= N_DIGITS - 5  # (load_digits has a few duplicate images)
    assert all(row in digits and digits[row] == label for row, label in zip(rows, labels, strict=True))


# --------------------------------------------------------------------------- split


@pytest.mark.parametrize("source", ["digits", "mnist1d"])
def test_split_tasks_are_digit_pairs_with_binary_labels(source, offline):
    seq = make_sequence(f"split_{source}", seed=1)
    full = make_sequence(f"permuted_{source}", 1, seed=1)[0]  # identity task: same data and features
    for i, task in enumerate(seq):
        for x, y, x_all, y_all in (
            (task.x_train, task.y_train, full.x_train, full.y_train),
            (task.x_test, task.y_test, full.x_test, full.y_test),
        ):
            keep = (y_all == 2 * i) | (y_all == 2 * i + 1)
            assert torch.equal(x, x_all[keep])
            assert torch.equal(y, (y_all[keep] == 2 * i + 1).long())
            assert set(y.tolist()) == {0, 1}


def test_split_allows_fewer_tasks():
    seq = make_sequence("split_digits", 2)
    assert [task.classes for task in seq] == [(0, 1), (2, 3)]


# --------------------------------------------------------------------------- permuted


def test_permutations_are_permutations_and_task0_is_identity():
    seq = make_sequence("permuted_digits", 6, seed=4)
    rot0 = make_sequence("rotated_digits", 1, seed=4)[0]
    raw = raw_digits_of(rot0.x_train)
    base = seq[0].x_train.double()
    varying = raw.std(0) > 0
    # task 0 = identity: every pixel is an increasing affine function of the same raw pixel
    zr = (raw[:, varying] - raw[:, varying].mean(0)) / raw[:, varying].std(0)
    zb = (base[:, varying] - base[:, varying].mean(0)) / base[:, varying].std(0)
    assert torch.allclose(zr, zb, atol=1e-4)
    assert (base[:, ~varying] == base[0, ~varying]).all()
    assert torch.equal(seq[0].y_train, rot0.y_train) and torch.equal(seq[0].y_test, rot0.y_test)
    for task in seq:
        for x, x0 in ((task.x_train, seq[0].x_train), (task.x_test, seq[0].x_test)):
            assert torch.equal(x.sort(1).values, x0.sort(1).values)  # same pixels, rearranged
        assert torch.equal(task.y_train, seq[0].y_train) and torch.equal(task.y_test, seq[0].y_test)
    for i in range(1, len(seq)):
        for j in range(i):
            assert not torch.equal(seq[i].x_train, seq[j].x_train)


def recovered_permutation(task: Task, first: Task) -> torch.Tensor:
    """The permutation ``p`` with ``task.x[:, j] == first.x[:, p[j]]`` (MNIST-1D columns are distinct)."""
    match = column_match(task.x_train, first.x_train)
    assert (match.sum(1) == 1).all() and (match.sum(0) == 1).all()
    return match.float().argmax(1)


def test_permutations_are_reproducible_and_seeded(offline):
    a = make_sequence("permuted_mnist1d", 4, seed=0)
    b = make_sequence("permuted_mnist1d", 4, seed=0)
    c = make_sequence("permuted_mnist1d", 4, seed=1)
    prefix = make_sequence("permuted_mnist1d", 2, seed=0)
    for ta, tb in zip(a, b, strict=True):
        assert torch.equal(ta.x_train, tb.x_train) and torch.equal(ta.x_test, tb.x_test)
    for ta, tp in zip(a[:2], prefix, strict=True):
        assert torch.equal(ta.x_train, tp.x_train)
    assert torch.equal(a[0].x_train, c[0].x_train)  # identity whatever the seed (MNIST-1D is fixed)
    perms_a = [recovered_permutation(task, a[0]) for task in a]
    perms_c = [recovered_permutation(task, c[0]) for task in c]
    assert torch.equal(perms_a[0], torch.arange(40))
    for i in range(1, 4):
        assert not torch.equal(perms_a[i], torch.arange(40))
        assert not torch.equal(perms_a[i], perms_c[i])
        assert torch.equal(a[i].x_test, a[0].x_test[:, perms_a[i]])  # one permutation for train and test


# --------------------------------------------------------------------------- rotated


def test_rotation_by_90_degrees_is_rot90():
    seq = make_sequence("rotated_digits", 10, seed=0)
    assert seq[9].name == "rotation 90°"
    for x, x0 in ((seq[9].x_train, seq[0].x_train), (seq[9].x_test, seq[0].x_test)):
        expected = torch.rot90(x0.view(-1, 8, 8), 1, dims=(-2, -1)).flatten(1)  # counter-clockwise
        assert torch.allclose(x, expected, atol=1e-5)
    assert torch.equal(seq[9].y_train, seq[0].y_train)


def test_rotations_match_torchvision_rotate():
    """Every angle (raw images, bilinear, zero fill) is what torchvision's ``rotate`` gives."""
    seq = make_sequence("rotated_digits", 36, seed=0)
    assert [task.name for task in seq][-1] == "rotation 350°"
    bg = seq[0].x_train.min()  # a raw 0 after standardisation: the fill value
    scale = 16.0 / (seq[0].x_train.max() - bg)
    raw0 = ((seq[0].x_train - bg) * scale).view(-1, 8, 8)
    for i in (1, 4, 13, 35):
        expected = TF.rotate(raw0, 10.0 * i, interpolation=TF.InterpolationMode.BILINEAR)
        assert torch.allclose((seq[i].x_train.view(-1, 8, 8) - bg) * scale, expected, atol=1e-3)
        assert not torch.allclose(seq[i].x_train, seq[0].x_train, atol=0.1)


# --------------------------------------------------------------------------- standardisation


def test_standardisation():
    perm = make_sequence("permuted_digits", 2, seed=0)
    raw = load_digits().data
    for task in perm:
        x = task.x_train.double()
        assert torch.allclose(x.mean(0), torch.zeros(64, dtype=torch.float64), atol=1e-4)
        std = x.std(0)
        assert (std <= 1 + 1e-4).all()
        assert (std > 1 - 1e-4).sum() >= 40  # most pixels are plainly standardised
        assert x.abs().max() < 2 * 16 / raw.std()  # near-constant pixels are not blown up
    rot = make_sequence("rotated_digits", 2, seed=0)
    x0 = rot[0].x_train.double()
    assert abs(x0.mean()) < 1e-4 and abs(x0.std() - 1) < 1e-3  # one scalar map
    assert x0.mean(0).abs().max() > 0.5  # ... not per pixel
    split = make_sequence("split_mnist1d", 5)
    x = torch.cat([task.x_train for task in split]).double()
    assert torch.allclose(x.mean(0), torch.zeros(40, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(x.std(0), torch.ones(40, dtype=torch.float64), atol=1e-3)


# --------------------------------------------------------------------------- max_train


def test_max_train_subsamples_the_same_examples_for_every_task():
    full = make_sequence("permuted_digits", 3, seed=7)
    small = make_sequence("permuted_digits", 3, seed=7, max_train=100)
    again = make_sequence("permuted_digits", 3, seed=7, max_train=100)
    for tf, ts, ta in zip(full, small, again, strict=True):
        assert ts.x_train.shape == (100, 64) and ts.y_train.shape == (100,)
        assert torch.equal(ts.x_test, tf.x_test) and torch.equal(ts.y_test, tf.y_test)
        assert torch.equal(ts.x_train, ta.x_train)
        rows = column_match(ts.x_train.T, tf.x_train.T)  # (100, n) rows of the full task, same stats
        assert (rows.sum(1) >= 1).all()
        kept = rows.float().argmax(1)
        assert torch.equal(ts.y_train, tf.y_train[kept])
    kept0 = column_match(small[0].x_train.T, full[0].x_train.T).float().argmax(1)
    kept2 = column_match(small[2].x_train.T, full[2].x_train.T).float().argmax(1)
    assert torch.equal(kept0, kept2)
    other = make_sequence("permuted_digits", 1, seed=8, max_train=100)[0]
    assert not torch.equal(other.x_train, small[0].x_train)


def test_max_train_per_split_task_and_above_size():
    seq = make_sequence("split_digits", seed=0, max_train=50)
    assert all(task.x_train.shape == (50, 64) for task in seq)
    big = make_sequence("split_digits", seed=0, max_train=10_000)
    full = make_sequence("split_digits", seed=0)
    assert all(torch.equal(b.x_train, f.x_train) for b, f in zip(big, full, strict=True))


# --------------------------------------------------------------------------- errors


def test_argument_errors():
    with pytest.raises(ValueError, match=r"benchmark='foo' is unknown; choose from split_digits, permuted"):
        make_sequence("foo")
    assert "rotated_mnist1d" not in BENCHMARKS
    with pytest.raises(ValueError, match="n_tasks=0"):
        make_sequence("permuted_digits", 0)
    with pytest.raises(ValueError, match=r"n_tasks=6.*maximum is 5"):
        make_sequence("split_digits", 6)
    with pytest.raises(ValueError, match=r"n_tasks=6.*maximum is 5"):
        make_sequence("split_mnist1d", 6)
    assert len(make_sequence("permuted_digits", 6)) == 6
    for kwargs in ({"seed": -1}, {"test_fraction": 0.0}, {"test_fraction": 1.0}, {"max_train": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            make_sequence("split_digits", **kwargs)
    with pytest.raises(ValueError, match="root"):
        make_sequence("rotated_mnist")


@pytest.mark.parametrize("partial", [False, True])
def test_missing_mnist_names_folder_and_download_command(tmp_path, offline, partial):
    if partial:  # the training files alone are not enough
        write_idx_mnist(tmp_path, np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8), test=False)
    command = f"python -c \"from torchvision import datasets; datasets.MNIST('{tmp_path}', download=True)\""
    assert mnist_download_command(tmp_path) == command
    with pytest.raises(FileNotFoundError) as info:
        make_sequence("split_mnist", root=tmp_path)
    assert command in str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)


# --------------------------------------------------------------------------- real MNIST (IDX fixtures)


def write_idx_mnist(root, images: np.ndarray, labels: np.ndarray, *, test: bool) -> None:
    """Write uint8 ``images`` (N, 28, 28) and ``labels`` (N,) as torchvision's raw IDX files."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    prefix = "t10k" if test else "train"
    header = struct.pack(">IIII", 0x00000803, len(images), 28, 28)
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.astype(np.uint8).tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()
    )


@pytest.fixture
def mnist_root(tmp_path):
    """20 train / 10 test random 28x28 images with labels 0..9 (train: 2 of each, in a shuffled order)."""
    rng = np.random.default_rng(0)
    data = {}
    for test, n in ((False, 20), (True, 10)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * rng.random((n, 1, 1)) * 255).astype(np.uint8)
        images[:, :3] = 0  # a blank top border, as in MNIST
        write_idx_mnist(tmp_path, images, labels, test=test)
        data[test] = (torch.from_numpy(images), torch.from_numpy(labels).long())
    return tmp_path, data


def test_split_mnist_reads_the_idx_files(mnist_root, offline):
    root, data = mnist_root
    seq = make_sequence("split_mnist", root=root)
    identity = make_sequence("permuted_mnist", 1, root=str(root))[0]
    assert (seq.n_inputs, seq.n_classes, seq.image_shape, len(seq)) == (784, 2, (28, 28), 5)
    assert torch.equal(identity.y_train, data[False][1]) and torch.equal(identity.y_test, data[True][1])
    for i, task in enumerate(seq):
        assert task.classes == (2 * i, 2 * i + 1)
        for x, y, (_, labels), x_all in (
            (task.x_train, task.y_train, data[False], identity.x_train),
            (task.x_test, task.y_test, data[True], identity.x_test),
        ):
            keep = (labels == 2 * i) | (labels == 2 * i + 1)
            assert torch.equal(y, (labels[keep] == 2 * i + 1).long())
            assert torch.equal(x, x_all[keep])
        assert task.x_train.shape == (4, 784) and task.x_test.shape == (2, 784)


def test_rotated_mnist_reads_the_idx_files(mnist_root, offline):
    root, data = mnist_root
    seq = make_sequence("rotated_mnist", 10, root=root)
    images, labels = data[False]
    raw = images.float()
    expected = ((raw - raw.mean()) / raw.std()).flatten(1)  # scalar statistics of the training images
    assert torch.allclose(seq[0].x_train, expected, atol=1e-5)
    test_images, test_labels = data[True]
    assert torch.allclose(
        seq[0].x_test, ((test_images.float() - raw.mean()) / raw.std()).flatten(1), atol=1e-5
    )
    for task in seq:
        assert torch.equal(task.y_train, labels) and torch.equal(task.y_test, test_labels)
    rot90 = torch.rot90(seq[0].x_train.view(-1, 28, 28), 1, dims=(-2, -1)).flatten(1)
    assert torch.allclose(seq[9].x_train, rot90, atol=1e-4)


# --------------------------------------------------------------------------- MNIST-1D


def test_mnist1d_is_generated_locally(offline):
    sequences._mnist1d_arrays.cache_clear()  # generate now, under the network guard
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    seq = make_sequence("permuted_mnist1d", 2)
    assert np.array_equal(np.random.get_state()[1], before)  # the global NumPy generator is untouched
    task = seq[0]
    assert task.x_train.shape == (4000, 40) and task.x_test.shape == (1000, 40)
    assert torch.equal(torch.bincount(task.y_train, minlength=10) + torch.bincount(task.y_test, minlength=10),
                       torch.full((10,), 500))  # fmt: skip
