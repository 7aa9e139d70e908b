# %% [markdown]
# # 04 · Task packing: how many tasks fit in N neurons?
#
# **Question.** One recurrent network, many cognitive tasks. A *context* tells it which task to
# do. Should that context act on the **excitability** of neurons (how strongly each responds, and
# its threshold), on the **synapses** between them (which connections are strong), or on **both**?
# Vedovati & Ching (2024), *Synergistic pathways of modulation enable robust task packing within
# neural dynamics* (arXiv 2408.01316), ask how many tasks each pathway can *pack* into a network of
# a given size. This notebook measures it.
#
# **The network** (the standard multitask RNN of Yang et al. 2019):
# $x_t = g(c)\odot(W_\text{in}u_t + W_\text{rec}(c)\,r_{t-1}) + b + b(c) + \text{noise}$,
# $r_t = (1-a)\,r_{t-1} + a f(x_t)$ with $a = dt/\tau$, read out as $y_t = \sigma(W_\text{out} r_t + b_\text{out})$.
# The context $c$ (one-hot over the K tasks) reaches it through one pathway:
#
# | pathway | what the context changes | context parameters (matched, the default) |
# |---|---|---|
# | `rule` | an additive bias $b(c) = Bc$ — exactly Yang et al.'s rule input, i.e. each neuron's threshold: the baseline | $NK$ |
# | `excitability` | per-neuron gain $g(c) = 1 + Gc$ and bias $b(c) = Bc$ | $2NK$ |
# | `synaptic` | recurrent weights $W_\text{rec}(c) = W_\text{rec} + \sum_k c_k u_k v_k^\top$ (rank 1, $u_k$ and $v_k$ learned) | $2NK$ |
# | `both` | half of each: the gain $G$ of excitability and the $v_k$ of a rank-1 synaptic change whose $u_k$ stays at its random start | $NK + NK = 2NK$ |
#
# So the three modulated pathways are compared at the **same number of context parameters**;
# `both` is excitability + synapses at that count, not their union (`matched = False` gives the
# union, $4NK$, and an elementwise synaptic form is available too). The rule input keeps Yang
# et al.'s $NK$: it is the baseline, not one of the compared pathways.
#
# Everything else (input, recurrent and output weights) is shared by all tasks and trained too.

# %% tags=["parameters"]
profile = "quick"  # type: str  smoke (seconds, tests), quick (laptop CPU, embedded data), paper (GPU, real data)
# None: the profile's value. Every other parameter can be set here too; all of them, their
# values and what is allowed: python -m neuromod_lib list 04
seed = None  # type: int  seed of every random draw
device = None  # type: str  where to compute
pathways = None  # type: list[str]  list of context pathways: rule, excitability, synaptic, both
sizes = None  # type: list[int]  list of network sizes N
ks = None  # type: list[int]  list of task counts K (first K tasks of the packing order)
replicates = None  # type: int  networks (seeds) per condition

# %%
# NBVAL_CHECK_OUTPUT
NOTEBOOK = "04_rnn_task_packing"
import matplotlib.pyplot as plt
import torch

import neuromod_lib as nm
from neuromod_lib import multitask, packing, plots, widgets
from neuromod_lib.data import tasks as cognitive
from neuromod_lib.models.rnn import ModulatedRNN

cfg = nm.profiles.resolve(NOTEBOOK, profile, globals())
# every check before any training: pathways, dt <= tau, the grid of sizes and task counts
setup = multitask.rnn_setup(cfg)
size_list, k_list = sorted(cfg.sizes), sorted(cfg.ks)
packing.check_grid(size_list, k_list, cfg.replicates, len(cognitive.TASKS))
dev = nm.device.prepare(cfg.device, cfg.seed)
print(f"sizes N = {size_list}; task counts K = {k_list}; pathways {', '.join(setup.pathways)}; "
      f"{cfg.replicates} replicates; up to {cfg.steps} steps of {cfg.batch} trials; dt = {cfg.dt:g} ms, "
      f"tau = {cfg.tau:g} ms")

# %%
# NBVAL_IGNORE_OUTPUT
print(nm.device.describe_device(dev))

# %% [markdown]
# ## The tasks
#
# Thirteen tasks of Yang et al. (2019), generated on the fly (nothing to download), following their
# `task.py`. The input is a fixation unit and two rings of direction-tuned units (two
# "modalities"); the output is a fixation unit and a response ring. The network must keep its
# fixation output high until the go cue (the fixation input switching off; in the reaction-time
# tasks the stimulus itself; in the match tasks the test stimulus), then point its response ring
# at the right direction: the stimulus (Go), its opposite (Anti), the stronger of two stimuli (DM),
# the stronger in the cued modality (Ctx-DM), the stronger summed over both (Multi-sensory DM), or
# — in the match tasks — respond to the test only if it matches the sample (DMS) or differs (DNMS).
# As in Yang et al., a trial is scored **500 ms after the go cue**: correct if the response points
# within 36° of the target with the fixation output below 0.5, or, on a no-go trial, if the
# fixation output is still above 0.5. The cost weights each step 1 before the go cue, 0 for the
# 100 ms after it and 5 for the rest of the response, and is squared, with the fixation output
# counted twice, as in Yang's code.
#
# What we keep differently, and why (see `neuromod_lib.data.tasks`): timings are drawn per trial
# rather than per batch, so one batch mixes tasks (each trial keeps its own length; the padding
# is neither trained nor scored); the decision tasks' coherences are (0.08, 0.16, 0.32) instead of
# 0.01–0.08, so that small networks learn them in a CPU budget; there is no rule input — the
# context reaches the network through its pathway.

# %%
# NBVAL_CHECK_OUTPUT
names = list(cognitive.TASKS)
examples = cognitive.generate(cognitive.task_index(names), setup.task_config, torch.Generator().manual_seed(cfg.seed))
fig = plots.task_trials(examples, names)
plt.show()
print("packing order (K tasks = the first K):", ", ".join(cognitive.PACKING_ORDER))

# %% [markdown]
# ## The pathways, in parameters
#
# Context parameters per pathway for a network of the largest size here and the largest K; the
# shared weights are the same for every pathway.

# %%
# NBVAL_CHECK_OUTPUT
probe = ModulatedRNN(setup.network(size_list[-1], max(k_list)), list(setup.pathways))
multitask.context_parameter_table(probe)

# %% [markdown]
# ### Exercise: write the excitability pathway
#
# The excitability pathway changes how strongly each neuron responds to its input drive $z$ (a gain)
# and its threshold (a bias), both set by the context: $(1 + cG)\odot z + cB$. `ex.drive` is the
# input drive `(B, N)`, `ex.context` the context vectors `(B, K)` (here mixtures of tasks) and
# `ex.G`, `ex.B` the per-task tables `(K, N)`. Write the modulated drive; the check compares it with
# the library's `modulation.excitability`, which every RNN pathway and notebook 07's excitability
# family call.

# %%
ex = nm.exercises.start("excitability")  # drive (B, N) input drive, context (B, K) context vectors, G and B (K, N) per-task tables
yours = ...  # your code: an expression of ex's tensors
nm.exercises.check("excitability", yours)

# %% [markdown]
# <details><summary><b>Solution</b> (click to open)</summary>
#
# ```python
# yours = (1 + ex.context @ ex.G) * ex.drive + ex.context @ ex.B
# ```
#
# </details>

# %% [markdown]
# ## Packing capacity
#
# For each size N and each K, every pathway trains `replicates` networks on the first K tasks.
# **All** networks — every size, K, pathway and replicate — train **together**, as one stack of
# independent networks with batched matrix products (smaller networks are padded with silent
# units that never learn; see `benchmarks/rnn_speed.py` for what stacking buys). The networks of
# one size and replicate start from the same weights whatever their pathway and K, so pathways are
# compared in pairs.
#
# Three rules make a capacity worth comparing:
#
# - **Solved** means every task at ≥ 90 % on a large final evaluation (`final_trials` fixed
#   trials per task, with the network's noise), not on the last small learning-curve evaluation.
# - **Saturation check.** Every network trains the whole budget, and the same large evaluation is
#   made at 2/3 of it. A (pathway, N, K) cell whose verdicts differ between the two is
#   **budget-limited** — more training might change it: it is left out of the comparisons, and a
#   capacity that rests on such a cell is shown hatched and left out of the means and of the growth.
# - **Size must limit.** Capacity is only informative where it is below the number of tasks on
#   offer. Measured while designing this notebook (quick settings): N = 4 packs one task, N = 8 two,
#   N = 12 about five and N = 16 all six with every pathway — but at N ≥ 12 the networks need more
#   than this budget to settle, so the quick profile uses N = 4 and 8, where the paper says the
#   pathways should differ (the `paper` profile goes to N = 256), with five replicates: the fewest
#   for which the test of growth below can reach p < 0.05. The learning rate, 0.02, is the one of
#   those measured (0.01 and 0.02; 3 600 and 5 400 steps) that left the fewest cells still changing
#   after 2/3 of the budget — chosen for every pathway at once, before any comparison was made.

# %%
sweep, model, result = packing.packing_sweep(
    size_list, k_list, setup.pathways, cfg.replicates, setup.task_config, setup.train_config,
    device=dev, rnn_kw=setup.rnn_kw,
)
sweep.capacity_table()

# %%
# NBVAL_IGNORE_OUTPUT
print(f"{model.n_networks} networks trained together for {result.history_steps[-1]} steps in {result.seconds:.0f} s")

# %%
fig = plots.capacity_figure(sweep.capacity(), size_list, list(setup.pathways), max_k=max(k_list),
                            limited={(n, p) for n, p, _ in sweep.budget_limited()})
plots.save_figure(fig, cfg, "capacity")
plt.show()

# %% [markdown]
# Where does packing stop, how fast is it reached, and did more training change anything? For each
# K: how many replicates solved all K tasks, the median steps to criterion (on the learning-curve
# evaluations) of those that did, and † where the saturation check failed.

# %%
sweep.solved_table()

# %%
sweep.saturation_table()

# %% [markdown]
# ## The answer, computed
#
# Only saturated cells count. Pathways are compared network by network: for each (N, K) cell
# saturated for both, did one pathway solve the tasks where the other did not? The **unit** of
# every test is an (N, replicate): its networks start from the same weights whatever their pathway
# and K, so their outcomes are not independent of each other, while different units are. Per unit,
# the mean over the saturated K of solved(x) − solved(y); then an exact sign-flip test over the
# units with a bootstrap interval (`neuromod_lib.stats`), p Holm-adjusted over the three
# comparisons (excitability − synaptic, `both` − excitability, `both` − synaptic). `both` is not
# compared with "the better single pathway" network by network: picking the better of two noisy
# outcomes per pair would favour the single pathways.
#
# **Growth with N**: per replicate, the capacity at the largest minus the smallest size saturated
# for every pathway, averaged over the pathways (the pathways of one replicate are not
# independent), tested one-sided — "capacity rises with N" is the hypothesis stated before the
# run. With five replicates the smallest p such a test can give is 1/32.
#
# **Hyperparameters.** Every pathway trains with the same learning rate, batch and step budget,
# fixed while designing this notebook from learning-speed measurements of all four pathways
# together; there is no per-pathway search, so a pathway whose best learning rate lies elsewhere
# could be at a disadvantage (`lr` is a parameter: try it). Trials are drawn afresh for every
# evaluation, so no verdict is made on trials seen in training.

# %%
answer = packing.packing_answer(sweep, seed=cfg.seed)
answer.mean_capacity_table()

# %%
answer.comparison_table()

# %%
answer.conclusions()

# %% [markdown]
# **Reading the result.** The lines above are computed from this run; here is what they amount to
# for the paper's claims (numbers of the committed run, seed 0, quick profile).
#
# - *Capacity rises with N*: **supported on two seeds of three, at the edge of what five replicates
#   can show**. Every pathway packs one task at N = 4; at N = 8 excitability packs 2.0 on average,
#   synaptic 1.8 and the rule input 1.6, and no network of 8 neurons or fewer learned the first
#   three tasks (Go, Anti and DM1). Per replicate, averaged over the pathways saturated at both
#   sizes, capacity grows by +0.80 [+0.67, +0.93]: one-sided p = 0.031 over five replicates, the
#   smallest p five replicates can give. Per pathway, only excitability reaches it (+1.00,
#   p = 0.031; synaptic +0.80, p = 0.06; rule +0.60, p = 0.13). Seed 2 agrees (p = 0.031); on
#   seed 1 only excitability's capacity had settled at both sizes and one of its replicates did not
#   grow (p = 0.125). The direction is never in doubt; the test's verdict is.
# - *Excitability and synaptic modulation pack differently*: **not supported here**. At matched
#   context parameters the two solved the same task sets except in one of the 10 (N, replicate)
#   units (+0.017, p = 1 after Holm's correction; seeds 1 and 2: +0.000 and +0.017, p = 1): whether
#   a small network packs two tasks depended on its initial weights more than on its pathway.
# - *Synergy (both pathways pack more than either alone)*: **not testable in this run**. The only
#   cells where the pathways could differ — two tasks, at N = 4 and N = 8 — were still changing for
#   `both` after 2/3 of the budget (†; one network each), so they are left out, and on the cells
#   that remain every pathway did the same (both − each single: +0.00, p = 1). The "at least as
#   many" line above is therefore empty of evidence. On seed 2, where every cell of `both` settled,
#   `both` packed exactly as much as each single pathway (−0.017 and +0.000, p = 1): no synergy. Which cells settle is itself sensitive to the
#   seed and to the evaluation noise at the 90 % criterion (see `tests/seed_spread.json`).
#
# What this run cannot say: the differences the paper reports may need more tasks per neuron than
# a CPU budget can train to saturation (at N ≥ 12 the networks pack five or six tasks but need more
# than 3 600 steps to settle), and five replicates detect only effects that show in most of them.
# The `paper` profile (N = 16–256, all 13 tasks, Yang et al.'s 20 ms steps, five replicates) is the
# test at scale; it needs a GPU.
#
# ## Look inside
#
# Pick a size, a pathway and a task: one trial of the network (first replicate, trained on the
# most tasks) against its target. The cell before draws the default view.

# %%
s, tasks_k = multitask.largest_task_network(result, setup.pathways[-1], sizes=model.sizes, n_neurons=size_list[-1])
batch, outputs = multitask.network_trials(model, s, tasks_k[0], 0, setup.task_config)
fig = plots.trial_output(outputs, batch, title=f"N={size_list[-1]}, {setup.pathways[-1]} pathway, task {tasks_k[0]}")
plots.save_figure(fig, cfg, "trial_output")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
widgets.packing_widget(model, result, setup.task_config)

# %% [markdown]
# ## Record the results

# %%
metrics = answer.metrics()
metrics["saturated_cells"] = len(sweep.cells()) - len(sweep.budget_limited())
metrics["budget_limited_cells"] = len(sweep.budget_limited())
path = nm.results.record(
    cfg, metrics, device=dev, samples=answer.samples(), trained=sweep.training_check(), per_task=sweep.rows
)
print(nm.results.format_metrics(metrics))
