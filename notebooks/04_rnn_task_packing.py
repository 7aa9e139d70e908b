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
# None: the profile's value. Every parameter, its values and what is allowed: python -m neuromod_lib list 04
seed = None  # type: int  seed of every random draw
device = None  # type: str  where to compute
results_dir = None  # type: str  folder for the records (relative to notebooks/): $NEUROMOD_RESULTS_DIR if set, else ../results
pathways = None  # type: list[str]  comma list of context pathways: rule, excitability, synaptic, both
replicates = None  # type: int  networks (seeds) per condition
steps = None  # type: int  training steps at most (a multiple of eval_every)
eval_every = None  # type: int  steps between evaluations
batch = None  # type: int  trials per network per step
lr = None  # type: float  Adam learning rate
criterion = None  # type: float  performance every task must reach
eval_trials = None  # type: int  evaluation trials per task
dt = None  # type: float  time step (ms)
tau = None  # type: float  neuronal time constant (ms), at least dt
n_ring = None  # type: int  units per stimulus / response ring
activation = None  # type: str  f
rec_noise = None  # type: float  recurrent noise sigma_rec (Yang et al.: 0.05)
input_noise = None  # type: float  input noise sigma_x
synaptic = None  # type: str  form of the synaptic pathway
rank = None  # type: int  rank of the low-rank synaptic change per task
matched = None  # type: bool  give every modulated pathway the same 2NK context parameters
sizes = None  # type: list[int]  comma list of network sizes N
ks = None  # type: list[int]  comma list of task counts K (first K tasks of the packing order)

# %%
# NBVAL_CHECK_OUTPUT
NOTEBOOK = "04_rnn_task_packing"
import matplotlib.pyplot as plt
import torch

import neuromod_lib as nm
from neuromod_lib import multitask, plots, widgets
from neuromod_lib.data import tasks as cognitive
from neuromod_lib.models.rnn import ModulatedRNN

cfg = nm.profiles.resolve(
    NOTEBOOK, profile, seed=seed, device=device, results_dir=results_dir,
    pathways=pathways, replicates=replicates, steps=steps, eval_every=eval_every, batch=batch, lr=lr,
    criterion=criterion, eval_trials=eval_trials, dt=dt, tau=tau, n_ring=n_ring, activation=activation,
    rec_noise=rec_noise, input_noise=input_noise, synaptic=synaptic, rank=rank, matched=matched,
    sizes=sizes, ks=ks,
)
# every check before any training: pathways, dt <= tau, the grid of sizes and task counts
setup = multitask.notebook_setup(cfg)
size_list = list(multitask.parse_list(cfg.sizes, "sizes", int))
k_list = sorted(multitask.parse_list(cfg.ks, "ks", int))
multitask.check_grid(size_list, k_list, cfg.replicates, len(cognitive.TASKS))
dev = nm.device.pick_device(cfg.device)
nm.device.seed_everything(cfg.seed)
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
print(f"N = {size_list[-1]}, K = {max(k_list)}: shared parameters {probe.shared_parameters():,}")
for pathway, count in zip(setup.pathways, probe.context_parameters(), strict=True):
    print(f"  {pathway:<13} context parameters {count:>7,}")

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
capacity = sweep.capacity()
print(f"{'N':>5} " + "".join(f"{p:>22}" for p in setup.pathways))
for n in size_list:
    cells = [f"{sum(capacity[(n, p)]) / len(capacity[(n, p)]):.2f} {str(capacity[(n, p)]):>12}" for p in setup.pathways]
    print(f"{n:>5} " + "".join(f"{c:>22}" for c in cells))
print("(mean capacity, and per replicate)")

# %%
# NBVAL_IGNORE_OUTPUT
for n, (model, result) in stacks.items():
    print(f"N = {n}: {model.n_networks} networks trained together for {result.history_steps[-1]} steps "
          f"in {result.seconds:.0f} s")

# %%
fig = plots.capacity_figure(capacity, size_list, list(setup.pathways), max_k=max(k_list))
plt.show()

# %% [markdown]
# Which tasks failed? The fraction of networks that solved each K, and the hardest task's performance:

# %%
print(f"{'N':>5} {'pathway':<13}" + "".join(f"{'K=' + str(k):>8}" for k in k_list))
for n in size_list:
    for p in setup.pathways:
        solved = [sum(r["solved"] for r in sweep.rows if (r["n_neurons"], r["pathway"], r["k"]) == (n, p, k))
                  / cfg.replicates for k in k_list]
        print(f"{n:>5} {p:<13}" + "".join(f"{s:>8.2f}" for s in solved))

# %% [markdown]
# ## The answer, computed

# %%
mean_capacity = {p: sum(sum(capacity[(n, p)]) / cfg.replicates for n in size_list) / len(size_list)
                 for p in setup.pathways}
best = max(mean_capacity, key=mean_capacity.get)
for p, value in mean_capacity.items():
    print(f"{p:<13} mean capacity over sizes {value:.2f}")
print(f"Packs the most tasks: {best}.")
singles = [p for p in ("excitability", "synaptic") if p in mean_capacity]
if "both" in mean_capacity and singles:
    synergy = all(
        sum(capacity[(n, "both")]) >= max(sum(capacity[(n, p)]) for p in singles) for n in size_list
    )
    print(f"Both pathways together pack at least as many tasks as the better single pathway at every N: {synergy}.")
else:
    synergy = None
grows = all(
    sum(capacity[(a, p)]) <= sum(capacity[(b, p)]) for p in setup.pathways for a, b in zip(size_list, size_list[1:], strict=False)
)
print(f"Capacity grows (never shrinks) with N for every pathway: {grows}.")

# %% [markdown]
# **Reading the result.** The lines above are computed from this run. Context parameters differ
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
tasks_k = max(result.tasks, key=len)
s = next(i for i, (p, t) in enumerate(zip(result.pathways, result.tasks, strict=True))
         if p == setup.pathways[-1] and t == tasks_k)
batch, outputs = multitask.network_trials(model, s, tasks_k[0], 0, setup.task_config)
fig = plots.trial_output(outputs, batch, title=f"N={size_list[-1]}, {setup.pathways[-1]} pathway, task {tasks_k[0]}")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
widgets.packing_widget(stacks, setup.task_config)

# %%
metrics = {f"capacity_N{n}_{p}": round(sum(capacity[(n, p)]) / cfg.replicates, 2)
           for n in size_list for p in setup.pathways}
metrics.update({f"mean_capacity_{p}": round(v, 2) for p, v in mean_capacity.items()})
metrics.update({"best_pathway": best, "both_at_least_best_single": synergy, "capacity_grows_with_n": grows})
samples = {}
if "both" in setup.pathways and singles:
    samples["both_minus_best_single_capacity"] = [
        sum(capacity[(n, "both")][r] - max(capacity[(n, p)][r] for p in singles) for n in size_list) / len(size_list)
        for r in range(cfg.replicates)
    ]
k_min, n_max = min(k_list), max(size_list)
solved_first = {p: sum(r["solved"] for r in sweep.rows if (r["n_neurons"], r["pathway"], r["k"]) == (n_max, p, k_min))
                for p in setup.pathways}
trained = (all(2 * v >= cfg.replicates for v in solved_first.values()),
           f"at N = {n_max}, at least half the networks of every pathway solve K = {k_min}: "
           + ", ".join(f"{p} {v}/{cfg.replicates}" for p, v in solved_first.items()))
path = nm.results.record(cfg, metrics, device=dev, samples=samples, trained=trained, per_task=sweep.rows)
print(nm.results.format_metrics(metrics))
