# %% [markdown]
# # 07 · Every modulation family on the same tasks
#
# **Question.** Notebooks 01–06 reproduced three papers, each with its own kind of
# neuromodulation, its own tasks and its own yardstick. None of them answers the question a
# modeller actually faces: *given a new problem, which kind of modulation should I use?* Here every
# family learns the **same task sets** through **one interface** — a context vector $c$ (one-hot
# for a known task, a mixture when the task is ambiguous, a noisy vector otherwise) that changes a
# shared network — and is measured with **one yardstick**.
#
# | family | what the context changes | from |
# |---|---|---|
# | deterministic gain | $h = \mathrm{relu}(Wx+b)\odot e^{cG}$ | Boeshertz et al. (notebook 01) |
# | stochastic gain | $h = \mathrm{relu}(Wx+b)\odot e^{g m - \sigma_m^2 g^2/2}$, $g = cG$, read out by the modulator-guided readout | Boeshertz et al. (notebook 02) |
# | excitability | $h = \mathrm{relu}(e^{cG}\odot(Wx+b) + cB)$: gain and bias of every unit's input | Vedovati & Ching (notebooks 04–05) |
# | synaptic | $h = \mathrm{relu}((W + \sum_k c_k U_k V_k^\top)x + b)$: a rank-$r$ change of the weights | Vedovati & Ching (notebooks 04–05) |
# | random weights | fixed sparse random $M$ and readout; $\text{logits} = W_R\,(\sum_k c_k s_k c^{(k)}) \odot h$ | Hong & Pavlic (notebook 06) |
# | *finetune* (reference) | nothing: the dense network is retrained on each task | notebook 06 |
#
# **The protocol (our design; no paper compares families).** Tasks arrive one after another. The
# shared layer $W, b$ (as wide as the random-weight network) and **one shared readout** learn the
# first task together with its modulation, then freeze; every later task learns only its
# modulation. So after the first task the context alone tells the network which task it is doing —
# as in the RNNs and the random-weight network. (`readout="per_task"` gives each task its own head
# instead, the protocol of notebooks 01–03, where the head carries part of the task.) The RNN
# families learn the cognitive tasks of notebooks 04–05 jointly, as there.
#
# **The yardstick.** Accuracy after the last task; values learned and bytes stored per task;
# training time per task; forgetting; and robustness: the accuracy kept when task $a$ is shown with
# the ambiguous context $(1-\lambda)e_a + \lambda e_b$ or the noisy one $e_a + \sigma\xi$.

# %% tags=["parameters"]
profile = "quick"  # type: str  smoke (seconds, tests), quick (laptop CPU, embedded data), paper (GPU, real data)
# None: the profile's value. Every parameter, its values and what is allowed: python -m neuromod_lib list 07
seed = None  # type: int  seed of every random draw
device = None  # type: str  where to compute
results_dir = None  # type: str  folder for the records (relative to notebooks/): $NEUROMOD_RESULTS_DIR if set, else ../results
task_sets = None  # type: list[str]  comma list of task sets: attributes, digits, cognitive
families = None  # type: list[str]  comma list of modulation families (and the finetune reference)
dataset = None  # type: str  image data set
data_root = None  # type: str  folder of the real data sets (paper profile)
verify_data = None  # type: bool  check the real data's published MD5 sums
n_images = None  # type: int  images to use (0: all)
image_size = None  # type: int  image side in pixels
backbone = None  # type: str  backbone network
weights = None  # type: str  local ImageNet state_dict file for resnet18/50 ('': none)
pretrain_epochs = None  # type: int  backbone pretraining epochs
n_attributes = None  # type: int  held-out attribute tasks
attribute_expansion = None  # type: float  shared width per image feature (H is expansion x D)
benchmark = None  # type: str  digit task sequence
n_digit_tasks = None  # type: int  tasks in the digit sequence
max_train = None  # type: int  training samples per task (0: all)
digit_expansion = None  # type: float  shared width per pixel (H is expansion x D)
epochs = None  # type: int  epochs per task
batch = None  # type: int  batch size
lr = None  # type: float  Adam learning rate of modulations (and per-task heads)
trunk_lr = None  # type: float  Adam learning rate of the shared layer (first task only)
readout = None  # type: str  one readout for all tasks, or a head per task
rank = None  # type: int  synaptic rank per task (0: matched to excitability's 2H values)
sigma_m = None  # type: float  std of the stochastic modulator m
k = None  # type: int  inputs summed by each random-weight hidden unit (at most the inputs)
rw_lr = None  # type: float  RMSprop learning rate of the random-weight contexts
dense_lr = None  # type: float  Adam learning rate of the finetune reference
rnn_tasks = None  # type: list[str]  comma list of cognitive tasks
rnn_neurons = None  # type: int  RNN size N
rnn_replicates = None  # type: int  RNNs per family
rnn_steps = None  # type: int  RNN training steps at most
ambiguity_lambda = None  # type: float  weight of the wrong task in the ambiguous context (1-l) e_a + l e_b
context_noise = None  # type: float  sigma of the noisy context e_a + sigma xi

# %%
# NBVAL_CHECK_OUTPUT
NOTEBOOK = "07_modulation_families_compared"
import matplotlib.pyplot as plt
import torch

import neuromod_lib as nm
from neuromod_lib import adaptation, plots, setups, widgets
from neuromod_lib import families as fam
from neuromod_lib.data import sequences

cfg = nm.profiles.resolve(
    NOTEBOOK, profile, seed=seed, device=device, results_dir=results_dir, task_sets=task_sets,
    families=families, dataset=dataset, data_root=data_root, verify_data=verify_data, n_images=n_images,
    image_size=image_size, backbone=backbone, weights=weights, pretrain_epochs=pretrain_epochs,
    n_attributes=n_attributes, attribute_expansion=attribute_expansion, benchmark=benchmark,
    n_digit_tasks=n_digit_tasks, max_train=max_train, digit_expansion=digit_expansion, epochs=epochs,
    batch=batch, lr=lr, trunk_lr=trunk_lr, readout=readout, rank=rank, sigma_m=sigma_m, k=k, rw_lr=rw_lr,
    dense_lr=dense_lr, rnn_tasks=rnn_tasks, rnn_neurons=rnn_neurons, rnn_replicates=rnn_replicates,
    rnn_steps=rnn_steps, ambiguity_lambda=ambiguity_lambda, context_noise=context_noise,
)
plan = fam.plan(cfg)  # every check (names, lists, budgets) before any training
dev = nm.device.pick_device(cfg.device)
nm.device.seed_everything(cfg.seed)
print(f"task sets: {', '.join(plan.task_sets)}; families: {', '.join(plan.families)}; "
      f"{cfg.epochs} epochs per task, {cfg.readout} readout")

# %%
# NBVAL_IGNORE_OUTPUT
print(nm.device.describe_device(dev))

# %% [markdown]
# ## The task sets
#
# - **attributes** — the multi-attribute images of notebooks 01–02: a CNN pretrained on half of
#   the attributes is frozen; the held-out binary attributes are the tasks, learned one after
#   another from its pooled features.
# - **digits** — a continual digit sequence of notebook 06 (rotated digits: task $i$ is the
#   10-class problem rotated by $10i$ degrees).
# - **cognitive** — Yang et al.'s tasks of notebooks 04–05, for the families an RNN has
#   (excitability and synaptic modulation). Gains on a feedforward layer, stochastic comodulation
#   and random weights have no RNN form in these papers, so they sit this one out.

# %%
# NBVAL_CHECK_OUTPUT
sequences_ = {}
if "attributes" in plan.task_sets:
    setup = setups.attribute_setup(
        dataset=cfg.dataset, data_root=cfg.data_root, n_images=cfg.n_images, image_size=cfg.image_size,
        backbone=cfg.backbone, weights=cfg.weights, n_tasks=cfg.n_attributes,
        pretrain_config=adaptation.PretrainConfig(epochs=cfg.pretrain_epochs), seed=cfg.seed, device=dev,
        cache_dir=f"{cfg.results_dir}/cache", verify=cfg.verify_data,
    )
    sequences_["attributes"] = fam.feature_sequence(setup, device=dev)
if "digits" in plan.task_sets:
    sequences_["digits"] = sequences.make_sequence(
        cfg.benchmark, cfg.n_digit_tasks, seed=cfg.seed, root=cfg.data_root, max_train=cfg.max_train or None)
for name, seq in sequences_.items():
    sizes = [len(t.y_train) for t in seq.tasks]
    print(f"{name:<11} {len(seq.tasks)} tasks, {seq.n_inputs} inputs, {seq.n_classes} classes, "
          f"{min(sizes)}-{max(sizes)} training samples per task")
if "cognitive" in plan.task_sets:
    print(f"cognitive   {len(plan.rnn_tasks)} tasks ({', '.join(plan.rnn_tasks)}), RNNs of {plan.rnn_neurons} units, "
          f"{plan.rnn_replicates} per family")

# %% [markdown]
# ## One run per family and task set
#
# Every feedforward family goes through the same runner as notebook 06 (accuracy matrix after each
# task, forgetting, sizes, seconds), then through the two robustness tests. The RNNs of the
# cognitive set are trained as one stack.

# %%
rows, results = [], {}
for name, seq in sequences_.items():
    new_rows, results[name] = fam.run_sequence(name, seq, plan.families, plan.configs[name], plan, device=dev)
    rows += new_rows
if "cognitive" in plan.task_sets:
    rows += fam.run_cognitive(plan, plan.families, device=dev)


def cell(value, fmt):
    return "n/a" if value is None else format(value, fmt)


print(f"{'task set':<11}{'family':<20}{'accuracy %':>11}{'values/task':>12}{'bytes/task':>11}"
      f"{'forgetting':>11}{'ambiguous':>10}{'noisy':>7}")
for r in rows:
    print(f"{r.task_set:<11}{r.family:<20}{r.accuracy:>11.1f}{r.params_per_task:>12,}{r.bytes_per_task:>11,}"
          f"{cell(r.forgetting, '.1f'):>11}{cell(r.ambiguity, '.2f'):>10}{cell(r.noise, '.2f'):>7}")
print(f"(forgetting in accuracy points; ambiguous / noisy: fraction of the accuracy kept at "
      f"lambda = {plan.ambiguity_at:g} / sigma = {plan.sigmas[-1]:g}; training time in the next cell)")

# %%
# NBVAL_IGNORE_OUTPUT
print(f"{'task set':<11}{'family':<20}{'seconds per task':>17}")
for r in rows:
    print(f"{r.task_set:<11}{r.family:<20}{r.seconds_per_task:>17.3f}")
timing = {f"{r.task_set}__{r.family}__seconds_per_task": round(r.seconds_per_task, 4) for r in rows}
fastest = fam.needs(rows, include_time=True)["fastest training"]
for task_set, best in fastest.items():
    print(f"fastest to train on {task_set}: {', '.join(best)} (this machine)")

# %%
fig = plots.family_comparison(rows)
plt.show()

# %% [markdown]
# **Robustness, in detail.** The curves show the accuracy on task $a$ as the context slides
# towards the next task $b$ ($\lambda$ from 0 to 1; past 0.5 the wrong task dominates), and as
# Gaussian noise is added to it.

# %%
fig = plots.context_curves(rows)
plt.show()

# %% [markdown]
# ## Forgetting
#
# Every modulation family freezes what it shares after the first task and keeps one set of
# values per task, so — with the task given — nothing learned can change. The accuracy matrices
# show it: each column stays constant below the diagonal, while the fine-tuned network's columns
# fade.

# %%
show = "digits" if "digits" in results else next(iter(results), None)
if show is not None:
    fig = plots.accuracy_matrices(results[show], columns=3)
    plt.show()
feedforward = [r for r in rows if r.forgetting is not None]
family_forgetting = {(r.task_set, r.family): r.forgetting for r in feedforward if r.family in fam.FAMILIES}
constant = all(
    torch.equal(res.accuracy[j:, j], res.accuracy[j, j].expand(len(res.accuracy) - j))
    for by_family in results.values() for f, res in by_family.items() if f in fam.FAMILIES
    for j in range(len(res.accuracy))
)
families_forget_nothing = bool(family_forgetting) and all(v == 0 for v in family_forgetting.values()) and constant
finetune = [r.forgetting for r in feedforward if r.family == "finetune"]
finetune_forgets = bool(finetune) and min(finetune) > 0
print(f"modulation families: largest forgetting {max(family_forgetting.values(), default=0):.2f} points; "
      f"every column constant: {constant}")
if finetune:
    print(f"finetune forgets {', '.join(format(v, '.1f') for v in finetune)} points")

# %% [markdown]
# ## What the comparison teaches
#
# For each need, the family that does best on each task set — computed from the table above
# (ties share the place; the finetune reference does not compete; training time, which depends on
# the machine, is in the timing cell). Storage and robustness only matter for a family that works:
# for those needs only families within 10 accuracy points of the task set's most accurate family
# compete (a family near chance "keeps" its accuracy under any context).

# %%
best = fam.needs(rows)
for need, per_set in best.items():
    print(f"{need:<32}" + "; ".join(f"{s}: {', '.join(f)}" for s, f in per_set.items()))

def wins(need):
    """Families best on this need on every task set where they ran."""
    per_set = best[need]
    counts = {f: sum(f in v for v in per_set.values()) for f in plan.families}
    ran = {f: sum(any(r.family == f and r.task_set == s for r in rows) for s in per_set) for f in plan.families}
    return [f for f in plan.families if per_set and ran[f] and counts[f] == ran[f]]

accuracy_by_set = {s: max((r for r in rows if r.task_set == s and r.family in fam.FAMILIES),
                          key=lambda r: r.accuracy) for s in dict.fromkeys(r.task_set for r in rows)}
one_family_most_accurate = len({r.family for r in accuracy_by_set.values()}) == 1
storage = best["smallest storage per task"]
random_weights_smallest_storage = bool(storage) and all(
    v == ["random_weights"] for s, v in storage.items() if s != "cognitive") if "random_weights" in plan.families else None
print()
print("one family is the most accurate on every task set:", one_family_most_accurate)
for need in best:
    w = wins(need)
    print(f"{need}: " + (f"{', '.join(w)} wins on every task set it ran on" if w else "no family wins everywhere"))

# %% [markdown]
# ## Explore
#
# Choose a task set and the families to compare. The figure below is the panel's default view; the
# panel itself redraws live in Jupyter.

# %%
fig = plots.family_comparison(rows, task_sets=[rows[0].task_set])
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
widgets.families_widget(rows, list(dict.fromkeys(r.task_set for r in rows)), list(plan.families))

# %% [markdown]
# ## Caveats
#
# These are small, CPU-sized runs (`quick` profile) under one protocol of our own — tasks in
# sequence, the shared layer and readout learned on the first task and then frozen. Under another
# protocol the ranking can change: with a head per task (`readout="per_task"`), the heads carry part
# of the task, and the context has less to do — rerun with that parameter to measure it. The numbers above are what this run measured, no more;
# the `paper` profile repeats the comparison on CelebA, rotated MNIST and Yang et al.'s timing.

# %%
metrics = {f"{r.task_set}__{r.family}__{k}": v for r in rows for k, v in r.metrics().items()}
metrics.update(
    families_forget_nothing=families_forget_nothing,
    finetune_forgets=finetune_forgets,
    one_family_most_accurate=one_family_most_accurate,
    random_weights_smallest_storage=random_weights_smallest_storage,
    **{f"most_accurate_{s}": r.family for s, r in accuracy_by_set.items()},
    **{f"most_robust_ambiguity_{s}": ",".join(f) for s, f in best["robust to an ambiguous context"].items()},
    **{f"most_robust_noise_{s}": ",".join(f) for s, f in best["robust to a noisy context"].items()},
)
per_task = [{"task_set": r.task_set, "family": r.family, **r.metrics()} for r in rows]
path = nm.results.record(cfg, metrics, device=dev, timings=timing, per_task=per_task)  # timings: apart, not printed
print(nm.results.format_metrics(metrics))
