"""Tests of the training loop: learning, determinism, early stopping, exact resume, guards.

The problem is tiny (noisy linear regression, 256 samples, an MLP with dropout), so that the
whole file runs in seconds; dropout makes the global torch RNG matter, the shuffled batches
the data generator. ``run`` is also imported by a subprocess in the kill-and-resume test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuromod_lib.device import seed_everything
from neuromod_lib.progress import progress_bar, progress_enabled
from neuromod_lib.storage import load_checkpoint
from neuromod_lib.training import FitConfig, FitResult, TrainingDiverged, fit

REPO = Path(__file__).resolve().parents[1]
N_FEATURES, BATCH = 8, 32


def make_data() -> tuple[torch.Tensor, ...]:
    """Fixed data (its own generator, independent of the run's seed): train and validation splits."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(320, N_FEATURES, generator=g)
    y = x @ torch.randn(N_FEATURES, 1, generator=g) + 0.1 * torch.randn(320, 1, generator=g)
    return x[:256], y[:256], x[256:], y[256:]


X, Y, XV, YV = make_data()


def make_model(hidden: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 1))


def batches(gen: torch.Generator):
    order = torch.randperm(len(X), generator=gen)
    for i in range(0, len(X), BATCH):
        idx = order[i : i + BATCH]
        yield X[idx], Y[idx]


def loss_fn(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return F.mse_loss(model(x), y)


def evaluate(model: nn.Module) -> dict[str, float]:
    return {"val_loss": F.mse_loss(model(XV), YV).item()}


def run(
    seed: int = 0, *, hidden: int = 32, loss=loss_fn, evaluate=evaluate, on_epoch_end=None, **config
) -> tuple[FitResult, nn.Module, torch.optim.Optimizer]:
    """Seed, build model/optimizer/scheduler, and fit; ``config`` goes to FitConfig."""
    gen = seed_everything(seed)
    model = make_model(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    config = {"max_epochs": 8, "progress": False, **config}
    result = fit(
        model,
        optimizer,
        loss,
        batches,
        evaluate,
        FitConfig(**config),
        generator=gen,
        scheduler=scheduler,
        on_epoch_end=on_epoch_end,
    )
    return result, model, optimizer


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


class Crash(Exception):
    pass


def test_model_learns():
    seed_everything(0)
    untrained = evaluate(make_model().eval())["val_loss"]
    result, _, _ = run(max_epochs=10)
    assert len(result.history) == result.epochs_run == 10
    assert [row["epoch"] for row in result.history] == list(range(1, 11))
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    assert result.best["val_loss"] < 0.1 * untrained
    assert result.best == min(result.history, key=lambda r: r["val_loss"])
    assert not result.stopped_early and result.resumed_from is None


def test_same_seed_same_history_other_seed_differs():
    a, model_a, _ = run(seed=3)
    b, model_b, _ = run(seed=3)
    c, _, _ = run(seed=4)
    assert a.history == b.history  # exact float equality
    assert_same_weights(model_a, model_b)
    assert a.history != c.history


def test_default_generator_is_deterministic():
    """Without a generator, the data order still repeats (default generator seeded with 0)."""
    histories = []
    for _ in range(2):
        seed_everything(0)
        model = make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        histories.append(fit(model, opt, loss_fn, batches, evaluate, FitConfig(2, progress=False)).history)
    assert histories[0] == histories[1]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_early_stopping_restores_best_weights(mode):
    sign = 1 if mode == "min" else -1
    # improves until epoch 3, then only by less than min_delta (0.05): epochs 4-6 do not count
    values = [5.0, 4.0, 3.0, 3.5, 2.97, 2.96, 1.0, 0.5]
    snapshots = []  # the weights at the end of each epoch (evaluate sees them)

    def plateau(model):
        snapshots.append(weights(model))
        return {"val_loss": evaluate(model)["val_loss"], "score": sign * values[len(snapshots) - 1]}

    result, model, _ = run(
        evaluate=plateau, monitor="score", mode=mode, patience=3, min_delta=0.05, max_epochs=8
    )
    assert result.stopped_early
    assert result.epochs_run == len(result.history) == 6
    assert result.best_epoch == 3 and result.best == result.history[2]
    assert result.best["score"] == sign * 3.0
    assert len(snapshots) == 6
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[2][k]), k
    assert not all(torch.equal(v, snapshots[5][k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("mode", ["min", "max"])
def test_target_stops_when_reached(mode):
    """With ``target``, training stops at the first epoch whose monitored value reaches it."""
    sign = 1 if mode == "min" else -1
    values = [5.0, 4.0, 3.0, 2.0, 1.0]
    calls = []

    def scores(model):
        calls.append(1)
        return {"val_loss": 0.0, "score": sign * values[len(calls) - 1]}

    result, _, _ = run(evaluate=scores, monitor="score", mode=mode, target=sign * 3.0, max_epochs=5)
    assert result.stopped_early and result.epochs_run == 3 and len(calls) == 3
    with pytest.raises(ValueError, match="target"):
        FitConfig(3, target=float("nan"))


def test_model_step_hooks_add_a_penalty_after_the_loss_gradient():
    """``after_backward`` sees the loss's own gradient, the penalty's is added to it before the step,
    ``after_step`` follows every step, and ``train_loss`` is the loss alone (continual's EWC and SI)."""

    class Anchored(nn.Linear):
        def __init__(self) -> None:
            super().__init__(N_FEATURES, 1, bias=False)
            self.seen: list[torch.Tensor] = []
            self.steps = 0

        def after_backward(self) -> None:
            self.seen.append(self.weight.grad.clone())

        def penalty(self) -> torch.Tensor:
            return 3.0 * self.weight.sum()  # gradient: 3 on every weight

        def after_step(self) -> None:
            self.steps += 1

    gen = seed_everything(0)
    model = Anchored()
    start = weights(model)["weight"]
    x, y = X[:BATCH], Y[:BATCH]
    result = fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        lambda m, batch: F.mse_loss(m(x), y),
        lambda g: [None],  # one step on a fixed batch
        lambda m: {},
        FitConfig(1, monitor="train_loss", progress=False),
        generator=gen,
    )
    with torch.enable_grad():
        probe = nn.Linear(N_FEATURES, 1, bias=False)
        probe.weight.data.copy_(start)
        loss = F.mse_loss(probe(x), y)
        loss.backward()
    assert torch.equal(model.seen[0], probe.weight.grad) and model.steps == 1
    torch.testing.assert_close(model.weight.detach(), start - 0.01 * (probe.weight.grad + 3.0))
    assert result.history[0]["train_loss"] == pytest.approx(loss.item())


def test_model_clip_grad_norm_is_used_when_defined():
    """A model's own ``clip_grad_norm_`` (per-network clipping of a stack) replaces the global one."""

    class Recorded(nn.Sequential):
        clipped: list[float] = []

        def clip_grad_norm_(self, max_norm: float) -> None:
            self.clipped.append(max_norm)
            for p in self.parameters():
                p.grad.zero_()  # visible effect: no update at all

    gen = seed_everything(0)
    model = Recorded(nn.Linear(N_FEATURES, 1))
    before = weights(model)
    fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        loss_fn,
        batches,
        evaluate,
        FitConfig(1, grad_clip=0.5, progress=False),
        generator=gen,
    )
    assert Recorded.clipped == [0.5] * (len(X) // BATCH)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_restore_best_false_keeps_last_weights():
    snapshots = []

    def worsening(model):
        snapshots.append(weights(model))
        return {"val_loss": float(len(snapshots))}

    result, model, _ = run(evaluate=worsening, max_epochs=3, restore_best=False)
    assert result.best_epoch == 1 and not result.stopped_early
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[-1][k]), k


def test_resume_after_crash_is_exact(tmp_path):
    a, model_a, opt_a = run(seed=0, max_epochs=8)
    ckpt = tmp_path / "run.pt"

    def crash_at_3(epoch, row):
        if epoch == 3:
            raise Crash

    with pytest.raises(Crash):
        run(seed=0, checkpoint=ckpt, max_epochs=8, on_epoch_end=crash_at_3)
    assert load_checkpoint(ckpt)["epoch"] == 3  # the callback runs after the checkpoint is written

    # different init, data order and RNG: everything must come from the checkpoint
    b, model_b, opt_b = run(seed=99, checkpoint=ckpt, max_epochs=8)
    assert b.resumed_from == 3
    assert b.history == a.history
    assert (b.best_epoch, b.best, b.epochs_run) == (a.best_epoch, a.best, a.epochs_run)
    assert_same_weights(model_a, model_b)
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]  # scheduler state resumed
    assert load_checkpoint(ckpt)["epoch"] == 8  # the final checkpoint stays on disk

    # a finished run is returned as it is, without training
    calls = []
    counting = lambda m, b: calls.append(1) or loss_fn(m, b)  # noqa: E731
    c, model_c, _ = run(seed=5, checkpoint=ckpt, max_epochs=8, loss=counting)
    assert not calls and c.history == a.history and c.resumed_from == 8
    assert_same_weights(model_a, model_c)


def test_resume_of_early_stopped_run_does_not_train(tmp_path):
    ckpt = tmp_path / "run.pt"
    first, model_a, _ = run(evaluate=lambda m: {"val_loss": 1.0}, patience=2, checkpoint=ckpt)
    assert first.stopped_early and first.epochs_run == 3
    again, model_b, _ = run(
        seed=7, evaluate=lambda m: pytest.fail("evaluated again"), patience=2, checkpoint=ckpt
    )
    assert again.history == first.history and again.stopped_early and again.resumed_from == 3
    assert_same_weights(model_a, model_b)


def test_callback_randomness_does_not_change_training():
    plain, _, _ = run(max_epochs=4)
    noisy, _, _ = run(max_epochs=4, on_epoch_end=lambda e, row: torch.rand(100))
    assert plain.history == noisy.history


SCRIPT = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
import test_training
test_training.run(checkpoint=sys.argv[1], max_epochs=12, on_epoch_end=lambda e, row: time.sleep(0.3))
"""


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    expected, model_a, _ = run(max_epochs=12)
    ckpt = tmp_path / "run.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(ckpt), str(torch.get_num_threads())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        epoch = 0
        while epoch < 2:
            assert time.monotonic() < deadline, "the training subprocess did not reach epoch 2 in 120 s"
            if proc.poll() is not None and not ckpt.exists():
                pytest.fail(f"training subprocess exited early:\n{proc.communicate()[1]}")
            if ckpt.exists():
                epoch = load_checkpoint(ckpt)["epoch"]
            time.sleep(0.02)
    finally:
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    killed_at = load_checkpoint(ckpt)["epoch"]
    assert 2 <= killed_at < 12 or not killed, killed_at  # killed mid-run (unless it already finished)

    result, model_b, _ = run(seed=123, checkpoint=ckpt, max_epochs=12)
    assert result.resumed_from == killed_at
    assert result.history == expected.history
    assert_same_weights(model_a, model_b)


def test_nan_loss_raises_and_keeps_last_checkpoint(tmp_path):
    ckpt = tmp_path / "run.pt"
    saved = {}
    calls = [0]
    steps = len(X) // BATCH

    def nan_at_epoch3_step2(model, batch):
        calls[0] += 1
        loss = loss_fn(model, batch)
        return loss * float("nan") if calls[0] == 2 * steps + 2 else loss

    with pytest.raises(TrainingDiverged) as info:
        run(
            loss=nan_at_epoch3_step2,
            checkpoint=ckpt,
            on_epoch_end=lambda e, row: saved.update(bytes=ckpt.read_bytes()),
        )
    message = str(info.value)
    assert isinstance(info.value, FloatingPointError)
    assert "epoch 3" in message and "step 2" in message and "nan" in message and "lr=" in message
    assert "\n" not in message
    assert ckpt.read_bytes() == saved["bytes"]
    assert load_checkpoint(ckpt)["epoch"] == 2


def test_non_finite_metric_raises(tmp_path):
    ckpt = tmp_path / "run.pt"
    values = iter([1.0, float("inf")])
    with pytest.raises(TrainingDiverged, match=r"val_loss=inf at epoch 2"):
        run(evaluate=lambda m: {"val_loss": next(values)}, checkpoint=ckpt)
    assert load_checkpoint(ckpt)["epoch"] == 1


def test_checkpoint_is_weights_only_and_atomic(tmp_path):
    ckpt = tmp_path / "run.pt"
    result, model, _ = run(max_epochs=3, checkpoint=ckpt)
    assert os.listdir(tmp_path) == ["run.pt"]  # no temporary files left behind
    state = torch.load(ckpt, weights_only=True)
    assert isinstance(state["format"], int)
    assert state["epoch"] == 3 and state["history"] == result.history
    assert state["model"].keys() == model.state_dict().keys()
    assert {"optimizer", "scheduler", "rng", "best_model", "best_epoch", "bad_epochs"} <= state.keys()


def test_grad_clip_bounds_each_step():
    seed_everything(0)
    model = make_model()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    one_batch = lambda gen: [next(batches(gen))]  # noqa: E731
    fit(model, opt, loss_fn, one_batch, evaluate, FitConfig(1, grad_clip=1e-3, progress=False))
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert 0 < (after - before).norm() <= 1e-3 * (1 + 1e-5)


def test_reduce_on_plateau_gets_the_metric():
    seed_everything(0)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    fit(
        model,
        opt,
        loss_fn,
        batches,
        lambda m: {"val_loss": 1.0},
        FitConfig(3, progress=False),
        scheduler=sched,
    )
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_epochs", 0),
        ("max_epochs", 2.5),
        ("max_epochs", True),
        ("patience", 0),
        ("mode", "avg"),
        ("min_delta", -0.1),
        ("min_delta", float("nan")),
        ("grad_clip", 0),
        ("grad_clip", -1.0),
        ("monitor", ""),
        ("resume", "yes"),
        ("progress", 1),
    ],
)
def test_bad_config_values_raise(field, value):
    kwargs = {"max_epochs": 2, field: value}
    with pytest.raises(ValueError, match=rf"FitConfig\.{field}=") as info:
        FitConfig(**kwargs)
    assert repr(value) in str(info.value) and "allowed" in str(info.value)


def test_missing_monitor_key_lists_returned_keys():
    with pytest.raises(ValueError, match=r"monitor='val_acc'.*\['val_loss'\]"):
        run(monitor="val_acc", max_epochs=1)


def test_empty_batches_raise():
    seed_everything(0)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="no batches"):
        fit(model, opt, loss_fn, lambda gen: [], evaluate, FitConfig(1, progress=False))


def test_checkpoint_of_other_model_is_refused_and_kept(tmp_path):
    ckpt = tmp_path / "run.pt"
    run(max_epochs=1, checkpoint=ckpt)
    before = ckpt.read_bytes()
    with pytest.raises(ValueError, match=r"checkpoint=.*different model.*0\.weight has shape \[32, 8\]"):
        run(max_epochs=2, checkpoint=ckpt, hidden=16)
    with pytest.raises(ValueError, match=r"checkpoint=.*'mode': 'min'"):
        run(max_epochs=2, checkpoint=ckpt, mode="max")
    assert ckpt.read_bytes() == before
    # resume=False starts over and overwrites
    result, _, _ = run(max_epochs=2, checkpoint=ckpt, hidden=16, resume=False)
    assert result.resumed_from is None and load_checkpoint(ckpt)["epoch"] == 2


def test_resume_from_a_truncated_checkpoint_names_it_before_training(tmp_path):
    ckpt = tmp_path / "run.pt"
    run(max_epochs=1, checkpoint=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:-100])  # a crash or a full disk cut it short
    before = ckpt.read_bytes()

    def no_training(model, batch):
        raise AssertionError("trained before the checkpoint was read")

    with pytest.raises(ValueError, match=rf"^checkpoint={re.escape(repr(str(ckpt)))} cannot be read"):
        run(max_epochs=2, checkpoint=ckpt, loss=no_training)
    assert ckpt.read_bytes() == before


def test_progress_enabled_follows_flags_and_environment(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("NEUROMOD_PROGRESS", raising=False)
    assert progress_enabled() is True
    assert progress_enabled(False) is False
    for value in ("true", "TRUE", "1"):
        monkeypatch.setenv("CI", value)
        assert progress_enabled() is False
        assert progress_enabled(True) is True  # an explicit flag wins
    monkeypatch.setenv("CI", "false")
    assert progress_enabled() is True
    for value in ("0", "false", "False"):
        monkeypatch.setenv("NEUROMOD_PROGRESS", value)
        assert progress_enabled() is False
        assert progress_enabled(True) is True
    monkeypatch.setenv("NEUROMOD_PROGRESS", "1")
    assert progress_enabled() is True


def test_progress_bar_is_disabled_when_off(monkeypatch):
    monkeypatch.setenv("CI", "true")
    bar = progress_bar(range(3), desc="x")
    assert bar.disable and list(bar) == [0, 1, 2] and bar.leave is False
    with open(os.devnull, "w") as devnull:
        assert not progress_bar(range(3), progress=True, file=devnull).disable


def test_context_adam_equals_one_torch_adam_per_context():
    """Each context's rows follow exactly what torch.optim.Adam with that context's rate does."""
    from neuromod_lib.training import ContextAdam

    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, 5, generator=g)
    lrs = torch.tensor([1e-3, 1e-2, 3e-2])
    stacked = w.clone().requires_grad_()
    alone = [w[i].clone().requires_grad_() for i in range(3)]
    opt = ContextAdam([stacked], lrs)
    refs = [torch.optim.Adam([p], lr=float(lr)) for p, lr in zip(alone, lrs, strict=True)]
    for _ in range(25):
        grad = torch.randn(3, 4, 5, generator=g)
        stacked.grad = grad.clone()
        opt.step()
        for i, (p, o) in enumerate(zip(alone, refs, strict=True)):
            p.grad = grad[i].clone()
            o.step()
    for i in range(3):
        torch.testing.assert_close(stacked[i], alone[i], rtol=1e-6, atol=1e-6)


def test_context_adam_refuses_rates_and_parameters_that_do_not_match():
    from neuromod_lib.training import ContextAdam

    with pytest.raises(ValueError, match=r"lr must be a \(n_contexts,\) tensor of finite numbers > 0"):
        ContextAdam([torch.zeros(2, 3, requires_grad=True)], torch.tensor([0.1, -1.0]))
    with pytest.raises(
        ValueError, match=r"every parameter needs 2 contexts in its first dimension; got \[\[3\]\]"
    ):
        ContextAdam([torch.zeros(3, requires_grad=True)], torch.tensor([0.1, 0.2]))


def test_context_adam_takes_groups_each_with_its_own_rates():
    """Heads per context and backbone copies per copy: two groups, each with its rate tensor."""
    from neuromod_lib.training import ContextAdam

    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(4, 3, generator=g), torch.randn(2, 5, generator=g)
    pa, pb = a.clone().requires_grad_(), b.clone().requires_grad_()
    opt = ContextAdam([{"params": [pa], "lr": torch.full((4,), 0.01)}, {"params": [pb], "lr": [0.1, 0.2]}])
    alone = [ContextAdam([a.clone().requires_grad_()], torch.full((4,), 0.01))]
    alone.append(ContextAdam([b.clone().requires_grad_()], torch.tensor([0.1, 0.2])))
    for _ in range(5):
        ga, gb = torch.randn(4, 3, generator=g), torch.randn(2, 5, generator=g)
        pa.grad, pb.grad = ga.clone(), gb.clone()
        opt.step()
        for o, grad in zip(alone, (ga, gb), strict=True):
            o.param_groups[0]["params"][0].grad = grad.clone()
            o.step()
    torch.testing.assert_close(pa, alone[0].param_groups[0]["params"][0])
    torch.testing.assert_close(pb, alone[1].param_groups[0]["params"][0])
    with pytest.raises(ValueError, match="every parameter needs 2 contexts"):
        ContextAdam([{"params": [torch.zeros(3, requires_grad=True)], "lr": [0.1, 0.2]}])
