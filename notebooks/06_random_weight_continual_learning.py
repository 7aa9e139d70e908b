# %% [markdown]
# # 06 · Learning task after task on fixed random weights
#
# **Question.** A network learns a task, then another, then another. Ordinary training overwrites
# what the earlier tasks needed: *catastrophic forgetting*. Hong & Pavlic (2022), *Learning to
# Modulate Random Weights: Neuromodulation-inspired Neural Networks for Efficient Continual
# Learning* (arXiv 2204.04297), keep every weight **random and fixed** and learn, per task, only a
# small **context** that neuromodulates the hidden activity. Contexts of different tasks never
# touch each other, so nothing can be forgotten when the task is known — and each task costs only
# a few thousand numbers. How well does that work, and what does it cost against the continual-
# learning methods people use?
#
# **The network.** Input $x$ (a flattened image), a fixed sparse binary expansion $M$ ($H = 10D$
# hidden units, each summing $k = 7$ random inputs, like the Kenyon cells of the insect mushroom
# body), global inhibition and a ReLU: $h = \mathrm{ReLU}(Mx - \overline{Mx})$; a fixed random
# readout $W_R$; per task $t$ a learned context $c_t$ (one value per hidden unit) and a strength
# $s_t$: $\text{logits} = s_t\, W_R (c_t \odot h)$. Only $c_t, s_t$ are trained ($H + 1$ values).

# %% tags=["parameters"]
profile = "quick"  # type: str  smoke (seconds, tests), quick (laptop CPU, embedded data), paper (GPU, real data)
# None: the profile's value. Every other parameter can be set here too; all of them, their
# values and what is allowed: python -m neuromod_lib list 06
seed = None  # type: int  seed of every random draw
device = None  # type: str  where to compute
benchmark = None  # type: str  task sequence
n_tasks = None  # type: int  tasks in the sequence
methods = None  # type: list[str]  list of methods

# %%
# NBVAL_CHECK_OUTPUT
NOTEBOOK = "06_random_weight_continual_learning"
import functools

import matplotlib.pyplot as plt
import torch

import neuromod_lib as nm
from neuromod_lib import continual, plots, widgets
from neuromod_lib.models.random_weights import RandomWeightNet

cfg = nm.profiles.resolve(NOTEBOOK, profile, globals())
# every check before any training: the sequence (data present, task count), the network shape
method_list, budget, sequence = cfg.methods, cfg.budget(), cfg.sequence()
net_config = cfg.network(sequence)
dev = nm.device.prepare(cfg.device, cfg.seed)
print(f"{cfg.benchmark}: {len(sequence)} tasks of {len(sequence[0].y_train)} training / "
      f"{len(sequence[0].y_test)} test samples, {sequence.n_inputs} inputs, {sequence.n_classes} classes; "
      f"methods {', '.join(method_list)}")

# %%
# NBVAL_IGNORE_OUTPUT
print(nm.device.describe_device(dev))

# %% [markdown]
# ## The idea in one figure
#
# Left: a corner of the fixed expansion (each row: the 7 inputs one hidden unit sums). Middle: the
# hidden activity for one input. Right: two tasks' contexts re-weight that same activity
# differently — the only thing that differs between tasks. (Contexts here are freshly
# initialised; training shapes them.)

# %%
# NBVAL_CHECK_OUTPUT
demo = RandomWeightNet(net_config)
init = torch.Generator().manual_seed(cfg.seed)
for _ in range(2):
    demo.add_task(init)
with torch.no_grad():
    h = demo.features(sequence[0].x_test[:1])[0]
contexts = torch.stack([c.detach() for c in demo.contexts])
fig = plots.random_weight_idea(demo.expansion_matrix().cpu(), h, contexts)
plots.save_figure(fig, cfg, "random_weight_idea")
plt.show()
print(f"learned values per task: {demo.learned_parameters_per_task():,} ({demo.bytes_per_task():,} bytes); "
      f"a dense {net_config.n_inputs}-{net_config.n_hidden}-{net_config.n_classes} network: "
      f"{demo.dense_parameters():,} parameters ({4 * demo.dense_parameters():,} bytes)")

# %% [markdown]
# ### Exercise: write the modulated readout
#
# A task $t$ of this network learns only a context $c_t$ (one value per hidden unit) and a
# strength $s_t$; its logits are $s_t\,W_R\,(c_t \odot h)$ with the fixed random readout $W_R$.
# `ex.h` is the hidden activity `(B, H)`, `ex.contexts` `(T, H)` and `ex.strengths` `(T,)` the
# tasks' learned values, `ex.W_R` the readout `(C, H)` and `ex.task_ids` each sample's task `(B,)`.
# Write the logits `(B, C)`; the check compares them with the library's
# `modulation.random_weight_logits`, which `RandomWeightNet` calls.

# %%
ex = nm.exercises.start("random_weights")  # h (B, H) hidden activity, contexts (T, H) and strengths (T,) per task, W_R (C, H) the fixed readout, task_ids (B,)
yours = ...  # your code: an expression of ex's tensors
nm.exercises.check("random_weights", yours)

# %% [markdown]
# <details><summary><b>Solution</b> (click to open)</summary>
#
# ```python
# t = ex.task_ids
# yours = ex.strengths[t, None] * ((ex.h * ex.contexts[t]) @ ex.W_R.T)
# ```
#
# </details>

# %% [markdown]
# ## Learning the sequence, with every method
#
# Each method learns the tasks one after another on the same data and budget, and after each task
# is tested on every task seen so far. The task identity is given at training and test time
# (task-incremental). Baselines: **fine-tuning** a dense network of the same hidden width (one
# output head per task), **EWC** (online; a quadratic penalty weighted by the Fisher information),
# **SI** (synaptic intelligence), **supermasks** (fixed random dense weights, a learned binary mask
# per task, in the spirit of Supermasks in Superposition), and **joint** training on all tasks at
# once (an upper bound, not a continual method).
#
# **Hyperparameters, chosen on validation data.** A ranking means little if one method runs at its
# best setting and another at a default (untuned, SI at c = 0.5 behaves like fine-tuning). Every
# method gets the same search (`neuromod_lib.selection`): four values of one hyperparameter — the
# contexts' learning rate (random weights), the dense network's (fine-tuning, joint), EWC's λ, SI's
# c, the supermask's sparsity — each trained on the first three tasks with 80 % of their training
# sets and scored on the other 20 %: the average accuracy after the third task, so that learning
# and keeping both count (the protocol of Chaudhry et al. 2019). EWC and SI are fine-tuning plus a
# penalty: they train at fine-tuning's chosen learning rate and search their strength. The test sets are not touched
# until the chosen settings learn the whole sequence. Epochs and batch are the same for all.

# %%
from neuromod_lib import comparison, selection

selections = selection.select_all(method_list, sequence, budget, n_tasks=cfg.search_tasks,
                                  device=dev) if cfg.search else {}
configs = {m: selections[m].config if m in selections else budget for m in method_list}
selection.search_table(selections, n_tasks=cfg.search_tasks)

# %%
results = {m: continual.learn_sequence(m, sequence, configs[m], device=dev) for m in method_list}
fig = plots.accuracy_matrices(results)
plots.save_figure(fig, cfg, "accuracy_matrices")
plt.show()

# %%
comparison.continual_table(results)

# %%
# NBVAL_IGNORE_OUTPUT
timing = comparison.continual_timings(results)  # recorded apart from the metrics: they depend on the machine
comparison.continual_timing_table(results)

# %% [markdown]
# ## No forgetting, by construction
#
# A finished task's context is frozen and no other parameter of the network is ever trained, so
# its accuracy cannot change while later tasks are learned. Checked, not assumed: every column of
# the random-weight accuracy matrix must be *exactly* constant from the row its task was learned on.

# %%
# NBVAL_CHECK_OUTPUT
rw = results.get("random_weights")
zero_forgetting = comparison.forgets_nothing(rw)  # None without random weights
comparison.forgetting_note(rw)

# %% [markdown]
# ## When the task is not given
#
# At test time the network may not be told the task. SupSup's trick: run every task's context and
# pick the one whose prediction is most confident (lowest entropy). Two protocols, which answer
# different questions:
#
# - **per test batch** (SupSup's own): a batch of test samples comes from one task, and one task is
#   inferred for the whole batch from the mean entropy. The scenario is still task-incremental —
#   the task changes between batches, not within one;
# - **per sample**: each test sample on its own, which is close to domain-incremental learning.
#
# Every method here was trained with the task id given, so neither row is comparable with the
# domain- or class-incremental results of methods trained for those scenarios. This is where
# random-weight contexts are tested hardest: all tasks share the same features, so only the
# contexts tell them apart.

# %%
comparison.inference_table(results)

# %% [markdown]
# ## The answer, computed

# %%
dense_bytes = 4 * demo.dense_parameters()  # a dense network of the same shape, 4 bytes per parameter
verdicts = comparison.continual_verdicts(results, zero_forgetting)
comparison.continual_answer(results, dense_bytes, zero_forgetting)

# %% [markdown]
# **Reading the result** (numbers of the committed run: seed 0, quick profile, ten rotated-digit
# tasks). Zero forgetting with a known task is a property of the construction and holds exactly
# (supermasks too: each task keeps its own mask).
#
# - *Accuracy within 5 points of the best continual dense baseline*: **supported here, on one
#   seed**. With every method's hyperparameter chosen on validation data, EWC (λ = 1000) reaches
#   95.4 % and SI (c = 50) 94.8 %, forgetting 0.5 and 1.2 points; random weights reach 93.5 %,
#   1.8 points behind EWC, forgetting nothing. Untuned (this notebook's earlier version: λ = 100,
#   c = 0.5, every default learning rate), random weights (90.8 %) were *ahead* of EWC (89.6 %) and
#   SI (87.7 %, exactly fine-tuning's): the defaults, not the methods, made that ranking. Whether the
#   1.8 points hold across seeds is for the report's gate (`python -m neuromod_lib run 06 -p seed=1`, …).
# - *At least 100× less storage per task*: **not supported as the field counts storage**. One more
#   task adds 2 564 bytes to random weights and 25 640 bytes (a head) to a dense continual baseline:
#   10× — about the number of classes, since a head holds C values per hidden unit and a context one
#   — on digits and on MNIST alike. The paper's ≈ 100× compares with storing a whole dense network
#   per task (75× here, ≈ 800× on MNIST), which no continual baseline does; the baselines' fixed
#   cost (the trunk, plus EWC's Fisher and anchor) is in the table's last column.
# - *Task inferred, not given*: per test batch (SupSup's protocol), supermasks find the task of
#   every batch and keep their accuracy; random-weight contexts on rotated digits find it for 40 %
#   of the batches only, and lose half their accuracy.
#
# The `paper` profile runs Permuted MNIST (and Rotated / Split MNIST with `benchmark=`) through
# `torchvision.datasets.MNIST`.
#
# ## Try it
#
# Choose a benchmark, the number of tasks and a method: its accuracy matrix, trained when you ask
# (digits and MNIST-1D sequences train in seconds).

# %%
compute = functools.cache(comparison.continual_trainer(budget, seed=cfg.seed, max_train=cfg.max_train or None,
                                                     device=dev))  # each choice trains once
fig = plots.accuracy_matrices({method_list[0]: results[method_list[0]]}, columns=1)
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
widgets.continual_widget(compute, comparison.embedded_benchmarks(), method_list, n_tasks=min(cfg.n_tasks, 5))

# %%
metrics = comparison.continual_metrics(results)
metrics.update(selection.selection_metrics(selections))
metrics.update(verdicts)
trained = comparison.reference_check(results, sequence.n_classes)
path = nm.results.record(cfg, metrics, device=dev, timings=timing, samples=comparison.continual_samples(results),
                         trained=trained, per_task=comparison.continual_per_task(results))  # timings: recorded apart, not printed
print(nm.results.format_metrics(metrics))
