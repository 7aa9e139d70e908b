"""Real data through torchvision, in the containers of :mod:`neuromod_lib.data.attributes`.

:func:`load_celeba` gives an :class:`AttributeSet` with the 40 CelebA attributes (the data of
Boeshertz, Haimerl & Savin 2023) and :func:`load_cifar100_hierarchy` a :class:`HierarchySet`
with the 100 fine classes and 20 superclasses of CIFAR-100 (their architecture study), so a
notebook can swap the generated stand-ins for real data by changing one call.

Nothing is downloaded unless ``download=True``; a missing data set is a ``FileNotFoundError``
that names the path and the command that fetches it, raised before any expensive work.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision import datasets
from torchvision.datasets import celeba as tv_celeba
from torchvision.datasets import cifar as tv_cifar
from torchvision.datasets.utils import calculate_md5

from .attributes import AttributeSet, HierarchySet

__all__ = [
    "CELEBA_SPLITS",
    "CIFAR100_SPLITS",
    "celeba_download_command",
    "cifar100_download_command",
    "load_celeba",
    "load_cifar100_hierarchy",
]

CELEBA_SPLITS: tuple[str, ...] = ("train", "valid", "test", "all")
CIFAR100_SPLITS: tuple[str, ...] = ("train", "test")
_CELEBA_CROP = 178  # aligned CelebA images are 178x218; the usual recipe centre-crops a 178x178 square
_BATCH = 256  # images resized at once


def celeba_download_command(root: str | os.PathLike) -> str:
    """The shell command that downloads CelebA into ``root`` (needs ``gdown``; Google Drive may refuse)."""
    call = f"datasets.CelebA({str(root)!r}, split='all', download=True)"
    return f'python -c "from torchvision import datasets; {call}"'


def cifar100_download_command(root: str | os.PathLike) -> str:
    """The shell command that downloads CIFAR-100 (one archive: train and test) into ``root``."""
    call = f"datasets.CIFAR100({str(root)!r}, train=True, download=True)"
    return f'python -c "from torchvision import datasets; {call}"'


def _check_args(
    root: str | os.PathLike, split: str, allowed: tuple[str, ...], hint: str, download: bool
) -> Path:
    """Validate ``split`` and ``root`` (which must exist unless downloading) before any work."""
    if split not in allowed:
        raise ValueError(f"split={split!r} unknown; allowed: {', '.join(allowed)}")
    path = Path(root)
    if not download and not path.is_dir():
        raise FileNotFoundError(f"root={str(path)!r} does not exist; download the data with:\n  {hint}")
    return path


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit={limit!r} must be None or an integer >= 1")


class _Corrupted(RuntimeError):
    """A data file is missing or its MD5 sum is not the published one (found by :func:`_check_md5`)."""


def _check_md5(folder: Path, files: list[tuple[str, str]]) -> None:
    """Raise :class:`_Corrupted` naming the first of ``files`` (``(name, md5)`` in ``folder``) that
    is missing or has another MD5 sum. Only reads bytes: nothing is unpickled or decoded.

    Uses torchvision's ``check_integrity`` (the one torchvision itself uses), so a test that
    stands in for it covers this check too.
    """
    for name, md5 in files:
        file = folder / name
        if not tv_cifar.check_integrity(str(file), md5):
            found = f"its MD5 sum is {calculate_md5(file)}, not {md5}" if file.is_file() else "it is missing"
            raise _Corrupted(f"{str(file)!r} not found or corrupted: {found}")


def _open(make, root: Path, hint: str, verify: bool = True, module=None, check=None):
    """Build a torchvision data set; its 'not found or corrupted' error becomes a FileNotFoundError.

    ``verify=False`` replaces torchvision's MD5 check by an existence check (for trusted local
    copies whose files differ from the published archives, e.g. re-encoded or test fixtures).
    ``check`` (called first when ``verify``) may raise :class:`_Corrupted` before ``make`` runs.
    """
    try:
        if verify:
            if check is not None:
                check()
            return make()
        with mock.patch.object(module, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath)):
            return make()
    except RuntimeError as err:
        if "not found or corrupted" not in str(err):
            raise
        what = f": {err}" if isinstance(err, _Corrupted) else " (or a file is incomplete)"
        raise FileNotFoundError(
            f"root={str(root)!r} does not hold the data set{what}; download it with:\n  {hint}"
        ) from err


def load_celeba(
    root: str | os.PathLike,
    split: str = "train",
    *,
    size: int = 64,
    download: bool = False,
    limit: int | None = None,
    verify: bool = True,
) -> AttributeSet:
    """CelebA ``split`` as ``size`` x ``size`` uint8 images with the 40 binary attributes.

    Each aligned image is centre-cropped to 178x178 and resized (bilinear, antialiased) in
    batches; labels are 0/1 floats, ``names`` the dataset's attribute names. ``limit`` keeps
    the first ``limit`` images of the split (quick tests and profiles).
    """
    hint = celeba_download_command(root)
    path = _check_args(root, split, CELEBA_SPLITS, hint, download)
    _check_limit(limit)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size={size!r} must be a positive integer")
    ds = _open(
        lambda: datasets.CelebA(str(path), split=split, target_type="attr", download=download),
        path,
        hint,
        verify,
        tv_celeba,
    )
    count = len(ds) if limit is None else min(limit, len(ds))
    folder = Path(ds.root) / ds.base_folder / "img_align_celeba"
    images = torch.empty(count, 3, size, size, dtype=torch.uint8)
    for start in range(0, count, _BATCH):
        names = ds.filename[start : min(start + _BATCH, count)]
        images[start : start + len(names)] = _crop_resize([folder / name for name in names], size)
    names = tuple(name for name in ds.attr_names if name)  # the real header line ends with a space
    labels = ds.attr[:count].float()
    return AttributeSet(images=images, labels=labels, names=names, source="celeba")


def _crop_resize(files: list[Path], size: int) -> Tensor:
    """Decode images, centre-crop a square of side min(178, H, W), resize all to ``size`` at once."""
    crops = []
    for file in files:
        with Image.open(file) as pil:  # PIL, as torchvision's CelebA (torchvision.io decoding is deprecated)
            img = torch.from_numpy(np.array(pil.convert("RGB"))).permute(2, 0, 1)
        side = min(_CELEBA_CROP, img.shape[1], img.shape[2])
        top, left = (img.shape[1] - side) // 2, (img.shape[2] - side) // 2
        crop = img[:, top : top + side, left : left + side]
        if side != _CELEBA_CROP:  # odd image sizes: bring to the common crop size first
            crop = _resize(crop[None], _CELEBA_CROP)[0]
        crops.append(crop)
    return _resize(torch.stack(crops), size)


def _resize(images: Tensor, size: int) -> Tensor:
    """Bilinear, antialiased resize of uint8 (N, 3, H, W) images (as ``transforms.Resize`` does)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(
        images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


def load_cifar100_hierarchy(
    root: str | os.PathLike,
    split: str = "train",
    *,
    download: bool = False,
    limit: int | None = None,
    verify: bool = True,
) -> HierarchySet:
    """CIFAR-100 ``split`` as 32x32 uint8 images with fine (0..99) and coarse (0..19) labels.

    Images and fine labels come from ``torchvision.datasets.CIFAR100``; the superclass labels
    and all names from the same python pickles (``coarse_labels``; ``meta``). The fine-to-coarse
    map is taken from the whole split, so it is complete even with ``limit``.

    The files are Python pickles, and unpickling a file can run any code it holds. With
    ``verify=True`` (the default) the MD5 sums of ``train``, ``test`` and ``meta`` are checked
    against the published ones *before anything is unpickled*; a missing file or another sum is a
    ``FileNotFoundError`` naming the file, the folder and the download command. With
    ``download=True`` torchvision checks the archive's MD5 sum before extracting it, and (0.29)
    the files' before loading them. ``verify=False`` (a notebook's ``verify_data=False``) unpickles
    the files unchecked: use it only with files you trust (your own re-encoded copy, test fixtures).
    """
    hint = cifar100_download_command(root)
    path = _check_args(root, split, CIFAR100_SPLITS, hint, download)
    _check_limit(limit)
    cifar = tv_cifar.CIFAR100
    files = [*cifar.train_list, *cifar.test_list, (cifar.meta["filename"], cifar.meta["md5"])]
    ds = _open(
        lambda: datasets.CIFAR100(str(path), train=split == "train", download=download),
        path,
        hint,
        verify,
        tv_cifar,
        check=None if download else lambda: _check_md5(path / cifar.base_folder, files),
    )
    folder = Path(ds.root) / ds.base_folder
    coarse_all = torch.as_tensor(_unpickle(folder / split)["coarse_labels"], dtype=torch.long)
    meta = _unpickle(folder / "meta")
    fine_all = torch.as_tensor(ds.targets, dtype=torch.long)
    fine_to_coarse = torch.full((len(meta["fine_label_names"]),), -1, dtype=torch.long)
    fine_to_coarse[fine_all] = coarse_all

    count = len(ds) if limit is None else min(limit, len(ds))
    images = torch.from_numpy(np.ascontiguousarray(ds.data[:count])).permute(0, 3, 1, 2).contiguous()
    return HierarchySet(
        images=images,
        fine=fine_all[:count].clone(),
        coarse=coarse_all[:count].clone(),
        fine_names=tuple(meta["fine_label_names"]),
        coarse_names=tuple(meta["coarse_label_names"]),
        source="cifar100",
        fine_to_coarse=fine_to_coarse,
    )


def _unpickle(path: Path) -> dict:
    """A CIFAR python pickle (written by Python 2: strings decoded as latin-1)."""
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")
