# %% [markdown]
# # 02 · Stochastic comodulation: can noise tell the readout where to look?
#
# **Question.** In notebook 01 each task learned deterministic gains $e^{c_k}$. Boeshertz, Haimerl &
# Savin (2023) make the gains *fluctuate*: one random modulator $m$ per image, shared by all
# modulated units, drives every gain,
#
# $$ y_k = x_k \; e^{\,c_k m - \mathrm{Var}(m)\, c_k^2/2}, \qquad m = 1 + \xi,\ \xi \sim \mathcal N(0, \sigma_m^2), $$
#
# so the mean gain is $e^{c_k}$ — the deterministic modulation — while units with a large coupling
# $c_k$ **co-fluctuate** with $m$: the modulator *tags* the units that matter for the task. A
# **modulator-guided readout** weights each last-layer unit by its covariance with $m$,
# $a_k = \max(0, \mathrm{cov}(h_k, m))$ (normalised to mean 1, running average over batches, no
# gradient): the decoder listens to the tagged units. No learnable parameter is added. The paper
# reports that this beats deterministic gains (state of the art on CelebA) and converges faster.
# Does it, here — in a test that could go either way?
#
# **The method as its authors built it** (their predecessor code, Haimerl et al.,
# `modulator_guided_decoding`; `../shared/papers.md`, section A), and every variant by name:
#
# | condition | couplings | modulator in training | readout |
# |---|---|---|---|
# | `deterministic_gain` | $c = w$, $w_0 = 0$ | $m = 1$ | plain |
# | `deterministic_gain_nonneg` | $c = w^2$, $w_0 = 1$ (predecessor's) | $m = 1$ | plain |
# | **`stochastic_gain`** (the paper's reading: trained *by* stochastic modulation) | $c = w^2$, $w_0 = 1$ | $m = 1 + \xi$ | guided |
# | `stochastic_gain_routing` (predecessor's protocol) | $c = w^2$, $w_0 = 1$ | $m = 1$; noise only in the routing pass | guided |
# | `stochastic_gain_signed` | $c = w$, $w_0 = 0$ | $m = 1 + \xi$ | guided |
# | `stochastic_gain_plain_readout` (ablation: is it the readout?) | $c = w^2$, $w_0 = 1$ | $m = 1 + \xi$ | plain |
# | `stochastic_gain_zero_mean` (ablation: this library's earlier version) | $c = w$, $w_0 = 0$ | $m = \xi$ (mean gain 1) | guided |
#
# The guided readout's covariance is measured where the modulator, not the image, varies: every
# `route_every` (8) steps, `route_images` (8) of each task's training images go once more through
# the network under a new modulator draw (a no-gradient **routing pass**), and
# $\mathrm{cov}(h_k, m)$ is taken across that draw and the training pass's own draw of the *same*
# image (`draws` in all; for `stochastic_gain_routing`, trained at $m = 1$, the pair is the mean and
# one noisy draw, which gives the same weights after the mean-1 normalisation). The running
# average keeps the predecessor's time constant of ~100 training steps. Reusing the training draw
# and routing every few steps keeps a step within 10 % of a deterministic one
# (`benchmarks/cnn_modulation.py`).
# **Evaluation** uses the mean gain $e^{c\,\mathrm{E}[m]}$ (no noise).
#
# **A fair test** (our design choices, the same for every condition): each condition searches the
# same learning rates and keeps the one with the lowest validation error; each task's test error
# is read at its best validation point; every condition trains for the same number of steps, and
# whether its validation error had stopped falling is checked and shown. Each stochastic variant is
# compared with the deterministic gains of the same coupling parametrisation, **paired by seed**,
# with a 95 % t interval of the mean difference: a verdict only where the interval excludes 0.

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
# The gain of a unit with coupling $c$ has mean exactly $e^{c}$ whatever $\sigma_m$ (the
# $-\mathrm{Var}(m)c^2/2$ term sees to it); its relative spread — the tag — grows with $c\,\sigma_m$.
# Below: the distribution, divided by its mean, for three couplings at this notebook's $\sigma_m$.
# The slider (live in JupyterLab) changes $\sigma_m$.

# %%
fig = plots.gain_distribution([0.5, 1.0, 2.0], cfg.sigma_m)
plots.save_figure(fig, cfg, "gain_distribution")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
widgets.sigma_widget((0.5, 1.0, 2.0))

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
    backbone=cfg.backbone, weights=cfg.weights, n_tasks=cfg.n_tasks, n_adapt=cfg.n_adapt, protocol=cfg.protocol,
    pretrain_config=adaptation.PretrainConfig(epochs=cfg.pretrain_epochs), seed=cfg.seed, device=dev,
    cache_dir=f"{cfg.results_dir}/cache", verify=cfg.verify_data,
)
print(setup.description())

# %% [markdown]
# ## Every condition, one learning-rate search, one budget
#
# All gain conditions train side by side in one vectorised batch (seeds × tasks × learning rates ×
# variants). The table says what each condition is, which learning rate validation chose (and the
# validation error of every tried one), its test error, its cost per task, and whether its budget
# saturated: the best validation error in the last third of the budget improved on the best before
# it by less than `saturation_tol` points (the number in brackets is that improvement).

# %%
conditions = ["deterministic_gain", "deterministic_gain_nonneg", *adaptation.STOCHASTIC_VARIANTS]
runs = adaptation.adapt_many(setup.backbone, setup.tasks, conditions, budget, device=dev)
setups.conditions_table(runs)

# %%
fig = plots.learning_curves(list(runs.values()))
plots.save_figure(fig, cfg, "learning_curves")
plt.show()

# %% [markdown]
# ## Stochastic minus deterministic, paired by seed
#
# Each variant against the deterministic gains with the same couplings: the difference of mean test
# error per seed (crosses) and the 95 % interval of its mean (bar). Left of 0 the stochastic variant
# wins; an interval across 0 is no detectable difference.

# %%
answer = setups.comodulation(runs)
answer.variant_table()

# %%
fig = plots.paired_differences(*answer.forest())
plots.save_figure(fig, cfg, "paired_differences")
plt.show()

# %% [markdown]
# ## Does the modulator tag the units the task needs?
#
# The tag must be judged against something the modulator did not make. For every last-layer unit
# we measure its **task relevance without the modulator**: in the deterministic run with the same
# couplings, how much validation accuracy drops when the unit is removed from the readout. Each
# dot is a unit of one task and seed: relevance (x) against the weight the guided readout of the
# stochastic run gives it (y). The correlation per seed, averaged over tasks, is in the answer.

# %%
method, reference = runs["stochastic_gain"], runs["deterministic_gain_nonneg"]
fig = plots.relevance_scatter(reference.extra["unit_relevance"], method.extra["readout_weights"],
                              title=f"correlation per seed: {answer.tags.mean():.2f} (mean)")
plots.save_figure(fig, cfg, "tagging")
plt.show()

# %% [markdown]
# ## The answer, computed

# %%
answer.conclusions()

# %% [markdown]
# ### Against the literature
#
# Under the literature's CelebA protocol (the `paper` profile: all 40 attributes, official test
# split) the mean test errors stand beside Sener & Koltun's published multi-task numbers, as a
# reference; on the generated images no published number applies, and the cell says so.

# %%
setups.literature_reference(cfg, runs)

# %% [markdown]
# **Reading the result.** The sentences above are computed from this run, at this scale: a small
# ConvNet at 16×16 pixels, procedurally generated attributes, 3 held-out tasks learned from 250
# images, 5 seeds — data and model shrunk (not training) so that every condition gets the same
# learning-rate search and budget on a laptop CPU, and the compared conditions saturate (the two
# ablations with signed couplings starting at 0 were still improving; the table says so). Two
# comparisons answer two questions:
#
# - *Does the noise help the gains it modulates?* The paired comparison with the deterministic
#   gains of the same couplings ($c = w^2$, $w_0 = 1$). In this run, yes, by about a point. But
#   this verdict does **not** hold with other seeds: with seeds 1–5 and 2–6 the same difference is
#   +0.03 [-0.84, +0.91] and -0.20 [-1.00, +0.60] points, "matches" both times, and so it is on
#   another CPU with the same seeds (AVX2 kernels: -0.82 [-2.02, +0.38]); `tests/seed_spread.json`
#   records it as seed-dependent. Over the three seed sets the noise's
#   benefit is a fraction of a point at most; the plain readout, which keeps the noise but ignores
#   the tag, shows no detectable difference in any of them.
# - *Does stochastic comodulation beat deterministic gains however they are parametrised?* No.
#   Against the deterministic gains that validation prefers — the signed ones, which start at gain
#   1 — it loses by more than two points here (and by 1.67 [0.82, 2.51] with seeds 2–6; it matches
#   with seeds 1–5). The predecessor's parametrisation starts every modulated channel at gain $e$,
#   and the noise recovers at most part of what that start costs.
#
# The ablations that do hold on every seed set: signed couplings starting at 0 lose (by 2.3 to 3.8
# points), and the zero-mean modulator (this library's earlier version) loses by 5.8 to 8.1 points,
# because its mean gain is 1: it carries no deterministic modulation at all. The paper's claim is
# about CelebA with a ResNet; run this notebook with `profile = "paper"` on a GPU (the
# literature's 40-attribute protocol) to test it there.

# %% [markdown]
# ## Record the results

# %%
metrics = answer.metrics()
path = nm.results.record(
    cfg, metrics, device=dev, samples=answer.samples(),
    trained=setups.training_check(setup, runs["deterministic_gain_nonneg"], "deterministic-gain"),
    per_task=setups.per_task_rows(runs),
)
print(nm.results.format_metrics(metrics))
