"""Real-data loaders (CelebA, CIFAR-100) on tiny fixtures written in the real on-disk formats.

The fixtures mimic what torchvision 0.29 parses: CelebA's aligned JPEGs and five annotation
text files (space separated, header lines, ``-1``/``1`` attributes), CIFAR-100's python
pickles (``data`` uint8 (N, 3072), ``fine_labels``, ``coarse_labels``; ``meta`` names).
torchvision checks the MD5 sums of the real files, which fixtures cannot match, so the tests
monkeypatch the ``check_integrity`` symbol that ``torchvision.datasets.celeba`` and
``torchvision.datasets.cifar`` import to a check that the file merely exists. Everything else
(parsing, split selection, the "not found" errors) is torchvision's own code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.celeba as tv_celeba
import torchvision.datasets.cifar as tv_cifar
import torchvision.datasets.utils as tv_utils
from PIL import Image

from neuromod_lib.data import load_celeba, load_cifar100_hierarchy

CELEBA_NAMES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
# Image i+1 is in train (0), valid (1) or test (2); every split holds >= 2 images, as in the real
# data (torchvision 0.29 cannot select a split of exactly one image: it squeezes the index to 0-d).
PARTITION = [0, 0, 1, 0, 2, 1, 2]
ATTR = torch.tensor([[(i * 7 + a * 3) % 5 < 2 for a in range(40)] for i in range(len(PARTITION))]).long()
COLOURS = [
    (200, 30, 30),
    (30, 200, 30),
    (30, 30, 200),
    (220, 220, 40),
    (40, 200, 220),
    (120, 120, 120),
    (90, 20, 150),
]


@pytest.fixture(autouse=True)
def md5_free(monkeypatch):
    """Fixtures cannot match the real MD5 sums: accept any file that exists (see the module docstring)."""

    def exists(fpath, md5=None):
        return os.path.isfile(fpath)

    monkeypatch.setattr(tv_celeba, "check_integrity", exists)
    monkeypatch.setattr(tv_cifar, "check_integrity", exists)


# --------------------------------------------------------------------------- CelebA


def write_celeba(root: Path) -> Path:
    """A 7-image CelebA in torchvision's layout: ``root/celeba/img_align_celeba/*.jpg`` + annotations."""
    base = root / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    files = [f"{i + 1:06d}.jpg" for i in range(len(PARTITION))]
    for name, colour in zip(files, COLOURS, strict=True):
        img = np.zeros((218, 178, 3), dtype=np.uint8)
        img[:, :] = colour
        img[:20], img[-20:] = 255, 255  # cropped away by the centre 178x178 crop
        Image.fromarray(img).save(base / "img_align_celeba" / name, quality=95)
    n = len(files)
    values = [" ".join(f"{2 * v - 1:2d}" for v in attr.tolist()) for attr in ATTR]  # e.g. "-1  1  1 -1"
    rows = "".join(f"{name} {v}\n" for name, v in zip(files, values, strict=True))
    header = " ".join(CELEBA_NAMES) + " "  # the real header line ends with a space
    (base / "list_attr_celeba.txt").write_text(f"{n}\n{header}\n{rows}")
    (base / "list_eval_partition.txt").write_text(
        "".join(f"{f} {p}\n" for f, p in zip(files, PARTITION, strict=True))
    )
    (base / "identity_CelebA.txt").write_text("".join(f"{f} {100 + i}\n" for i, f in enumerate(files)))
    bbox = "".join(f"{f}    95  71 226 313\n" for f in files)
    (base / "list_bbox_celeba.txt").write_text(f"{n}\nimage_id x_1 y_1 width height\n{bbox}")
    marks = "".join(f"{f} 69  109  106  113   77  142   73  152  108  154\n" for f in files)
    header = " ".join(
        f"{part}_{xy}" for part in ("lefteye", "righteye", "nose", "leftmouth", "rightmouth") for xy in "xy"
    )
    (base / "list_landmarks_align_celeba.txt").write_text(f"{n}\n{header}\n{marks}")
    return root


@pytest.fixture
def celeba_root(tmp_path) -> Path:
    return write_celeba(tmp_path / "data")


@pytest.mark.parametrize("split, code", [("train", 0), ("valid", 1), ("test", 2), ("all", None)])
def test_celeba_split_shapes_labels_and_pixels(celeba_root, no_download, split, code):
    rows = [i for i, p in enumerate(PARTITION) if code is None or p == code]
    data = load_celeba(celeba_root, split, size=32)
    assert data.images.shape == (len(rows), 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.float32 and torch.equal(data.labels, ATTR[rows].float())
    assert data.names == CELEBA_NAMES and data.source == "celeba"
    for img, i in zip(
        data.images, rows, strict=True
    ):  # uniform colour after the crop: no white border leaks in
        assert (img.int() - torch.tensor(COLOURS[i]).view(3, 1, 1)).abs().max() <= 12


def test_celeba_default_size_and_limit(celeba_root, no_download):
    data = load_celeba(celeba_root, "all", limit=2)
    assert data.images.shape == (2, 3, 64, 64) and torch.equal(data.labels, ATTR[:2].float())
    assert len(load_celeba(celeba_root, "test", limit=5)) == 2
    with pytest.raises(ValueError, match="limit="):
        load_celeba(celeba_root, limit=0)


def test_celeba_missing_root_names_path_and_command(tmp_path, no_download):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        load_celeba(missing)
    text = str(err.value)
    assert f"root={str(missing)!r}" in text
    assert f"datasets.CelebA({str(missing)!r}, split='all', download=True)" in text


def test_celeba_missing_files_name_the_command(tmp_path, no_download):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"datasets\.CelebA\(.*download=True\)"):
        load_celeba(tmp_path / "empty")
    root = write_celeba(tmp_path / "partial")
    (root / "celeba" / "identity_CelebA.txt").unlink()
    with pytest.raises(FileNotFoundError, match="does not hold the data set"):
        load_celeba(root)


def test_celeba_unknown_split(celeba_root):
    with pytest.raises(ValueError, match=r"split='val' unknown; allowed: train, valid, test, all"):
        load_celeba(celeba_root, "val")


def test_celeba_downloads_only_when_asked(tmp_path, monkeypatch):
    calls = []

    def fake_download(self):
        calls.append(self.root)
        write_celeba(Path(self.root))

    monkeypatch.setattr(tv_celeba.CelebA, "download", fake_download)
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError):
        load_celeba(tmp_path / "d")
    assert calls == []
    data = load_celeba(tmp_path / "new", "all", size=16, download=True)
    assert len(calls) == 1 and data.images.shape == (7, 3, 16, 16)


# --------------------------------------------------------------------------- CIFAR-100


def fine_to_coarse(fine: int) -> int:
    """The fixture's superclass map: a bijection-based map, five fine classes per superclass, not grouped."""
    return (7 * fine) % 20


def cifar_pickle(fine: list[int], seed: int) -> dict:
    data = np.random.default_rng(seed).integers(0, 256, size=(len(fine), 3072), dtype=np.uint8)
    return {
        "filenames": [f"img_{seed}_{i}.png" for i in range(len(fine))],
        "batch_label": f"fixture batch {seed}",
        "fine_labels": list(fine),
        "coarse_labels": [fine_to_coarse(f) for f in fine],
        "data": data,
    }


TRAIN_FINE = [3, 97, 15, 3, 42, 60, 8, 71, 23, 3]
TEST_FINE = [5, 99, 0, 64]


def write_cifar(root: Path) -> Path:
    """CIFAR-100 python pickles in torchvision's layout: ``root/cifar-100-python/{train,test,meta}``."""
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    meta = {
        "fine_label_names": [f"fine_{i}" for i in range(100)],
        "coarse_label_names": [f"coarse_{i}" for i in range(20)],
    }
    files = {"train": cifar_pickle(TRAIN_FINE, 1), "test": cifar_pickle(TEST_FINE, 2), "meta": meta}
    for name, obj in files.items():
        with open(base / name, "wb") as f:
            pickle.dump(obj, f)
    return root


@pytest.fixture
def cifar_root(tmp_path) -> Path:
    return write_cifar(tmp_path / "data")


@pytest.mark.parametrize("split, fine, seed", [("train", TRAIN_FINE, 1), ("test", TEST_FINE, 2)])
def test_cifar_split_shapes_labels_and_pixels(cifar_root, no_download, split, fine, seed):
    data = load_cifar100_hierarchy(cifar_root, split)
    expected = torch.from_numpy(cifar_pickle(fine, seed)["data"]).view(-1, 3, 32, 32)
    assert data.images.dtype == torch.uint8 and torch.equal(data.images, expected)
    assert data.fine.tolist() == fine and data.coarse.tolist() == [fine_to_coarse(f) for f in fine]
    assert data.fine_names[7] == "fine_7" and len(data.fine_names) == 100 and len(data.coarse_names) == 20
    assert data.source == "cifar100"
    members = {c: sorted(f for f in range(100) if fine_to_coarse(f) == c) for c in range(20)}
    first = fine_to_coarse(fine[0])
    assert data.members(first) == [f for f in members[first] if f in fine]  # only the classes in the split
    assert data.within_labels().tolist() == [
        [g for g in members[fine_to_coarse(f)] if g in fine].index(f) for f in fine
    ]


def test_cifar_limit_keeps_the_full_class_map(cifar_root, no_download):
    data = load_cifar100_hierarchy(cifar_root, "train", limit=3)
    assert len(data) == 3 and data.fine.tolist() == TRAIN_FINE[:3]
    assert int((data.fine_to_coarse >= 0).sum()) == len(set(TRAIN_FINE))  # map from the whole split
    images, within = data.task(fine_to_coarse(3))
    assert len(images) == 1 and within.tolist() == [0]  # fine 3 comes before fine 23 in superclass 1
    with pytest.raises(ValueError, match="limit="):
        load_cifar100_hierarchy(cifar_root, limit=-1)


def test_cifar_missing_root_and_files_name_the_command(tmp_path, no_download):
    command = r".*datasets\.CIFAR100\(.*, train=True, download=True\)"
    with pytest.raises(FileNotFoundError, match="(?s)root=" + command):
        load_cifar100_hierarchy(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=command):
        load_cifar100_hierarchy(tmp_path / "empty")
    root = write_cifar(tmp_path / "nometa")
    (root / "cifar-100-python" / "meta").unlink()
    with pytest.raises(FileNotFoundError, match=command):
        load_cifar100_hierarchy(root)


def test_cifar_unknown_split(cifar_root):
    with pytest.raises(ValueError, match=r"split='valid' unknown; allowed: train, test"):
        load_cifar100_hierarchy(cifar_root, "valid")


def test_cifar_downloads_only_when_asked(tmp_path, monkeypatch):
    calls = []

    def fake_download(self):
        calls.append(self.root)
        if not (Path(self.root) / "cifar-100-python").exists():
            write_cifar(Path(self.root))

    monkeypatch.setattr(tv_cifar.CIFAR100, "download", fake_download)
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError):
        load_cifar100_hierarchy(tmp_path / "d")
    assert calls == []
    data = load_cifar100_hierarchy(tmp_path / "new", "test", download=True)
    assert len(calls) == 1 and data.fine.tolist() == TEST_FINE


# --------------------------------------------------------------------------- CIFAR-100 checksums


class RunsCode:
    """Unpickling this creates the folder ``marker``: the proof that a pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def published_md5(monkeypatch, root: Path) -> None:
    """Make the fixture files' own MD5 sums the published ones, and check them for real."""
    folder = root / "cifar-100-python"
    sums = {name: tv_utils.calculate_md5(folder / name) for name in ("train", "test", "meta")}
    monkeypatch.setattr(tv_cifar, "check_integrity", tv_utils.check_integrity)
    monkeypatch.setattr(tv_cifar.CIFAR100, "train_list", [["train", sums["train"]]])
    monkeypatch.setattr(tv_cifar.CIFAR100, "test_list", [["test", sums["test"]]])
    monkeypatch.setattr(tv_cifar.CIFAR100, "meta", {**tv_cifar.CIFAR100.meta, "md5": sums["meta"]})


def test_cifar_with_published_sums_loads_when_verified(cifar_root, no_download, monkeypatch):
    published_md5(monkeypatch, cifar_root)
    assert load_cifar100_hierarchy(cifar_root, "test", verify=True).fine.tolist() == TEST_FINE


@pytest.mark.parametrize("name", ["train", "test", "meta"])
def test_cifar_with_a_wrong_sum_is_refused_before_anything_is_unpickled(
    cifar_root, no_download, monkeypatch, tmp_path, name
):
    published_md5(monkeypatch, cifar_root)
    marker = tmp_path / "code_ran"
    file = cifar_root / "cifar-100-python" / name
    with open(file, "wb") as f:  # a file swapped for one that runs code when unpickled
        pickle.dump(RunsCode(marker), f)
    for split in ("train", "test"):
        with pytest.raises(FileNotFoundError) as err:
            load_cifar100_hierarchy(cifar_root, split, verify=True)
        text = str(err.value)
        assert f"{str(file)!r} not found or corrupted: its MD5 sum is {tv_utils.calculate_md5(file)}" in text
        assert f"root={str(cifar_root)!r}" in text and "datasets.CIFAR100(" in text  # folder and command
        assert not marker.exists(), "a pickle was loaded before its checksum was checked"
    if name != "meta":  # verify=False unpickles unchecked, as documented: only for trusted files
        with pytest.raises(TypeError):  # the stand-in unpickles to None, not a dict
            load_cifar100_hierarchy(cifar_root, name, verify=False)
        assert marker.exists()
