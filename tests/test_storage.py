"""Atomic writes: a failure never leaves a half-written or clobbered file."""

import pytest
import torch

from neuromod_lib import storage


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "result.json"
    storage.write_json(target, {"a": 1})

    def explode(f):
        f.write(b"{half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        storage.write_atomic(target, explode)
    assert storage.read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_checkpoint_roundtrip_with_weights_only(tmp_path):
    state = {"w": torch.arange(3.0), "epoch": 2, "history": [{"loss": 0.5}], "rng": torch.get_rng_state()}
    path = storage.save_checkpoint(state, tmp_path / "ck" / "last.pt")
    back = storage.load_checkpoint(path)
    assert torch.equal(back["w"], state["w"]) and back["epoch"] == 2 and back["history"] == [{"loss": 0.5}]


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint="):
        storage.load_checkpoint(tmp_path / "nope.pt")


def test_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": object.__new__(_Thing)}, path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        storage.load_checkpoint(path)


class _Thing:
    pass
