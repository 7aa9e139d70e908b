# %% [markdown]
# # 01 · Gain modulation: one frozen network, many tasks
#
# **Question.** A convolutional network has been trained on some tasks. New tasks arrive. Must we
# retrain it — or is it enough to turn up some of its channels and turn down others, one set of
# **multiplicative gains per task**, leaving every weight where it is?
#
# This is the starting point of Boeshertz, Haimerl & Savin (2023), *Task adaption by biologically
# inspired stochastic comodulation* (arXiv 2311.15053): fine-tuning a pretrained network by gain
# modulation. Each modulated channel $k$ of a feature map $x$ is multiplied by a learned per-task
# gain,
#
# $$ y_k = x_k \, e^{c_k}, $$
#
# so a task costs one number $c_k$ per modulated channel (plus its readout), against every weight
# of the network for full fine-tuning.
#
# **Protocol** (the same for every condition; our design choices are named):
# 1. Pretrain a backbone on one half of the binary attributes (even-numbered), then freeze it.
# 2. Adapt to the held-out attributes (odd-numbered) with: a linear **head only**; head +
#    **deterministic gains**; head + **FiLM** ($\gamma_k x_k + \beta_k$); head + task-specific
#    **squeeze-and-excitation** gains; and **full fine-tuning** of the backbone (shared by the
#    held-out tasks, one copy per seed). Same optimiser (Adam), step budget, batch and
#    evaluation for all; each task's test error is read at its best validation point.
# 3. Every (seed, task) pair is trained in the same batch (vectorised), over several seeds.
#
# The `quick` profile uses procedurally generated images with 24 known attributes (no download);
# the `paper` profile uses CelebA's 40 attributes with a ResNet-18 at 64×64 on a GPU.

# %% tags=["parameters"]
profile = "quick"  # type: str  smoke (seconds, tests), quick (laptop CPU, embedded data), paper (GPU, real data)
# None: the profile's value. Every parameter, its values and what is allowed: python -m neuromod_lib list 01
seed = None  # type: int  seed of every random draw
device = None  # type: str  where to compute
results_dir = None  # type: str  folder for the records (relative to notebooks/): $NEUROMOD_RESULTS_DIR if set, else ../results
dataset = None  # type: str  data set
data_root = None  # type: str  folder of the real data sets (paper profile)
verify_data = None  # type: bool  check the real data's published MD5 sums
n_images = None  # type: int  images to use (0: all)
image_size = None  # type: int  image side in pixels
weights = None  # type: str  local ImageNet state_dict file for resnet18/50 ('': none)
n_tasks = None  # type: int  held-out tasks to adapt to
pretrain_epochs = None  # type: int  backbone pretraining epochs
steps = None  # type: int  adaptation steps (all conditions)
eval_every = None  # type: int  steps between evaluations
batch_per_task = None  # type: int  samples per task per step
lr = None  # type: float  Adam learning rate of heads, gains, FiLM, SE
n_seeds = None  # type: int  adaptation seeds
sigma_m = None  # type: float  std of the shared modulator m (stochastic comodulation)
gain_sites = None  # type: str  where gains act: early, late, all, or a comma list of sites
backbone = None  # type: str  backbone network

# %%
# NBVAL_CHECK_OUTPUT
NOTEBOOK = "01_gain_modulation"
import matplotlib.pyplot as plt
import torch

import neuromod_lib as nm
from neuromod_lib import adaptation, plots, setups, widgets
from neuromod_lib.models import build_backbone

cfg = nm.profiles.resolve(
    NOTEBOOK, profile, seed=seed, device=device, results_dir=results_dir, dataset=dataset,
    data_root=data_root, verify_data=verify_data, n_images=n_images, image_size=image_size,
    weights=weights, n_tasks=n_tasks, pretrain_epochs=pretrain_epochs, steps=steps,
    eval_every=eval_every, batch_per_task=batch_per_task, lr=lr, n_seeds=n_seeds, sigma_m=sigma_m,
    gain_sites=gain_sites, backbone=backbone,
)
# every check before any training: sites on this backbone, a consistent budget
sites = adaptation.placement_sites(build_backbone(cfg.backbone), cfg.gain_sites)
budget = adaptation.AdaptConfig(
    sites=sites, steps=cfg.steps, eval_every=cfg.eval_every, batch_per_task=cfg.batch_per_task,
    lr=cfg.lr, sigma_m=cfg.sigma_m, seeds=tuple(range(cfg.seed, cfg.seed + cfg.n_seeds)),
)
dev = nm.device.pick_device(cfg.device)
nm.device.seed_everything(cfg.seed)
print(f"backbone {cfg.backbone}, gains at {', '.join(sites)}; {cfg.steps} steps x "
      f"{cfg.batch_per_task} samples per task, {cfg.n_seeds} seeds")

# %% [markdown]
# ## The tasks
#
# Each image carries 24 binary attributes whose evidence lives in different visual features:
# shape, size, position, colour, texture, count, background, lines, blur. Different tasks therefore
# need different channels of the network — the situation in which per-task gains can help. The
# backbone is pretrained on half of them; we adapt it to the others. (Pretraining runs once and
# is cached in `results/cache/`, so notebooks 02 and 03 reuse it.)

# %%
setup = setups.attribute_setup(
    dataset=cfg.dataset, data_root=cfg.data_root, n_images=cfg.n_images, image_size=cfg.image_size,
    backbone=cfg.backbone, weights=cfg.weights, n_tasks=cfg.n_tasks,
    pretrain_config=adaptation.PretrainConfig(epochs=cfg.pretrain_epochs), seed=cfg.seed, device=dev,
    cache_dir=f"{cfg.results_dir}/cache", verify=cfg.verify_data,
)
print(setup.summary())
print("pretraining tasks:", ", ".join(setup.pretrain_tasks.names))
print("held-out tasks:   ", ", ".join(setup.tasks.names))

# %%
first = setup.tasks.test[:16]
titles = [", ".join(n.replace("object_", "").replace("background_", "bg_")
                    for n, on in zip(setup.tasks.names, setup.tasks.labels[i], strict=True) if on == 1)[:40]
          for i in first.tolist()]
fig = plots.image_grid(setup.tasks.images[first], titles)
plt.show()

# %% [markdown]
# ## What does a gain do to a feature map, and to a decision?
#
# Take one test image and the first modulated layer. Below, the four most active channels, at gain 1
# (top) and after multiplying them by 2, 0.5, 2 and 0 (bottom); right, what the pretrained heads say
# about the pretraining attributes before (grey) and after (red). A handful of gains moves several
# decisions at once: the network's existing features are re-weighted, not re-learned.

# %%
image = setup.tasks.images[setup.tasks.test[0]]
site = sites[0]
with torch.no_grad():
    z = setup.backbone.prefix(adaptation.to_input(image[None], dev), site)
    activity = setup.backbone.site_module(site)(z)[0].mean(dim=(1, 2))
channels = activity.topk(4).indices.sort().values.tolist()
demo_gains = [2.0, 0.5, 2.0, 0.0]
fig = plots.gain_figure(*setup.gain_response(image, site, channels, demo_gains),
                        list(setup.pretrain_tasks.names), channels, demo_gains)
plt.show()

# %% [markdown]
# Move the sliders (live in JupyterLab): one gain per channel, the maps and the outputs redraw.

# %%
# NBVAL_IGNORE_OUTPUT
widgets.gain_widget(setup, image, site, channels)

# %% [markdown]
# ## Adapting to the held-out tasks
#
# Every condition gets the same budget. The table gives the mean test error over the held-out
# tasks (mean ± sd over seeds), the learnable parameters each new task costs, and how many steps
# each condition needs to reach the error that the head alone reaches at the end of its budget
# (the convergence question).

# %%
conditions = ["head_only", "deterministic_gain", "film", "se_gain", "full_finetune"]
runs = {c: adaptation.adapt(setup.backbone, setup.tasks, c, budget, device=dev) for c in conditions}
target = runs["head_only"].mean_error().mean().item()

print(f"{'condition':<20}{'test error (%)':>16}{'params / task':>15}{'steps to ' + format(target, '.1f') + '%':>16}")
for c, r in runs.items():
    row = r.row()
    reached = [s for s in r.steps_to(target) if s is not None]
    steps_txt = f"{sum(reached) / len(reached):.0f} ({len(reached)}/{len(r.seeds)})" if reached else "not reached"
    print(f"{c:<20}{row['error_mean']:>10.2f} ± {row['error_sd']:<4.2f}{row['params_per_task']:>15,}{steps_txt:>16}")

# %%
print("test error (%) per held-out task, mean over seeds")
print(f"{'task':<22}" + "".join(f"{c[:12]:>13}" for c in conditions))
for t, name in enumerate(setup.tasks.names):
    print(f"{name:<22}" + "".join(f"{runs[c].test_error[:, t].mean().item():>13.1f}" for c in conditions))

# %%
fig = plots.learning_curves(list(runs.values()), target=target)
plt.show()

# %% [markdown]
# ## The answer, computed

# %%
err = {c: r.mean_error() for c, r in runs.items()}  # per seed
gains_beat_head_only = bool((err["deterministic_gain"] < err["head_only"]).all())
gap = (err["head_only"] - err["full_finetune"]).mean().item()
gap_closed = (err["head_only"] - err["deterministic_gain"]).mean().item() / gap if gap > 0 else float("nan")
head_params = runs["head_only"].trainable_per_task
gain_params = runs["deterministic_gain"].trainable_per_task - head_params
full_params = runs["full_finetune"].trainable_per_task - head_params
print(f"Deterministic gains {'beat' if gains_beat_head_only else 'do not beat'} the head-only baseline on every seed "
      f"({err['deterministic_gain'].mean():.2f}% vs {err['head_only'].mean():.2f}%).")
print(f"They close {100 * gap_closed:.0f}% of the gap between head-only and full fine-tuning "
      f"({err['full_finetune'].mean():.2f}%), with {gain_params:,} gain parameters per task "
      f"instead of {full_params:,} fine-tuned weights ({full_params / gain_params:.0f}x fewer).")
best = min(err, key=lambda c: err[c].mean().item())
print(f"Lowest error: {best}.")

# %% [markdown]
# **Reading the result.** Per-task gains on a frozen backbone are a cheap adaptation: a few
# numbers per channel re-weight features the network already has. How much of the gap to full
# fine-tuning they close depends on how much the held-out tasks can reuse the pretrained
# features — tasks whose evidence the backbone never needed (see the per-task table) stay hard
# for every condition that keeps the weights fixed. Notebook 02 asks whether making the gains
# *stochastic* helps further, and notebook 03 how the answer depends on the backbone and on
# where the gains act.

# %%
metrics = {f"{c}_error": round(err[c].mean().item(), 2) for c in conditions}
metrics.update({
    "gains_beat_head_only": gains_beat_head_only,
    "gap_closed_by_gains": round(gap_closed, 3),
    "gain_params_per_task": gain_params,
    "full_params_per_task": full_params,
})
per_task = [
    {"condition": c, "seed": s, "task": task, "test_error": runs[c].test_error[i, t].item()}
    for c in runs for i, s in enumerate(runs[c].seeds) for t, task in enumerate(setup.tasks.names)
]
pretrain_mean = sum(setup.pretrain_error.values()) / len(setup.pretrain_error)
head_mean = runs["head_only"].mean_error().mean().item()
trained = (pretrain_mean < 25.0 and head_mean < 40.0,
           f"pretraining validation error {pretrain_mean:.1f}% < 25% and head-only test error "
           f"{head_mean:.1f}% < 40% (chance 50%)")
samples = {"gain_minus_head_only_error": (err["deterministic_gain"] - err["head_only"]).tolist()}
path = nm.results.record(cfg, metrics, device=dev, samples=samples, trained=trained, per_task=per_task)
print(nm.results.format_metrics(metrics))
