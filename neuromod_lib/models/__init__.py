"""Network architectures. :mod:`.cnn` holds the convolutional backbones that modulators adapt."""

from .cnn import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    ConvNet,
    SmallResNet,
    TorchvisionResNet,
    build_backbone,
    count_parameters,
)

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "ConvNet",
    "SmallResNet",
    "TorchvisionResNet",
    "build_backbone",
    "count_parameters",
]
