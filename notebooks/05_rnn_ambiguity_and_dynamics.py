# %% [markdown]
# # 05 · Ambiguous context and the dynamics it induces
#
# **Question.** A network that does many tasks must be told which one. What happens when the
# signal is unclear — a mixture of two task contexts, or a noisy one? Vedovati & Ching (2024)
# report that context acting on **excitability** and context acting on **synapses** differ in their
# robustness to such *ambiguity*, that they shape the network's dynamics differently, and that
# together they are complementary. This notebook tests that on networks trained here.
#
# **Setup.** Networks of N neurons learn a few cognitive tasks (notebook 04 shows them), each
# through one context pathway (`rule`, `excitability`, `synaptic`, `both`; see notebook 04 for the
# equations), several replicates per pathway, all trained together as one stack. Then we present
# contexts the networks never saw in training:
#
# - **mixtures** $c = (1-\lambda)\,e_A + \lambda\,e_B$ of two tasks A and B that respond oppositely to
#   the same stimulus (Go and Anti by default), for λ from 0 to 1;
# - **noisy contexts** $c = e_k + \sigma\xi$, $\xi \sim \mathcal N(0, I)$, for growing σ.
#
# Then we look at the **dynamics**: trajectories in PCA space, their dimensionality (participation
# ratio), and the fixed points of the network during the response, as λ moves from A to B.

# %% tags=["parameters"]
profile = "quick"  # type: str  smoke (seconds, tests), quick (laptop CPU, embedded data), paper (GPU, real data)
# None: the profile's value. Every other parameter can be set here too; all of them, their
# values and what is allowed: python -m neuromod_lib list 05
seed = None  # type: int  seed of every random draw
device = None  # type: str  where to compute
pathways = None  # type: list[str]  list of context pathways: rule, excitability, synaptic, both
n_neurons = None  # type: int  network size N
task_a = None  # type: str  first task of the ambiguous pair (one of tasks)
task_b = None  # type: str  second task of the ambiguous pair (one of tasks)

# %%
# NBVAL_CHECK_OUTPUT
NOTEBOOK = "05_rnn_ambiguity_and_dynamics"
import matplotlib.pyplot as plt
import torch

import neuromod_lib as nm
from neuromod_lib import analysis, multitask, plots, widgets
from neuromod_lib.data import tasks as cognitive
from neuromod_lib.models.rnn import ModulatedRNN

cfg = nm.profiles.resolve(NOTEBOOK, profile, globals())
# every check before any training (resolve: task names, the ambiguous pair; here: pathways, dt <= tau)
setup = multitask.rnn_setup(cfg)
task_list, sigma_list = cfg.tasks, cfg.sigmas
a, b = task_list.index(cfg.task_a), task_list.index(cfg.task_b)
lambdas = torch.linspace(0, 1, cfg.n_lambdas).tolist()
network_pathways = [p for _ in range(cfg.replicates) for p in setup.pathways]
dev = nm.device.prepare(cfg.device, cfg.seed)
print(f"N = {cfg.n_neurons}; tasks {', '.join(task_list)}; ambiguous pair {cfg.task_a} / {cfg.task_b}; "
      f"{len(network_pathways)} networks ({cfg.replicates} per pathway)")

# %%
# NBVAL_IGNORE_OUTPUT
print(nm.device.describe_device(dev))

# %% [markdown]
# ## Training

# %%
model = ModulatedRNN(
    setup.network(cfg.n_neurons, len(task_list)), network_pathways, torch.Generator().manual_seed(cfg.seed)
).to(dev)
trained = multitask.train_networks(model, [task_list] * len(network_pathways), setup.task_config,
                                   setup.train_config)
model.eval()
analysis.performance_table(trained.perf, trained.solved, network_pathways, task_list, groups=setup.pathways,
                           steps=trained.history_steps[-1])

# %% [markdown]
# ## Ambiguity: a mixture of two contexts
#
# Each network sees the same stimuli under $c = (1-\lambda)e_A + \lambda e_B$. Solid: performance
# scored against task A's answer; dashed: against task B's. A network that follows the *dominant*
# context is near 1 on A for λ < 0.5 and near 1 on B for λ > 0.5; the width of the dip around
# 0.5 says how much ambiguity it tolerates.

# %%
on_a, on_b = multitask.mixture_performance(model, task_list, a, b, lambdas, setup.task_config,
                                          trials=cfg.eval_trials, seed=cfg.seed + 7)
fig = plots.ambiguity_curves(lambdas, on_a, on_b, network_pathways, (cfg.task_a, cfg.task_b))
plots.save_figure(fig, cfg, "ambiguity_curves")
plt.show()
dominant, mid = analysis.dominant_context(on_a, on_b, lambdas)  # (S,) each
analysis.mean_sd_table({"follows dominant": dominant, "near λ=0.5": mid}, network_pathways, groups=setup.pathways,
                       caption="Performance on the dominant task's answer, mean ± sd over replicates: over every "
                               "λ ≠ 0.5, and within 0.25 of it.")

# %% [markdown]
# ## Ambiguity: a noisy context
#
# Gaussian noise of std σ is added to every entry of the one-hot context (16 draws per task and
# σ); performance averaged over all trained tasks.

# %%
noisy = multitask.noise_performance(model, task_list, sigma_list, setup.task_config, seed=cfg.seed + 11)
fig = plots.noise_curves(sigma_list, noisy, network_pathways)
plots.save_figure(fig, cfg, "noise_curves")
plt.show()
noise_score = analysis.noise_score(noisy)  # (S,): the mean over the noisy levels
analysis.curve_table(analysis.group_means(noisy, network_pathways, setup.pathways), sigma_list, symbol="σ",
                     caption="Performance under context noise, mean over replicates.")

# %% [markdown]
# ## Dynamics along λ
#
# For the first replicate of each pathway: trials of task A (the same stimuli) run under every
# mixture. The states are projected on each network's first two principal components, and the
# **participation ratio** $(\sum_i\lambda_i)^2/\sum_i\lambda_i^2$ of the state covariance measures how
# many dimensions the activity uses. Then, for the input of the response period (fixation off,
# the stimulus on), we look for the network's **fixed points** $F(r) = r$ by minimising
# $\tfrac12\lVert F(r)-r\rVert^2$ from the states the trials reached, and read out the response
# direction each fixed point encodes. Filled markers: stable fixed points; open: unstable.

# %%
contexts = multitask.mixtures(len(task_list), a, b, lambdas)
trials_batch, states, outputs = multitask.trajectories(model, cfg.task_a, contexts, setup.task_config,
                                                        trials=8, seed=cfg.seed + 13)
first = {p: network_pathways.index(p) for p in setup.pathways}
pr = {p: analysis.participation_ratio(states[s].reshape(len(lambdas), -1, cfg.n_neurons)) for p, s in first.items()}
analysis.curve_table(pr, lambdas, symbol="λ", x_format=".1f", every=max(1, len(lambdas) // 5),
                     caption="Participation ratio of the task-A trajectories under each mixture.")

# %%
response_input = trials_batch.inputs[0, -1]  # fixation off, the stimulus of trial 0 on
initial = states[:, :, :, -1]  # (S, L, trials, N): where each trial ended
fps = multitask.fixed_points(model, response_input, contexts, initial, steps=cfg.fp_steps, seed=cfg.seed)
S, L, P = initial.shape[:3]
points = fps.points.reshape(S, L, P, -1).cpu()
status = analysis.fixed_point_status(fps).reshape(S, L, P).cpu()  # 2 stable, 1 unstable, 0 none
keep = status == 2
with torch.no_grad():
    readout = torch.sigmoid(torch.einsum("slpn,son->slpo", points, model.w_out.cpu()) + model.b_out.cpu()[:, None, None])
direction = torch.rad2deg(cognitive.popvec(readout[..., 1:]))  # (S, L, P) degrees
target_a = float(torch.rad2deg(trials_batch.target[0]))
print(f"trial 0: stimulus at {float(torch.rad2deg(trials_batch.stim1[0])):.0f}°, {cfg.task_a} answer {target_a:.0f}°; "
      f"{int(fps.converged.sum())}/{fps.converged.numel()} searches converged, "
      f"{int(keep.sum())} to stable fixed points")

# %%
panels = analysis.state_space_panels(states, points, status, first)
fig = plots.fixed_point_directions(lambdas, analysis.stable_directions(direction, keep, first),
                                   names=(cfg.task_a, cfg.task_b))
plots.save_figure(fig, cfg, "fixed_point_directions")
plt.show()
# lambda at which the stable fixed points of each network (all replicates) stop encoding A's answer
switch = analysis.switch_lambdas(direction, keep, lambdas, answer=(target_a + 180.0) % 360.0)  # (S,)
analysis.replicate_table(switch, network_pathways, groups=setup.pathways,
                         caption=f"First λ with a stable fixed point at {cfg.task_b}'s answer, per replicate "
                                 "(—: never).")

# %%
fig = plots.state_space(panels, lambdas)
plots.save_figure(fig, cfg, "state_space")
plt.show()

# %% [markdown]
# Move λ: the trajectories and fixed points of that mixture stand out.

# %%
# NBVAL_IGNORE_OUTPUT
widgets.lambda_widget(panels, lambdas)

# %% [markdown]
# ## The answer, computed

# %%
dom = analysis.mean_sd(dominant, network_pathways, setup.pathways)  # {pathway: (mean, sd)}
noi = analysis.mean_sd(noise_score, network_pathways, setup.pathways)
perf = analysis.mean_sd(trained.perf.nanmean(1), network_pathways, setup.pathways)
verdicts = analysis.ambiguity_verdicts(dom, noi, perf)
most_robust = analysis.most_robust(dom)
analysis.ambiguity_answer(dom, noi, perf)

# %% [markdown]
# **Reading the result.** Every verdict above is computed from this run, and a difference counts
# only if it exceeds the spread between replicates. The paper's claims are (1) excitability and
# synaptic modulation differ in their robustness to context ambiguity, (2) they induce different
# dynamics, and (3) combined, they are complementary. At this scale (N = 64, four tasks, a
# CPU-sized training budget, three replicates) a claim the lines above do not support is *not
# shown here* — which is not the same as refuted: the `paper` profile (N = 256, Yang et al.'s
# 20 ms time step, longer training, five replicates) is the real test.

# %%
metrics = {f"dominant_{p}": round(v[0], 3) for p, v in dom.items()}
metrics.update({f"dominant_sd_{p}": round(v[1], 3) for p, v in dom.items()})
metrics.update({f"noise_{p}": round(v[0], 3) for p, v in noi.items()})
metrics.update({f"noise_sd_{p}": round(v[1], 3) for p, v in noi.items()})
metrics.update({f"performance_{p}": round(v[0], 3) for p, v in perf.items()})
metrics.update({f"pr_mid_{p}": round(float(pr[p][len(lambdas) // 2]), 2) for p in setup.pathways})
switch_by = analysis.by_group(switch, network_pathways, setup.pathways)
metrics.update({f"switch_lambda_{p}": round(float(switch_by[p].nanmean()), 2) for p in setup.pathways})
metrics.update(verdicts)
metrics["most_robust_to_mixture"] = most_robust
per_task = [
    {"network": s, "pathway": p, "solved": bool(trained.solved[s]), "performance": trained.perf[s].nanmean().item(),
     "dominant": dominant[s].item(), "noise": noise_score[s].item()}
    for s, p in enumerate(network_pathways)
]
samples = {}
if {"excitability", "synaptic"} <= set(setup.pathways):
    d = analysis.by_group(dominant, network_pathways, setup.pathways)
    samples["excitability_minus_synaptic_dominant"] = (d["excitability"] - d["synaptic"]).tolist()
    if "both" in setup.pathways:
        samples["both_minus_best_single_dominant"] = (
            d["both"] - torch.maximum(d["excitability"], d["synaptic"])).tolist()
n_solved = int(trained.solved.sum())
check = (n_solved == len(network_pathways),
         f"every network solves every task: {n_solved}/{len(network_pathways)} networks do")
path = nm.results.record(cfg, metrics, device=dev, samples=samples, trained=check, per_task=per_task)
print(nm.results.format_metrics(metrics))
