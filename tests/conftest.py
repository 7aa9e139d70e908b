"""Fixtures shared by the test modules (the environment is set by the top-level conftest.py)."""

import pytest
import torch
from torchvision.datasets import celeba as tv_celeba
from torchvision.datasets import cifar as tv_cifar


@pytest.fixture
def no_download(monkeypatch):
    """Any download attempt fails the test."""

    def refuse(self):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(tv_celeba.CelebA, "download", refuse)
    monkeypatch.setattr(tv_cifar.CIFAR100, "download", refuse)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors run fastest on one thread (and a busy second core slows two threads a lot)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def stand_in_overview(tmp_path, monkeypatch):
    """``write(code)``: make a two-cell notebook (a parameters cell, then ``code``) stand in for
    ``00_overview`` — the CLI then runs it instead of the real one."""
    import nbformat

    from neuromod_lib import notebooks

    folder = tmp_path / "notebooks"
    folder.mkdir()
    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", folder)

    def write(code: str) -> None:
        nb = nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_code_cell("profile = 'quick'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(code),
            ],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        )
        nbformat.write(nb, folder / "00_overview.ipynb")

    return write
