# %% [markdown]
# # 03 · Architecture study: which backbone, and where should the gains act?
#
# **Question.** Gains re-weight features a frozen network already has. So how well they adapt it
# should depend on *which* features it has (the backbone: plain ConvNet or ResNet, shallow or
# deep) and on *where* the gains act: **early** layers (edges, colours), **late** layers (parts,
# objects), or **all**. Boeshertz, Haimerl & Savin (2023) study this dependence on CIFAR-100; here
# the same protocol runs on a generated two-level data set with the same structure (20
# superclasses × 5 classes).
#
# **Protocol (design choices).** Each superclass is a task: tell apart its 5 fine classes. The
# backbone is pretrained on the first superclasses (one head each), frozen, and adapted to the
# held-out superclasses with deterministic per-task gains at each placement, against the
# head-only baseline — for every backbone, with the same budget and seeds. In the generated data
# the 5 classes of a superclass differ along one feature that depends on the superclass (colour,
# size, position, stripe frequency or count), so different tasks need different features.

# %% tags=["parameters"]
profile = "quick"  # type: str  smoke (seconds, tests), quick (laptop CPU, embedded data), paper (GPU, real data)
# None: the profile's value. Every parameter, its values and what is allowed: python -m neuromod_lib list 03
seed = None  # type: int  seed of every random draw
device = None  # type: str  where to compute
results_dir = None  # type: str  folder for the records (relative to notebooks/): $NEUROMOD_RESULTS_DIR if set, else ../results
dataset = None  # type: str  data set
data_root = None  # type: str  folder of the real data sets (paper profile)
verify_data = None  # type: bool  check the real data's published MD5 sums
n_images = None  # type: int  images to use (0: all)
weights = None  # type: str  local ImageNet state_dict file for resnet18/50 ('': none)
n_tasks = None  # type: int  held-out superclasses
pretrain_epochs = None  # type: int  backbone pretraining epochs
steps = None  # type: int  adaptation steps
eval_every = None  # type: int  steps between evaluations
batch_per_task = None  # type: int  samples per task per step
lr = None  # type: float  Adam learning rate of heads, gains, FiLM, SE
n_seeds = None  # type: int  adaptation seeds
sigma_m = None  # type: float  std of the shared modulator m (stochastic comodulation)
image_size = None  # type: int  image side in pixels (CIFAR-100 is 32)
n_pretrain = None  # type: int  superclasses that pretrain the backbone
backbones = None  # type: list[str]  comma list of backbones
placements = None  # type: list[str]  comma list of early, late, all

# %%
# NBVAL_CHECK_OUTPUT
NOTEBOOK = "03_architecture_study"
import dataclasses

import matplotlib.pyplot as plt
import torch

import neuromod_lib as nm
from neuromod_lib import adaptation, plots, setups
from neuromod_lib.models import build_backbone

cfg = nm.profiles.resolve(
    NOTEBOOK, profile, seed=seed, device=device, results_dir=results_dir, dataset=dataset, data_root=data_root,
    verify_data=verify_data, n_images=n_images, weights=weights, n_tasks=n_tasks,
    pretrain_epochs=pretrain_epochs, steps=steps, eval_every=eval_every, batch_per_task=batch_per_task, lr=lr,
    n_seeds=n_seeds, sigma_m=sigma_m, image_size=image_size, n_pretrain=n_pretrain, backbones=backbones,
    placements=placements,
)
backbone_names = [b.strip() for b in cfg.backbones.split(",") if b.strip()]
placement_names = [p.strip() for p in cfg.placements.split(",") if p.strip()]
# every check before any training: each backbone exists, takes the images, has each placement
plan = {}
for name in backbone_names:
    net = build_backbone(name)
    net.check_input(cfg.image_size)
    plan[name] = {p: adaptation.placement_sites(net, p) for p in placement_names}
budget = adaptation.AdaptConfig(
    sites=(), steps=cfg.steps, eval_every=cfg.eval_every, batch_per_task=cfg.batch_per_task, lr=cfg.lr,
    sigma_m=cfg.sigma_m, seeds=tuple(range(cfg.seed, cfg.seed + cfg.n_seeds)),
)
dev = nm.device.pick_device(cfg.device)
nm.device.seed_everything(cfg.seed)
for name, where in plan.items():
    print(f"{name:<14}" + "; ".join(f"{p}: {', '.join(s)}" for p, s in where.items()))


# %% [markdown]
# ## The tasks
#
# Below, one image of each of the 5 classes of four superclasses (one row each). Within a row,
# only one feature changes — a different one in each row.

# %%
def superclass_examples(split, tasks):
    picks, titles = [], []
    for name in tasks:
        column = split.names.index(name)
        for k in range(split.n_classes):
            i = (split.labels[:, column] == k).nonzero()[0].item()
            picks.append(i)
            titles.append(f"{name}\nclass {k}" if k == 0 else f"class {k}")
    return split.images[picks], titles


first = setups.hierarchy_setup(
    dataset=cfg.dataset, data_root=cfg.data_root, n_images=cfg.n_images, image_size=cfg.image_size,
    backbone=backbone_names[0], weights=cfg.weights, n_pretrain=cfg.n_pretrain, n_tasks=cfg.n_tasks,
    pretrain_config=adaptation.PretrainConfig(epochs=cfg.pretrain_epochs), seed=cfg.seed, device=dev,
    cache_dir=f"{cfg.results_dir}/cache", verify=cfg.verify_data,
)
print(first.summary())
images, titles = superclass_examples(first.tasks, first.tasks.names[:4])
fig = plots.image_grid(images, titles, columns=first.tasks.n_classes)
plt.show()

# %% [markdown]
# ## Backbone × placement

# %%
error = torch.full((len(backbone_names), len(placement_names) + 1), float("nan"))
params_per_task = {}
per_seed = {}  # (backbone, column) -> test error per seed
pretrain_error = {}
for b, name in enumerate(backbone_names):
    setup = first if b == 0 else setups.hierarchy_setup(
        dataset=cfg.dataset, data_root=cfg.data_root, n_images=cfg.n_images, image_size=cfg.image_size,
        backbone=name, weights=cfg.weights, n_pretrain=cfg.n_pretrain, n_tasks=cfg.n_tasks,
        pretrain_config=adaptation.PretrainConfig(epochs=cfg.pretrain_epochs), seed=cfg.seed, device=dev,
        cache_dir=f"{cfg.results_dir}/cache", verify=cfg.verify_data,
    )
    pretrain_error[name] = sum(setup.pretrain_error.values()) / len(setup.pretrain_error)
    head = adaptation.adapt(setup.backbone, setup.tasks, "head_only", budget, device=dev)
    error[b, 0] = head.mean_error().mean()
    per_seed[(name, "head only")] = head.mean_error()
    for p, placement in enumerate(placement_names):
        run = adaptation.adapt(setup.backbone, setup.tasks, "deterministic_gain",
                               dataclasses.replace(budget, sites=plan[name][placement]), device=dev)
        error[b, p + 1] = run.mean_error().mean()
        per_seed[(name, f"gains {placement}")] = run.mean_error()
        params_per_task[(name, placement)] = run.trainable_per_task - head.trainable_per_task

columns = ["head only", *(f"gains {p}" for p in placement_names)]
print(f"{'backbone':<14}{'pretrain err':>13}" + "".join(f"{c:>14}" for c in columns))
for b, name in enumerate(backbone_names):
    print(f"{name:<14}{pretrain_error[name]:>12.1f}%" + "".join(f"{e:>13.2f}%" for e in error[b].tolist()))
print("\ngain parameters per task:")
for name in backbone_names:
    print(f"{name:<14}" + "".join(f"{p + ': ' + format(params_per_task[(name, p)], ','):>18}" for p in placement_names))

# %%
fig = plots.heatmap(error, backbone_names, columns,
                    title="held-out test error (%), mean over tasks and seeds")
plt.show()

# %% [markdown]
# ## The answer, computed

# %%
gain_cols = error[:, 1:]
best_placement = {name: placement_names[gain_cols[b].argmin().item()] for b, name in enumerate(backbone_names)}
gains_help = {name: bool(gain_cols[b].min() < error[b, 0]) for b, name in enumerate(backbone_names)}
best_backbone = backbone_names[gain_cols.min(1).values.argmin().item()]
for name in backbone_names:
    print(f"{name}: best placement {best_placement[name]}; gains "
          f"{'improve on' if gains_help[name] else 'do not improve on'} the head alone.")
agree = len(set(best_placement.values())) == 1
print(f"Best backbone for gain adaptation: {best_backbone}. "
      f"The best placement is {'the same' if agree else 'not the same'} for every backbone.")

# %% [markdown]
# **Reading the result.** The printed lines are computed from this run. A placement wins when the
# features it re-weights are the ones the held-out tasks need and the layers after it can still
# turn the re-weighting into a different decision; gains on the very last layer mostly duplicate
# what the linear head can already do, while early gains act on generic features. At this scale
# (small backbones, generated data, a CPU budget) differences between backbones also reflect how
# well each was pretrained (first column). The `paper` profile runs the same study on CIFAR-100
# with ResNet-18/50 on a GPU.

# %%
metrics = {f"{name}_{col.replace(' ', '_')}_error": round(error[b, j].item(), 2)
           for b, name in enumerate(backbone_names) for j, col in enumerate(columns)}
metrics.update({f"{name}_best_placement": best_placement[name] for name in backbone_names})
metrics.update({"best_backbone": best_backbone, "same_best_placement": agree,
                "gains_help_every_backbone": all(gains_help.values())})
per_task = [{"backbone": b, "condition": col, "seed": s, "test_error": v}
            for (b, col), values in per_seed.items() for s, v in zip(budget.seeds, values.tolist(), strict=True)]
# per seed: the backbone where gains (at its best placement) help least
worst = torch.stack([per_seed[(name, f"gains {best_placement[name]}")] - per_seed[(name, "head only")]
                     for name in backbone_names]).max(0).values
samples = {"worst_backbone_gain_minus_head_only_error": worst.tolist()}
head_errors = {name: error[b, 0].item() for b, name in enumerate(backbone_names)}
trained = (all(e < 50.0 for e in head_errors.values()),
           "head-only test error < 50% (chance 80%) on every backbone: "
           + ", ".join(f"{n} {e:.1f}%" for n, e in head_errors.items()))
path = nm.results.record(cfg, metrics, device=dev, samples=samples, trained=trained, per_task=per_task)
print(nm.results.format_metrics(metrics))
