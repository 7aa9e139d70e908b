# %% [markdown]
# # 00 · Overview: one network, many tasks, by neuromodulation
#
# Brains do not rewire themselves every time the task changes. Neuromodulators — dopamine,
# acetylcholine, noradrenaline, serotonin — and top-down context signals change *how* neurons
# respond: their **gain**, their **excitability**, the **strength of their synapses**. The same
# circuit then computes something different.
#
# This repository asks how far that idea carries in artificial networks, and reproduces three
# papers that answer parts of it. One idea runs through all of them:
#
# > **A modulator maps a context — a task id, a mixture of tasks, or noise — to a
# > multiplicative or additive change of activity or of weights.**
#
# | family | what the context changes | formula (unit *i*) | where we meet it |
# |---|---|---|---|
# | **gain** | the slope of a unit's response | $y_i = g_i(c)\,x_i$ | 01–03 (CNNs) |
# | **stochastic comodulation** | gains driven by a shared random modulator $m$ | $y_i = x_i\, e^{c_i m - \mathrm{Var}(m) c_i^2/2}$ | 02–03 |
# | **excitability** | a unit's threshold or bias (and gain) | $r_i = f(g_i(c)\,u_i + b_i(c))$ | 04–05 (RNNs) |
# | **synaptic** | the weights between units | $W(c) = W + \sum_k c_k U_k V_k^\top$ (or $W \odot (1 + \sum_k c_k M_k)$) | 04–05 |
# | **random weights + context** | only a learned per-task context on fixed random weights | $y = s_t\, W_R (c_t \odot h)$ | 06 |
#
# Notebook 07 puts every family on the same tasks.
#
# This notebook answers three small questions first: *what will we build*, *which device am I
# on*, and *what does a gain do that a threshold does not?*

# %% [markdown]
# ## The walk
#
# | notebook | question | reproduces |
# |---|---|---|
# | `00_overview` | What is neuromodulation, what will we build, which device am I on? | — |
# | `01_gain_modulation` | Can per-task multiplicative gains on a frozen CNN adapt it to many tasks? | Boeshertz, Haimerl & Savin 2023 |
# | `02_stochastic_comodulation` | Does a shared random modulator tag task-relevant units and beat deterministic gains? | Boeshertz, Haimerl & Savin 2023 |
# | `03_architecture_study` | How does that depend on the backbone and on where gains act? | Boeshertz, Haimerl & Savin 2023 |
# | `04_rnn_task_packing` | Excitability vs synaptic modulation vs both: how many tasks fit in N neurons? | Vedovati & Ching 2024 |
# | `05_rnn_ambiguity_and_dynamics` | Which pathway survives ambiguous context, and what do the dynamics look like? | Vedovati & Ching 2024 |
# | `06_random_weight_continual_learning` | Can learned contexts on fixed random weights learn task after task with no forgetting? | Hong & Pavlic 2022 |
# | `07_modulation_families_compared` | One table: every modulation family on the same tasks | all three |
#
# Every notebook runs in minutes on a laptop CPU with the `quick` profile and embedded data,
# and reproduces its paper at full scale with `profile = "paper"` on a GPU with the real data
# sets (see the README). The command line lists the notebooks and their parameters:
# `python -m neuromod_lib list`.
#
# ## Parameters
#
# The next cell is papermill's `parameters` cell. `profile` picks a validated parameter set;
# every parameter left at `None` takes the profile's value. Change a value here, or from the
# command line: `python -m neuromod_lib run 00 -p gain=1.5`.

# %% tags=["parameters"]
profile = "quick"  # type: str  smoke (seconds, tests), quick (laptop CPU, embedded data), paper (GPU, real data)
# None: the profile's value. Every other parameter can be set here too; all of them, their
# values and what is allowed: python -m neuromod_lib list 00
n_neurons = None  # type: int  neurons in the tuned population
kappa = None  # type: float  concentration of the tuning curves (larger: narrower)
gain = None  # type: float  multiplicative gain of the modulated population
threshold = None  # type: float  threshold (excitability) of the modulated population

# %%
NOTEBOOK = "00_overview"
import matplotlib.pyplot as plt

import neuromod_lib as nm
from neuromod_lib import plots, tuning, widgets

cfg = nm.profiles.resolve(NOTEBOOK, profile, globals())
cfg

# %% [markdown]
# ## Which device am I on?
#
# The library picks `cuda` > `mps` > `cpu` unless told otherwise (add `device = "cpu"` to the
# parameters cell, or
# the environment variable `NEUROMOD_DEVICE`). Asking for a device the machine lacks is an
# error, never a silent fallback. Seeding also switches torch to deterministic algorithms, so
# the same seed prints the same numbers on the CPU. (This cell's output depends on the
# machine, so the notebook tests do not compare it.)

# %%
# NBVAL_IGNORE_OUTPUT
dev = nm.device.prepare(cfg.device, cfg.seed)
print("computing on:", nm.device.describe_device(dev))
print("this machine has:", ", ".join(nm.device.available_devices()))
print(", ".join(f"{name} {version}" for name, version in nm.results.versions().items()))

# %% [markdown]
# ## What does a gain do to a population of tuned neurons?
#
# Take the simplest neurons there are: each prefers one direction $\theta_i$ of a stimulus
# $s$ and is driven by $d_i(s) = e^{\kappa(\cos(s-\theta_i)-1)}$. A modulator acts on the
# response in one of two ways:
#
# $$ r_i(s) = \underbrace{g}_{\text{gain}} \,\big[\, d_i(s) - \underbrace{\vartheta}_{\text{threshold}} \,\big]_+ $$
#
# A **gain** $g$ multiplies the response; a **threshold** $\vartheta$ (lower excitability)
# subtracts from the drive before the rectification. Both change how much a neuron fires.
# Do they change *what it says*? Below, left: tuning curves before (dashed) and after
# (coloured); right: the population's answer to one stimulus at 0°, and the direction a
# population-vector read-out decodes from it.

# %%
fig = plots.tuning_figure(gain=cfg.gain, n_neurons=cfg.n_neurons, kappa=cfg.kappa)
plots.save_figure(fig, cfg, "gain_tuning")
plt.show()

# %%
fig = plots.tuning_figure(threshold=cfg.threshold, n_neurons=cfg.n_neurons, kappa=cfg.kappa)
plots.save_figure(fig, cfg, "threshold_tuning")
plt.show()

# %% [markdown]
# The numbers behind the two figures, computed over 360 stimulus directions: peak rate,
# tuning width (full width at half maximum), and the mean error of the population-vector
# read-out.

# %%
# NBVAL_CHECK_OUTPUT
by_gain = tuning.describe_modulation(n_neurons=cfg.n_neurons, gain=cfg.gain, kappa=cfg.kappa)
by_threshold = tuning.describe_modulation(n_neurons=cfg.n_neurons, threshold=cfg.threshold, kappa=cfg.kappa)
tuning.modulation_table(by_gain, by_threshold, gain=cfg.gain, threshold=cfg.threshold)

# %% [markdown]
# Do the two modulations change *what* the population says? Three claims, checked on those
# numbers:

# %%
# NBVAL_CHECK_OUTPUT
claims = tuning.modulation_claims(by_gain, by_threshold)
tuning.claims_table(claims)

# %% [markdown]
# **Answer.** A gain changes *how loudly* the population speaks, not *what it says*: the
# peak scales with $g$, while the tuning width and the decoded direction stay exactly as they
# were. Raising the threshold does something qualitatively different: neurons fall silent
# away from their preferred direction, so tuning **sharpens** (and the rate drops). That
# difference — scaling vs. reshaping — is why the papers we reproduce treat gain and
# excitability as distinct mechanisms (notebooks 04–05), and why a per-unit gain can
# re-weight *which* units a downstream readout listens to without destroying what they encode
# (notebooks 01–03).
#
# ## Try it
#
# Move the sliders: `gain` multiplies, `threshold` subtracts, `fraction` modulates only an
# evenly spread subset of the neurons — as a modulator that *tags* some units and not others
# will in notebook 02. The first figure is the widget's starting point, drawn by a plain call
# so that it is saved with the notebook; the panel below it is live in JupyterLab.

# %%
start = {"gain": 1.5, "threshold": 0.3, "fraction": 0.5}
fig = plots.tuning_figure(**start, n_neurons=cfg.n_neurons, kappa=cfg.kappa)
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
widgets.tuning_widget(n_neurons=cfg.n_neurons, kappa=cfg.kappa, **start)

# %% [markdown]
# ## Record the results
#
# Every notebook ends by recording its headline numbers (rounded), with the per-seed samples, the
# parameters, the device and the versions, in `results/runs/<notebook>/<profile>/seed-<seed>-<key>.json`
# (`<key>`: a hash of the parameters); `python -m neuromod_lib summary` aggregates the records over
# seeds and `python -m neuromod_lib report` writes `results/report.md`.

# %%
# NBVAL_CHECK_OUTPUT
metrics = {
    "n_neurons": cfg.n_neurons,
    "baseline_width_deg": by_gain["baseline_width_deg"],
    "gain_width_deg": by_gain["modulated_width_deg"],
    "threshold_width_deg": by_threshold["modulated_width_deg"],
    "gain_peak": by_gain["modulated_peak"],
    "gain_keeps_width": claims["gain_keeps_width"],
    "gain_keeps_decoding": claims["gain_keeps_decoding"],
    "threshold_narrows": claims["threshold_narrows"],
}
path = nm.results.record(cfg, metrics, device=dev)
print(nm.results.format_metrics(metrics))

# %% [markdown]
# ## Where next
#
# - **01 · Gain modulation:** the same multiplicative gain, one set per task, on the channels of
#   a frozen convolutional network — can it adapt one backbone to many tasks?
# - **02 · Stochastic comodulation:** make the gains fluctuate with a shared random modulator,
#   and let the readout listen to the units that co-fluctuate with it.
