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
# | pathway | what the context changes | context parameters |
# |---|---|---|
# | `rule` | an additive bias $b(c) = Bc$ — exactly Yang et al.'s rule input, i.e. each neuron's threshold | $NK$ |
# | `excitability` | per-neuron gain $g(c) = 1 + Gc$ and bias $b(c)$ | $2NK$ |
# | `synaptic` | recurrent weights $W_\text{rec}(c) = W_\text{rec} + \sum_k c_k U_k V_k^\top$ (rank 1), or elementwise scaling $W_\text{rec}\odot(1+\sum_k c_k M_k)$ | $2NK$ (rank 1), $KN^2$ |
# | `both` | excitability and synapses | sum |
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
from neuromod_lib import multitask, plots, widgets
from neuromod_lib.data import tasks as cognitive
from neuromod_lib.models.rnn import ModulatedRNN

cfg = nm.profiles.resolve(NOTEBOOK, profile, globals())
# every check before any training: pathways, dt <= tau, the grid of sizes and task counts
setup = multitask.rnn_setup(cfg)
size_list, k_list = sorted(cfg.sizes), sorted(cfg.ks)
multitask.check_grid(size_list, k_list, cfg.replicates, len(cognitive.TASKS))
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
# Thirteen tasks of Yang et al. (2019), generated on the fly (nothing to download). The input is a
# fixation unit and two rings of direction-tuned units (two "modalities"); the output is a
# fixation unit and a response ring. The network must keep its fixation output high until the go
# cue (the fixation input switching off, or the stimulus itself in the reaction-time tasks), then
# point its response ring at the right direction: the stimulus (Go), its opposite (Anti), the
# stronger of two stimuli (DM), the stronger in the cued modality (Ctx-DM), the stronger summed
# over both (Multi-sensory DM), or — in the match tasks — respond only if two stimuli separated by
# a delay match (DMS) or differ (DNMS). A trial counts as correct if fixation is held until the
# response and the response points within 36° of the target; no-go trials must keep fixating.

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
# shared weights are the same for every pathway. With `matched = True` every modulated pathway
# gets exactly $2NK$ (then `both` uses a gain plus a symmetric rank-1 change).

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
# All networks of one size — every pathway, replicate and K — train **together**, as one stack of
# independent networks with batched matrix products (see `benchmarks/rnn_speed.py` for what that
# buys). Training stops when every network performs at criterion on every one of its tasks, or
# after the step budget. A network's **capacity** is the largest K it solved.
#
# *At this scale, capacity means "within this training budget"*: a network that fails might
# succeed with more steps. The `paper` profile trains far longer, with Yang et al.'s 20 ms time
# step, sizes up to 256 and all 13 tasks.

# %%
sweep, stacks = multitask.packing_sweep(
    size_list, k_list, setup.pathways, cfg.replicates, setup.task_config, setup.train_config,
    device=dev, rnn_kw=setup.rnn_kw,
)
sweep.capacity_table()

# %%
# NBVAL_IGNORE_OUTPUT
multitask.training_time_table(stacks)

# %%
fig = plots.capacity_figure(sweep.capacity(), size_list, list(setup.pathways), max_k=max(k_list))
plots.save_figure(fig, cfg, "capacity")
plt.show()

# %% [markdown]
# Where does packing stop? The fraction of networks that solved all of their first K tasks, for each K:

# %%
sweep.solved_table()

# %% [markdown]
# ## The answer, computed

# %%
answer = multitask.packing_answer(sweep)
answer.mean_capacity_table()

# %%
answer.conclusions()

# %% [markdown]
# **Reading the result.** The sentences above are computed from this run. Context parameters differ
# between pathways (`rule` has half as many as `excitability` and `synaptic`, `both` twice), so
# a pathway that packs more may simply have more to learn with; rerun with `matched=True` to give
# every modulated pathway the same budget. Small networks are where packing is hard, which is
# why the quick profile uses N = 8-32; whether the ordering of the pathways holds at N = 64-256
# and with all 13 tasks is what the `paper` profile measures.
#
# ## Look inside
#
# Pick a size, a pathway and a task: one trial of the network (first replicate, trained on the
# most tasks) against its target. The cell before draws the default view.

# %%
model, result = stacks[size_list[-1]]
s, tasks_k = multitask.largest_task_network(result, setup.pathways[-1])
batch, outputs = multitask.network_trials(model, s, tasks_k[0], 0, setup.task_config)
fig = plots.trial_output(outputs, batch, title=f"N={size_list[-1]}, {setup.pathways[-1]} pathway, task {tasks_k[0]}")
plots.save_figure(fig, cfg, "trial_output")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
widgets.packing_widget(stacks, setup.task_config)

# %% [markdown]
# ## Record the results

# %%
metrics = answer.metrics()
path = nm.results.record(
    cfg, metrics, device=dev, samples=answer.samples(), trained=sweep.training_check(), per_task=sweep.rows
)
print(nm.results.format_metrics(metrics))
