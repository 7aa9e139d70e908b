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
# through one context pathway (`rule`, `excitability`, `synaptic`, `both`, at matched
# context-parameter counts; see notebook 04), many replicates per pathway, all trained together
# as one stack. The size and the number of tasks sit **near capacity** (notebook 04): this is
# where the paper says the pathways differ, and where a network has no spare room to make every
# pathway look alike. Then we present contexts the networks never saw in training:
#
# - **mixtures** $c = (1-\lambda)\,e_A + \lambda\,e_B$ of two tasks A and B that respond oppositely to
#   the same stimulus (Go and Anti by default: the very same trials, scored against A's and B's
#   answer), for λ from 0 to 1 — every λ sees the same trials and the same network noise;
# - **noisy contexts** $c = e_k + \sigma\xi$, $\xi \sim \mathcal N(0, I)$, for growing σ (again paired).
#
# Only networks that solved their tasks count (and whose verdict had settled by 2/3 of the
# budget), each curve is normalised by the network's own
# performance at λ = 0 and λ = 1, and pathways are compared by paired permutation tests over
# replicates (networks of one replicate start from the same weights).
#
# **Hyperparameters.** Every pathway trains with the same learning rate (0.01), batch and step
# budget, fixed while designing these notebooks from learning-speed measurements of all four
# pathways together; there is no per-pathway search, so a pathway whose best
# learning rate lies elsewhere could be at a disadvantage (`lr` is a parameter: try it). The
# trials are drawn afresh for every evaluation, so no measure is made on trials seen in training.
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
from neuromod_lib import ambiguity, analysis, multitask, packing, plots, widgets
from neuromod_lib.data import tasks as cognitive
from neuromod_lib.models.rnn import ModulatedRNN

cfg = nm.profiles.resolve(NOTEBOOK, profile, globals())
# every check before any training (resolve: task names, the ambiguous pair; here: pathways, dt <= tau)
setup = multitask.rnn_setup(cfg)
task_list, sigma_list = cfg.tasks, cfg.sigmas
a, b = task_list.index(cfg.task_a), task_list.index(cfg.task_b)
lambdas = torch.linspace(0, 1, cfg.n_lambdas).tolist()
network_pathways = [p for _ in range(cfg.replicates) for p in setup.pathways]
network_replicates = [r for r in range(cfg.replicates) for _ in setup.pathways]
dev = nm.device.prepare(cfg.device, cfg.seed)
print(f"N = {cfg.n_neurons}; tasks {', '.join(task_list)}; ambiguous pair {cfg.task_a} / {cfg.task_b}; "
      f"{len(network_pathways)} networks ({cfg.replicates} per pathway)")

# %%
# NBVAL_IGNORE_OUTPUT
print(nm.device.describe_device(dev))

# %% [markdown]
# ## Training
#
# Every network trains the whole budget; "solved" means every task at ≥ 90 % on `final_trials`
# fixed trials per task at the end, and the same evaluation at 2/3 of the budget says whether
# the verdict was already reached there (saturated). The analyses below count a network only if
# it solved its tasks *and* was saturated ("solved" in the tables below).

# %%
model = ModulatedRNN(
    setup.network(cfg.n_neurons, len(task_list)), network_pathways,
    seeds=[packing.network_seed(cfg.seed, cfg.n_neurons, r) for r in network_replicates],
).to(dev)
trained = multitask.train_networks(model, [task_list] * len(network_pathways), setup.task_config,
                                   setup.train_config)
model.eval()
analysis.performance_table(trained.perf, trained.solved, network_pathways, task_list, groups=setup.pathways,
                           steps=trained.history_steps[-1])

# %%
print(f"{int(trained.saturated.sum())}/{model.n_networks} networks saturated: the same verdict at step "
      f"{trained.check_step} and at step {trained.history_steps[-1]}")

# %% [markdown]
# ## Ambiguity: a mixture of two contexts
#
# Solid: how much of task A's answer each network keeps, dashed: how much of B's, normalised by
# the network's own performance at λ = 0 and λ = 1 (mean ± sd over the solved networks of each
# pathway). A network that follows the *dominant* context stays near 1 on A until λ = 0.5 and
# switches there; its **tolerance** is how far from a pure context it keeps ≥ 90 % of A's (or
# B's) answer, and its **crossing λ** is where the two curves cross.

# %%
on_a, on_b = multitask.mixture_performance(model, task_list, a, b, lambdas, setup.task_config,
                                          trials=cfg.final_trials, seed=cfg.seed + 7)
follow_a, follow_b = ambiguity.normalised(on_a, on_b, lambdas)
counted = trained.solved & trained.saturated  # solved, and already at 2/3 of the budget
solved_rows = counted.nonzero().flatten().tolist()
fig = plots.ambiguity_curves(lambdas, follow_a[solved_rows], follow_b[solved_rows],
                             [network_pathways[s] for s in solved_rows], (cfg.task_a, cfg.task_b),
                             ylabel="share of the network's own answer")
plots.save_figure(fig, cfg, "ambiguity_curves")
plt.show()

# %% [markdown]
# ## Ambiguity: a noisy context
#
# Gaussian noise of std σ is added to every entry of the one-hot context (16 draws per task and
# σ, the same trials and network noise at every σ); performance averaged over all trained tasks,
# for the solved networks. Each network's **noise retention** is its performance at σ > 0 over
# its own performance at σ = 0, averaged over the noisy levels.

# %%
noisy = multitask.noise_performance(model, task_list, sigma_list, setup.task_config, seed=cfg.seed + 11)
fig = plots.noise_curves(sigma_list, noisy[solved_rows], [network_pathways[s] for s in solved_rows])
plots.save_figure(fig, cfg, "noise_curves")
plt.show()

# %% [markdown]
# ## The answer, computed
#
# Per pathway, each measure over its solved networks with a 95 % bootstrap interval; then every
# difference between pathways, tested over the replicates whose networks solved their tasks in
# both pathways (sign-flip permutation test, Holm-corrected over the three comparisons of a measure).

# %%
answer = ambiguity.ambiguity_answer(network_pathways, network_replicates, counted, on_a, on_b, lambdas, noisy,
                                    seed=cfg.seed)
answer.summary_table()

# %%
answer.test_table()

# %%
answer.conclusions()

# %% [markdown]
# **Reading the result.** The lines above are computed from this run; what they amount to for the
# paper's claims (numbers of the committed run, seed 0, quick profile: N = 8 on Go and Anti,
# which is at capacity for that size in notebook 04, 16 replicates per pathway, matched context
# parameters):
#
# - *Excitability and synaptic modulation differ in robustness to ambiguous context*:
#   **supported here**. Excitability networks keep the dominant task's answer further into the
#   mixture: tolerance 0.28 against 0.18 for synaptic networks (paired difference +0.10
#   [+0.06, +0.13], p = 0.006 after Holm's correction, 10 replicate pairs), and they keep more of
#   their performance under context noise (0.63 against 0.48, p = 0.006). Both pathways reach the
#   same trained performance (0.93–0.95), so this is not a difference in how well they learned.
#   Seeds 1 and 2 agree (tolerance 0.28 vs 0.15 and 0.29 vs 0.13; p = 0.002 and 0.0002).
# - *Combined, the two pathways are the most robust (synergy)*: **not supported**. `both` (half of
#   each pathway's parameters) is as tolerant as excitability alone (−0.00, p = 0.95) and more than
#   synaptic (+0.07, p = 0.015): it inherits the robustness of its excitability half, no more.
# - The rule input (an additive bias, half the parameters) solves fewer networks (11 of 16 counted)
#   and sits between the two (tolerance 0.25); where the switch happens (the crossing λ, 0.47–0.52)
#   does not differ much between pathways — they differ in how cleanly they hold the dominant task.
# - The dynamics below are one network per pathway: illustrations of how the fixed points move
#   along λ, not a test.
#
# What this run cannot say: whether the ordering holds in larger networks with more tasks, and at
# Yang et al.'s 20 ms time step; the `paper` profile (N = 32 on six tasks, 16 replicates) is that
# test and needs a GPU.
#
# ## Dynamics along λ
#
# For the first solved replicate of each pathway (the first replicate if none solved): trials of task A (the same stimuli) run under every
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
# pathway -> its first solved network (its first network if none solved)
first = analysis.first_rows(network_pathways, solved_rows + list(range(model.n_networks)))
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
# ## Record the results

# %%
metrics = answer.metrics()
perf = analysis.mean_sd(trained.perf.nanmean(1), network_pathways, setup.pathways)
metrics.update({f"performance_{p}": round(v[0], 3) for p, v in perf.items()})
metrics.update({f"pr_mid_{p}": round(float(pr[p][len(lambdas) // 2]), 2) for p in first})
switch_by = analysis.by_group(switch, network_pathways, setup.pathways)
metrics.update({f"switch_lambda_{p}": round(float(switch_by[p].nanmean()), 2) for p in first})
metrics["saturated_networks"] = int(trained.saturated.sum())
per_task = [
    {"network": s, "pathway": p, "replicate": network_replicates[s], "solved": bool(trained.solved[s]),
     "saturated": bool(trained.saturated[s]), "performance": trained.perf[s].nanmean().item(),
     "tolerance": float(ambiguity.tolerance(on_a[s:s + 1], on_b[s:s + 1], lambdas)[0]),
     "noise_retention": float(ambiguity.noise_retention(noisy[s:s + 1])[0])}
    for s, p in enumerate(network_pathways)
]
path = nm.results.record(cfg, metrics, device=dev, samples=answer.samples(), trained=answer.training_check(),
                         per_task=per_task)
print(nm.results.format_metrics(metrics))
