"""The shared input checks, and every config dataclass of the library checking its fields with them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from neuromod_lib import training
from neuromod_lib.adaptation import AdaptConfig, PretrainConfig
from neuromod_lib.checks import check_fields, check_finite, check_trained, is_int, is_number
from neuromod_lib.continual import ContinualConfig
from neuromod_lib.data.tasks import TaskConfig
from neuromod_lib.families import FamilyConfig
from neuromod_lib.models.random_weights import RandomWeightConfig
from neuromod_lib.models.rnn import RNNConfig
from neuromod_lib.multitask import TrainConfig
from neuromod_lib.training import FitConfig

# every config dataclass of the library, with the arguments it needs
CONFIGS = {
    FitConfig: {"max_epochs": 2},
    AdaptConfig: {"sites": ("block1",)},
    PretrainConfig: {},
    ContinualConfig: {},
    FamilyConfig: {},
    TrainConfig: {},
    TaskConfig: {},
    RNNConfig: {},
    RandomWeightConfig: {"n_inputs": 8, "n_classes": 2},
}


def test_numbers_are_finite_and_not_booleans():
    assert all(is_number(x) for x in (0, -3, 2.5, np.float32(0.5), np.int64(3)))
    assert not any(is_number(x) for x in (math.nan, math.inf, -math.inf, True, False, "1", None))
    assert all(is_int(x) for x in (0, -3, np.int64(3)))
    assert not any(is_int(x) for x in (True, 2.0, "2", None))


@dataclass(frozen=True)
class Box:
    size: int = 1
    steps: int = 10

    def __post_init__(self) -> None:
        check_fields(
            self,
            [
                ("size", is_int(self.size) and self.size >= 1, "an integer >= 1"),
                ("steps", self.steps % 2 == 0, "an even integer", f"steps={self.steps} must be even"),
            ],
        )


def test_check_fields_message_names_class_field_value_and_allowed():
    with pytest.raises(ValueError) as info:
        Box(size=0.5)
    assert str(info.value) == "Box.size=0.5 is not allowed; allowed: an integer >= 1"
    with pytest.raises(ValueError) as info:
        Box(steps=3)
    assert str(info.value) == "Box.steps=3 must be even; allowed: an even integer"
    assert Box(size=2, steps=4).size == 2


def test_training_still_exports_the_helpers():
    assert (training.check_fields, training.is_int, training.is_number) == (check_fields, is_int, is_number)


def fields_of(kind: str) -> list[tuple[type, str]]:
    """``(config class, field)`` for every field annotated with ``kind`` (e.g. ``float | None``)."""
    return [
        (cls, f.name)
        for cls in CONFIGS
        for f in dataclasses.fields(cls)
        if str(f.type).split(" | ")[0] == kind
    ]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True])
@pytest.mark.parametrize(("cls", "name"), fields_of("float"), ids=lambda x: getattr(x, "__name__", x))
def test_every_float_field_refuses_nan_inf_and_booleans(cls, name, value):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name}={value!r} .*allowed: "):
        cls(**{**CONFIGS[cls], name: value})


@pytest.mark.parametrize("value", [True, 2.5, "3"])
@pytest.mark.parametrize(("cls", "name"), fields_of("int"), ids=lambda x: getattr(x, "__name__", x))
def test_every_int_field_refuses_booleans_and_non_integers(cls, name, value):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name}={value!r} .*allowed: "):
        cls(**{**CONFIGS[cls], name: value})


def test_every_config_is_covered():
    assert len(fields_of("float")) >= 25 and len(fields_of("int")) >= 25
    for cls, kwargs in CONFIGS.items():
        cls(**kwargs)  # the defaults are valid


def test_check_finite_names_the_input_and_a_bad_entry():
    ok = torch.tensor([[0.0, 1.0]])
    assert check_finite("context", ok) is ok
    with pytest.raises(ValueError) as info:
        check_finite("context", torch.tensor([[0.0, 1.0], [math.inf, math.nan]]))
    assert str(info.value) == (
        "context contains NaN or infinite values (inf at index [1, 0]); allowed: finite values"
    )


def test_check_trained_names_the_first_bad_task_and_the_trained_ones():
    ids = torch.tensor([0, 2, 1])
    assert check_trained(ids, 3) is ids
    with pytest.raises(ValueError, match=r"^task 3 was never trained; trained tasks: 0\.\.2$"):
        check_trained(torch.tensor([0, 3, 5]), 3)
    with pytest.raises(ValueError, match=r"^task -1 was never trained; trained tasks: 0\.\.1$"):
        check_trained(torch.tensor([[1, -1]]), 2)
    with pytest.raises(ValueError, match=r"^task 0 was never trained; trained tasks: none$"):
        check_trained(torch.tensor([0]), 0)
