"""Atomic writes: a failure never leaves a half-written or clobbered file; bad files are named."""

import json
import os
import re
import stat

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


# --- corrupted and truncated files ----------------------------------------------------------------


@pytest.mark.parametrize("text", ['{"a": 1, "b": [1, 2', "", "{'a': 1}", "NaN garbage"])
def test_invalid_json_names_the_file(tmp_path, text):
    path = tmp_path / "record.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^{re.escape(repr(str(path)))} is not valid JSON \(truncated"):
        storage.read_json(path)


def test_json_of_another_shape_is_the_callers_business(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    assert storage.read_json(path) == [1, 2]


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_checkpoint_names_the_path(tmp_path, keep):
    path = storage.save_checkpoint({"w": torch.arange(500.0), "epoch": 3}, tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data))])
    named = re.escape(f"checkpoint={str(path)!r}")
    with pytest.raises(ValueError, match=rf"^{named} cannot be read \(truncated, corrupted or not a check"):
        storage.load_checkpoint(path)


def test_garbage_checkpoint_names_the_path(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(ValueError, match="checkpoint=.*junk.pt.* cannot be read"):
        storage.load_checkpoint(path)


# --- strict JSON -----------------------------------------------------------------------------------


def refuse_constant(name: str):
    raise AssertionError(f"{name} is not JSON")


def test_non_finite_floats_are_written_as_null(tmp_path):
    nan, inf = float("nan"), float("inf")
    record = {"a": nan, "b": [1.5, inf, {"c": -inf, "d": (nan, 2)}], "e": "NaN", "f": 0.25, "g": True}
    path = storage.write_json(tmp_path / "r.json", record)
    back = json.loads(path.read_text(), parse_constant=refuse_constant)  # strict: no NaN / Infinity
    expected = {"a": None, "b": [1.5, None, {"c": None, "d": [None, 2]}], "e": "NaN", "f": 0.25, "g": True}
    assert back == expected
    assert record["a"] != record["a"] and record["b"][1] == inf  # the caller's object is untouched


def test_write_json_still_refuses_what_json_cannot_hold(tmp_path):
    with pytest.raises(TypeError):
        storage.write_json(tmp_path / "r.json", {"a": object()})
    assert not (tmp_path / "r.json").exists()


# --- file modes ------------------------------------------------------------------------------------


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the old one back."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_get_the_umask_mode(tmp_path, umask, mask, mode):
    umask(mask)
    paths = [
        storage.write_json(tmp_path / "r.json", {"a": 1}),
        storage.write_text(tmp_path / "s.md", "text"),
        storage.save_checkpoint({"w": torch.zeros(2)}, tmp_path / "c.pt"),
    ]
    storage.write_json(tmp_path / "r.json", {"a": 2})  # an overwrite gets the same mode
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "r.json", "s.md"]  # no temporary left
    assert storage.read_json(tmp_path / "r.json") == {"a": 2}
