# %% [markdown]
# # 02 · Stochastic comodulation: can noise tell the readout where to look?
#
# **Question.** In notebook 01 each task learned deterministic gains $e^{c_k}$. Boeshertz, Haimerl &
# Savin (2023) make the gains *fluctuate*: one random modulator $m$ per image, shared by all
# modulated units, drives every gain,
#
# $$ y_k = x_k \; e^{\,c_k m - \mathrm{Var}(m)\, c_k^2/2}, \qquad m \sim \mathcal N(0, \sigma_m^2), $$
#
# so the mean gain stays 1, but units with a large coupling $c_k$ **co-fluctuate** with $m$: the
# modulator *tags* the units that matter for the task. A **modulator-guided readout** then weights
# each last-layer unit by its covariance with $m$, $a_k = \max(0, \mathrm{cov}(h_k, m))$ (normalised
# to mean 1, running average over batches, no gradient): the decoder listens to the tagged units.
# No learnable parameter is added. The paper reports that this beats deterministic gains (state of
# the art on CelebA) and converges faster. Does it, here?
#
# Conditions (same protocol and budget as notebook 01): deterministic gains; stochastic gains +
# guided readout (the method); stochastic gains with a plain readout (ablation: is it the noise or
# the readout?); and the method at larger $\sigma_m$.

# %% tags=["parameters"]
profile = "quick"  # type: str  smoke (seconds, tests), quick (laptop CPU, embedded data), paper (GPU, real data)
# None: the profile's value. Every other parameter can be set here too; all of them, their
# values and what is allowed: python -m neuromod_lib list 02
seed = None  # type: int  seed of every random draw
device = None  # type: str  where to compute
sigma_m = None  # type: float  std of the shared modulator m (stochastic comodulation)
gain_sites = None  # type: str  where gains act: early, late, all, or a comma list of sites
steps = None  # type: int  adaptation steps (all conditions)
n_seeds = None  # type: int  adaptation seeds

# %%
# NBVAL_CHECK_OUTPUT
NOTEBOOK = "02_stochastic_comodulation"
import matplotlib.pyplot as plt

import neuromod_lib as nm
from neuromod_lib import adaptation, plots, setups, widgets

cfg = nm.profiles.resolve(NOTEBOOK, profile, globals())
plan = setups.plan_adaptation(cfg)  # every check before any training: sites on this backbone, the budget
sites, budget = plan.budget.sites, plan.budget
dev = nm.device.prepare(cfg.device, cfg.seed)
plan.table()

# %% [markdown]
# ## How the modulator spreads the gains
#
# The gain of a unit with coupling $c$ has mean exactly 1 whatever $c$ and $\sigma_m$; its spread —
# the tag — grows with $c\,\sigma_m$. Left: the distribution for three couplings at this notebook's
# $\sigma_m$. The slider (live in JupyterLab) changes $\sigma_m$.

# %%
fig = plots.gain_distribution([0.5, 2.0, 5.0], cfg.sigma_m)
plots.save_figure(fig, cfg, "gain_distribution")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
widgets.sigma_widget((0.5, 2.0, 5.0))

# %% [markdown]
# ### Exercise: write the stochastic gain
#
# Each unit with coupling $c$ is multiplied by $\exp(c\,m - \sigma_m^2 c^2 / 2)$, where $m$ is the
# modulator shared by every unit of a sample. `ex.x` is the activity `(B, D)`, `ex.c` the couplings
# `(B, D)`, `ex.m` one modulator value per sample `(B,)` and `ex.sigma_m` its standard deviation.
# Write the modulated activity; the check compares it with the library's
# `modulation.stochastic_log_gain` and `modulation.exp_gain`. (Why the $-\sigma_m^2 c^2/2$? Leave it
# out and see what the check says.)

# %%
ex = nm.exercises.start("stochastic_gain")  # x (B, D) activity, c (B, D) couplings, m (B,) the shared modulator, sigma_m its std
yours = ...  # your code: an expression of ex's tensors
nm.exercises.check("stochastic_gain", yours)

# %% [markdown]
# <details><summary><b>Solution</b> (click to open)</summary>
#
# ```python
# yours = ex.x * (ex.c * ex.m[:, None] - ex.sigma_m**2 * ex.c**2 / 2).exp()
# ```
#
# </details>

# %% [markdown]
# ## The same frozen backbone and tasks as notebook 01

# %%
setup = setups.attribute_setup(
    dataset=cfg.dataset, data_root=cfg.data_root, n_images=cfg.n_images, image_size=cfg.image_size,
    backbone=cfg.backbone, weights=cfg.weights, n_tasks=cfg.n_tasks,
    pretrain_config=adaptation.PretrainConfig(epochs=cfg.pretrain_epochs), seed=cfg.seed, device=dev,
    cache_dir=f"{cfg.results_dir}/cache", verify=cfg.verify_data,
)
print(setup.description())

# %% [markdown]
# ## Head to head

# %%
import dataclasses

runs = {c: adaptation.adapt(setup.backbone, setup.tasks, c, budget, device=dev)
        for c in ["deterministic_gain", "stochastic_gain", "stochastic_gain_plain_readout"]}
wider = dataclasses.replace(budget, sigma_m=0.3)
runs["stochastic_gain (sigma_m=0.3)"] = adaptation.adapt(setup.backbone, setup.tasks, "stochastic_gain", wider, device=dev)
target = runs["deterministic_gain"].mean_error().mean().item()  # deterministic gains, at the end of their budget
setups.adaptation_table(runs, target)

# %%
fig = plots.learning_curves(list(runs.values()), target=target)
plots.save_figure(fig, cfg, "learning_curves")
plt.show()

# %% [markdown]
# ## Does the modulator tag the units it drives?
#
# For the method's run: each dot is a channel of the last modulated layer in one task and seed —
# its learned coupling $c_k$ against the weight the guided readout gives it (averaged over the
# channel's pooled units). Tagging means: positive coupling, positive weight.

# %%
from neuromod_lib import readout

method = runs["stochastic_gain"]
coupling = method.extra["coupling"][sites[-1]]  # (S, T, C): the last modulated layer
per_channel = readout.channel_weights(method.extra["readout_weights"], coupling.shape[-1])  # (S, T, C)
correlation = readout.tagging_correlation(coupling, per_channel)  # mean over tasks and seeds
fig = plots.tagging_scatter(coupling, per_channel, title=f"mean correlation {correlation:.2f}")
plots.save_figure(fig, cfg, "tagging")
plt.show()

# %% [markdown]
# ## The answer, computed

# %%
answer = setups.comodulation(runs, target, correlation)
answer.conclusions()

# %% [markdown]
# **Reading the result.** The sentences above are computed from this run, at this scale — a
# small ConvNet, procedurally generated attributes, a few hundred steps on a laptop CPU. The paper's
# claim (stochastic comodulation beats deterministic gains and converges faster, on CelebA with a
# ResNet) is a claim at a much larger scale; run this notebook with `profile = "paper"` on a GPU
# with CelebA to test it there. What the small scale does show is the mechanism: the modulator's
# covariance picks out the units whose coupling the task learned, with no extra parameter. Where
# the method loses at this scale, the ablation tells whether the noise itself or the sparse,
# covariance-weighted readout is the cost: early in training the covariance estimates are noisy
# and the readout listens to few units.

# %% [markdown]
# ## Record the results

# %%
metrics = answer.metrics()
path = nm.results.record(
    cfg, metrics, device=dev, samples=answer.samples(),
    trained=setups.training_check(setup, runs["deterministic_gain"], "deterministic-gain"),
    per_task=setups.per_task_rows(runs),
)
print(nm.results.format_metrics(metrics))
