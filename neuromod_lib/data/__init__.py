"""Data sets for the neuromodulation notebooks: generated stand-ins and their real counterparts.

- :mod:`.attributes`: procedurally generated images, nothing to download. ``make_attributes``
  (24 independent binary attributes: the CelebA stand-in) and ``make_hierarchy`` (20
  superclasses x 5 fine classes: the CIFAR-100 stand-in), with the containers
  ``AttributeSet`` / ``HierarchySet`` and latents-based rendering for counterfactual images.
- :mod:`.vision`: ``load_celeba`` and ``load_cifar100_hierarchy`` read the real data sets
  through torchvision into the same containers (downloading only when asked to).
"""

from .attributes import (
    ATTRIBUTES,
    HIERARCHY_FEATURES,
    AttributeLatents,
    AttributeSet,
    HierarchyLatents,
    HierarchySet,
    check_attributes,
    hierarchy_feature,
    make_attributes,
    make_hierarchy,
    render_attributes,
    render_hierarchy,
    sample_attribute_latents,
    sample_hierarchy_latents,
)
from .vision import CELEBA_SPLITS, CIFAR100_SPLITS, load_celeba, load_cifar100_hierarchy

__all__ = [
    "ATTRIBUTES",
    "CELEBA_SPLITS",
    "CIFAR100_SPLITS",
    "HIERARCHY_FEATURES",
    "AttributeLatents",
    "AttributeSet",
    "HierarchyLatents",
    "HierarchySet",
    "check_attributes",
    "hierarchy_feature",
    "load_celeba",
    "load_cifar100_hierarchy",
    "make_attributes",
    "make_hierarchy",
    "render_attributes",
    "render_hierarchy",
    "sample_attribute_latents",
    "sample_hierarchy_latents",
]
