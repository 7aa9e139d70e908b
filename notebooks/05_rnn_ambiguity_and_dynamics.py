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
# None: the profile's value. Every parameter, its values and what is allowed: python -m neuromod_lib list 05
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
n_neurons = None  # type: int  network size N
tasks = None  # type: list[str]  comma list of the tasks every network learns
task_a = None  # type: str  first task of the ambiguous pair (one of tasks)
task_b = None  # type: str  second task of the ambiguous pair (one of tasks)
n_lambdas = None  # type: int  mixture levels
sigmas = None  # type: list[float]  comma list of context noise levels
fp_steps = None  # type: int  fixed-point optimisation steps

# %%
# NBVAL_CHECK_OUTPUT
NOTEBOOK = "05_rnn_ambiguity_and_dynamics"
import matplotlib.pyplot as plt
import torch

import neuromod_lib as nm
from neuromod_lib import analysis, multitask, plots, widgets
from neuromod_lib.data import tasks as cognitive
from neuromod_lib.models.rnn import ModulatedRNN

cfg = nm.profiles.resolve(
    NOTEBOOK, profile, seed=seed, device=device, results_dir=results_dir,
    pathways=pathways, replicates=replicates, steps=steps, eval_every=eval_every, batch=batch, lr=lr,
    criterion=criterion, eval_trials=eval_trials, dt=dt, tau=tau, n_ring=n_ring, activation=activation,
    rec_noise=rec_noise, input_noise=input_noise, synaptic=synaptic, rank=rank, matched=matched,
    n_neurons=n_neurons, tasks=tasks, task_a=task_a, task_b=task_b, n_lambdas=n_lambdas, sigmas=sigmas,
    fp_steps=fp_steps,
)
# every check before any training: task names, the ambiguous pair, pathways, dt <= tau
setup = multitask.notebook_setup(cfg)
task_list = list(multitask.parse_list(cfg.tasks, "tasks"))
cognitive.task_index(task_list)
for name in ("task_a", "task_b"):
    if cfg[name] not in task_list:
        raise ValueError(f"{name}={cfg[name]!r} must be one of tasks={task_list}")
a, b = task_list.index(cfg.task_a), task_list.index(cfg.task_b)
sigma_list = list(multitask.parse_list(cfg.sigmas, "sigmas", float))
lambdas = torch.linspace(0, 1, cfg.n_lambdas).tolist()
network_pathways = [p for _ in range(cfg.replicates) for p in setup.pathways]
dev = nm.device.pick_device(cfg.device)
nm.device.seed_everything(cfg.seed)
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
print(f"{'pathway':<13}" + "".join(f"{t:>10}" for t in task_list) + f"{'solved':>9}")
for p in setup.pathways:
    rows = [s for s, q in enumerate(network_pathways) if q == p]
    perf = trained.perf[rows].mean(0)
    print(f"{p:<13}" + "".join(f"{v:>10.2f}" for v in perf) + f"{int(trained.solved[rows].sum()):>6}/{len(rows)}")
print(f"(performance per task, mean over replicates; trained for {trained.history_steps[-1]} steps)")

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
plt.show()
lam = torch.tensor(lambdas)
dominant = torch.cat([on_a[:, lam < 0.5], on_b[:, lam > 0.5]], dim=1).mean(1)  # (S,)
near = (lam - 0.5).abs() <= 0.25
mid = torch.cat([on_a[:, near & (lam < 0.5)], on_b[:, near & (lam > 0.5)]], dim=1).mean(1)


def by_pathway(values):
    return {p: values[[s for s, q in enumerate(network_pathways) if q == p]] for p in setup.pathways}


print(f"{'pathway':<13}{'follows dominant':>18}{'near lam=0.5':>14}")
for p in setup.pathways:
    d, m = by_pathway(dominant)[p], by_pathway(mid)[p]
    print(f"{p:<13}{d.mean():>12.2f} ± {d.std():.2f}{m.mean():>8.2f} ± {m.std():.2f}")

# %% [markdown]
# ## Ambiguity: a noisy context
#
# Gaussian noise of std σ is added to every entry of the one-hot context (16 draws per task and
# σ); performance averaged over all trained tasks.

# %%
noisy = multitask.noise_performance(model, task_list, sigma_list, setup.task_config, seed=cfg.seed + 11)
fig = plots.noise_curves(sigma_list, noisy, network_pathways)
plt.show()
noise_score = noisy[:, 1:].mean(1) if len(sigma_list) > 1 else noisy[:, 0]
print(f"{'pathway':<13}" + "".join(f"{'σ=' + format(s, 'g'):>9}" for s in sigma_list))
for p in setup.pathways:
    print(f"{p:<13}" + "".join(f"{v:>9.2f}" for v in by_pathway(noisy)[p].mean(0)))

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
print(f"{'pathway':<13}" + "".join(f"{'λ=' + format(v, '.1f'):>8}" for v in lambdas[:: max(1, len(lambdas) // 5)]))
for p in setup.pathways:
    print(f"{p:<13}" + "".join(f"{v:>8.2f}" for v in pr[p][:: max(1, len(lambdas) // 5)]))
print("(participation ratio of the task-A trajectories under each mixture)")

# %%
response_input = trials_batch.inputs[0, -1]  # fixation off, the stimulus of trial 0 on
initial = states[:, :, :, -1]  # (S, L, trials, N): where each trial ended
fps = multitask.fixed_points(model, response_input, contexts, initial, steps=cfg.fp_steps, seed=cfg.seed)
S, L, P = initial.shape[:3]
points = fps.points.reshape(S, L, P, -1).cpu()
status = (fps.converged.long() * (1 + fps.stable.long())).reshape(S, L, P).cpu()  # 2 stable, 1 unstable, 0 none
keep = status == 2
with torch.no_grad():
    readout = torch.sigmoid(torch.einsum("slpn,son->slpo", points, model.w_out.cpu()) + model.b_out.cpu()[:, None, None])
direction = torch.rad2deg(cognitive.popvec(readout[..., 1:]))  # (S, L, P) degrees
target_a = float(torch.rad2deg(trials_batch.target[0]))
print(f"trial 0: stimulus at {float(torch.rad2deg(trials_batch.stim1[0])):.0f}°, {cfg.task_a} answer {target_a:.0f}°; "
      f"{int(fps.converged.sum())}/{fps.converged.numel()} searches converged, "
      f"{int(keep.sum())} to stable fixed points")

# %%
panels, directions, switch = {}, {}, {}
for p, s in first.items():
    pca = analysis.pca(states[s].reshape(-1, cfg.n_neurons), n_components=2)
    traj = pca.transform(states[s])  # (L, trials, T, 2)
    fp2 = pca.transform(points[s])  # (L, P, 2)
    panels[p] = (traj, fp2, status[s])
    directions[p] = [direction[s, i][keep[s, i]] for i in range(L)]
fig = plots.fixed_point_directions(lambdas, directions, names=(cfg.task_a, cfg.task_b))
plt.show()


def circular(x, y):
    d = torch.remainder(x - y, 360.0)
    return torch.minimum(d, 360.0 - d)


# lambda at which the stable fixed points of each network (all replicates) stop encoding A's answer
answer_b = (target_a + 180.0) % 360.0
for p in setup.pathways:
    values = []
    for s in [s for s, q in enumerate(network_pathways) if q == p]:
        to_b = [bool((circular(direction[s, i][keep[s, i]], answer_b) < 36).any()) for i in range(L)]
        values.append(next((lambdas[i] for i in range(L) if to_b[i]), float("nan")))
    switch[p] = torch.tensor(values)
    print(f"{p:<13} first λ with a stable fixed point at {cfg.task_b}'s answer: "
          + ", ".join(f"{v:.2f}" for v in values))

# %%
fig = plots.state_space(panels, lambdas)
plt.show()

# %% [markdown]
# Move λ: the trajectories and fixed points of that mixture stand out.

# %%
# NBVAL_IGNORE_OUTPUT
widgets.lambda_widget(panels, lambdas)


# %% [markdown]
# ## The answer, computed

# %%
def summary(values):
    return {p: (float(v.mean()), float(v.std()) if len(v) > 1 else 0.0) for p, v in by_pathway(values).items()}


dom, noi = summary(dominant), summary(noise_score)
perf = summary(trained.perf.nanmean(1))
verdicts = {}
if {"excitability", "synaptic"} <= set(setup.pathways):
    e, s_ = "excitability", "synaptic"
    gap, spread = dom[e][0] - dom[s_][0], dom[e][1] + dom[s_][1]
    verdicts["pathways_differ_in_ambiguity"] = abs(gap) > spread
    print(f"Excitability vs synaptic, following the dominant context: {dom[e][0]:.2f} vs {dom[s_][0]:.2f} "
          f"(difference {gap:+.2f}, replicate spread {spread:.2f}): "
          f"{'a difference' if verdicts['pathways_differ_in_ambiguity'] else 'no difference beyond the spread'}.")
    gap_n, spread_n = noi[e][0] - noi[s_][0], noi[e][1] + noi[s_][1]
    verdicts["pathways_differ_in_noise"] = abs(gap_n) > spread_n
    print(f"Excitability vs synaptic under context noise: {noi[e][0]:.2f} vs {noi[s_][0]:.2f} "
          f"(difference {gap_n:+.2f}, spread {spread_n:.2f}): "
          f"{'a difference' if verdicts['pathways_differ_in_noise'] else 'no difference beyond the spread'}.")
    if "both" in setup.pathways:
        verdicts["both_most_robust_to_ambiguity"] = dom["both"][0] >= max(dom[e][0], dom[s_][0])
        verdicts["both_most_robust_to_noise"] = noi["both"][0] >= max(noi[e][0], noi[s_][0])
        verdicts["both_best_performance"] = perf["both"][0] >= max(perf[e][0], perf[s_][0])
        print(f"Both pathways together: follow the dominant context {dom['both'][0]:.2f}, under noise "
              f"{noi['both'][0]:.2f}, trained performance {perf['both'][0]:.2f} — at least as good as either single "
              f"pathway on ambiguity: {verdicts['both_most_robust_to_ambiguity']}, on noise: "
              f"{verdicts['both_most_robust_to_noise']}, on performance: {verdicts['both_best_performance']}.")
most_robust = max(dom, key=lambda p: dom[p][0])
print(f"Most robust to a mixed context: {most_robust}; to a noisy context: {max(noi, key=lambda p: noi[p][0])}.")

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
metrics.update({f"switch_lambda_{p}": round(float(switch[p].nanmean()), 2) for p in setup.pathways})
metrics.update(verdicts)
metrics["most_robust_to_mixture"] = most_robust
per_task = [
    {"network": s, "pathway": p, "solved": bool(trained.solved[s]), "performance": trained.perf[s].nanmean().item(),
     "dominant": dominant[s].item(), "noise": noise_score[s].item()}
    for s, p in enumerate(network_pathways)
]
samples = {}
if {"excitability", "synaptic"} <= set(setup.pathways):
    d = by_pathway(dominant)
    samples["excitability_minus_synaptic_dominant"] = (d["excitability"] - d["synaptic"]).tolist()
    if "both" in setup.pathways:
        samples["both_minus_best_single_dominant"] = (
            d["both"] - torch.maximum(d["excitability"], d["synaptic"])).tolist()
n_solved = int(trained.solved.sum())
check = (n_solved == len(network_pathways),
         f"every network solves every task: {n_solved}/{len(network_pathways)} networks do")
path = nm.results.record(cfg, metrics, device=dev, samples=samples, trained=check, per_task=per_task)
print(nm.results.format_metrics(metrics))
