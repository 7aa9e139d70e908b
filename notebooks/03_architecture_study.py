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
# None: the profile's value. Every other parameter can be set here too; all of them, their
# values and what is allowed: python -m neuromod_lib list 03
seed = None  # type: int  seed of every random draw
device = None  # type: str  where to compute
backbones = None  # type: list[str]  list of backbones
placements = None  # type: list[str]  list of early, late, all
steps = None  # type: int  adaptation steps
n_seeds = None  # type: int  adaptation seeds

# %%
# NBVAL_CHECK_OUTPUT
NOTEBOOK = "03_architecture_study"
import matplotlib.pyplot as plt

import neuromod_lib as nm
from neuromod_lib import adaptation, plots, setups

cfg = nm.profiles.resolve(NOTEBOOK, profile, globals())
# every check before any training: each backbone exists, takes the images, has each placement
plan = setups.plan_adaptation(cfg)
dev = nm.device.prepare(cfg.device, cfg.seed)
plan.table()

# %% [markdown]
# ## The tasks
#
# Below, one image of each of the 5 classes of four superclasses (one row each). Within a row,
# only one feature changes — a different one in each row.

# %%
setup_args = dict(
    dataset=cfg.dataset, data_root=cfg.data_root, n_images=cfg.n_images, image_size=cfg.image_size,
    weights=cfg.weights, n_pretrain=cfg.n_pretrain, n_tasks=cfg.n_tasks,
    pretrain_config=adaptation.PretrainConfig(epochs=cfg.pretrain_epochs), seed=cfg.seed, device=dev,
    cache_dir=f"{cfg.results_dir}/cache", verify=cfg.verify_data,
)
first = setups.hierarchy_setup(backbone=next(iter(plan.sites)), **setup_args)
print(first.summary())
images, titles = setups.superclass_examples(first.tasks, first.tasks.names[:4])
fig = plots.image_grid(images, titles, columns=first.tasks.n_classes)
plt.show()

# %% [markdown]
# ## Backbone × placement
#
# Every backbone is adapted with the head alone and with gains at each placement, with the same
# budget and seeds (one backbone in memory at a time). First the errors, with how well each
# backbone was pretrained; then what each placement costs per task.

# %%
study = setups.architecture_study(plan.sites, plan.budget, setup_args=setup_args, first=first, device=dev)
study.error_table()

# %%
study.params_table()

# %%
fig = plots.heatmap(study.error, study.backbones, study.columns,
                    title="held-out test error (%), mean over tasks and seeds")
plots.save_figure(fig, cfg, "errors_by_placement")
plt.show()

# %% [markdown]
# ## The answer, computed

# %%
study.conclusions()

# %% [markdown]
# **Reading the result.** The sentences above are computed from this run. A placement wins when the
# features it re-weights are the ones the held-out tasks need and the layers after it can still
# turn the re-weighting into a different decision; gains on the very last layer mostly duplicate
# what the linear head can already do, while early gains act on generic features. At this scale
# (small backbones, generated data, a CPU budget) differences between backbones also reflect how
# well each was pretrained (the `pretrain error` column). The `paper` profile runs the same study on CIFAR-100
# with ResNet-18/50 on a GPU.

# %% [markdown]
# ## Record the results
#
# Per seed, the comparison the report judges: gains (at their best placement) minus the head
# alone, on the backbone where gains help least.

# %%
metrics = study.metrics()
path = nm.results.record(
    cfg, metrics, device=dev, samples=study.samples(), trained=study.training_check(),
    per_task=study.per_task_rows(),
)
print(nm.results.format_metrics(metrics))
