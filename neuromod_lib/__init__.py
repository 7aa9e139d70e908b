"""neuromod_lib: the shared library behind the neuromod notebooks.

One idea runs through it: a *modulator* maps a context (a task id, a mixture of tasks, or
noise) to a multiplicative or additive change of activity or weights. The notebooks hold
the story, plots and widgets; this package holds every model, data set, training loop and
metric, so that each notebook's heavy lifting is one call.
"""

from . import device, exercises, profiles, results, storage, tables

__all__ = ["device", "exercises", "profiles", "results", "storage", "tables"]
__version__ = "0.1.0"
