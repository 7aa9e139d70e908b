"""One training loop for every model in the library: :func:`fit`.

It does the few things every experiment needs and gets wrong when each writes its own loop:

- stops with a clear :class:`TrainingDiverged` error as soon as a loss or the monitored
  validation metric is NaN or infinite, instead of training on garbage;
- stops early when the monitored metric has not improved for ``patience`` epochs, and
  puts the best weights back into the model;
- writes a checkpoint atomically at the end of every epoch, holding everything an *exact*
  resume needs (weights, optimizer, scheduler, history, early-stopping state and every
  random number generator), so that a run killed at any moment and started again ends with
  the same numbers, bit for bit, as a run that was never interrupted.

What a batch is, how the loss is computed and what "validation" means are left to the
caller: ``loss_fn(model, batch)``, ``batches(generator)`` and ``evaluate(model)``. A model may add
what its method needs to each step by defining ``penalty()``, ``after_backward()`` and
``after_step()`` (see :func:`fit`): the continual learners' consolidation penalties (EWC, SI) are
trained by this same loop (:mod:`neuromod_lib.continual`).

Randomness: the data order comes from the ``generator`` handed to ``batches``; dropout and
other layers draw from torch's global RNG (CPU and CUDA). Both are checkpointed. Python's
``random`` and NumPy are not, so ``loss_fn`` and ``batches`` should draw only from torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checks import check_fields, is_int, is_number  # kept importable from here (older code)
from .progress import progress_bar
from .storage import load_checkpoint, save_checkpoint

CHECKPOINT_FORMAT = 1  # bump when the checkpoint layout changes


class TrainingDiverged(FloatingPointError):
    """A training loss or the monitored validation metric became NaN or infinite."""


@dataclass(frozen=True)
class FitConfig:
    """How :func:`fit` trains; every field is checked when the config is made.

    - ``max_epochs``: number of epochs at most.
    - ``patience``: stop after this many epochs without improvement of ``monitor``; None = never.
    - ``monitor``/``mode``/``min_delta``: the metric (a key of ``evaluate()``'s dict, or
      ``"train_loss"``) and whether lower (``"min"``) or higher (``"max"``) is better; an
      epoch counts as an improvement only if it beats the best by more than ``min_delta``.
    - ``target``: stop as soon as ``monitor`` reaches this value (e.g. every task solved); None = never.
    - ``restore_best``: load the best epoch's weights into the model at the end.
    - ``grad_clip``: clip the gradient norm to this value; None = no clipping (of the gradient of
      the loss and any penalty). A model that stacks independent networks may define
      ``clip_grad_norm_(max_norm)`` to clip each one separately; :func:`fit` then calls it
      instead of clipping the global norm.
    - ``checkpoint``: file written atomically at the end of every epoch; None = none.
    - ``resume``: if ``checkpoint`` exists, continue from it (else start over and overwrite it).
    - ``progress``: show an epoch progress bar; None = decided by the environment.
    """

    max_epochs: int
    patience: int | None = None
    monitor: str = "val_loss"
    mode: str = "min"
    min_delta: float = 0.0
    target: float | None = None
    restore_best: bool = True
    grad_clip: float | None = None
    checkpoint: str | os.PathLike | None = None
    resume: bool = True
    progress: bool | None = None

    def __post_init__(self) -> None:
        checks = [
            ("max_epochs", is_int(self.max_epochs) and self.max_epochs >= 1, "an integer >= 1"),
            (
                "patience",
                self.patience is None or is_int(self.patience) and self.patience >= 1,
                "None or an integer >= 1",
            ),
            ("monitor", isinstance(self.monitor, str) and self.monitor != "", "a non-empty metric name"),
            ("mode", self.mode in ("min", "max"), "'min' or 'max'"),
            ("min_delta", is_number(self.min_delta) and self.min_delta >= 0, "a finite number >= 0"),
            ("target", self.target is None or is_number(self.target), "None or a finite number"),
            ("restore_best", isinstance(self.restore_best, bool), "True or False"),
            (
                "grad_clip",
                self.grad_clip is None or is_number(self.grad_clip) and self.grad_clip > 0,
                "None or a finite number > 0",
            ),
            (
                "checkpoint",
                self.checkpoint is None or isinstance(self.checkpoint, (str, os.PathLike)),
                "None or a file path",
            ),
            ("resume", isinstance(self.resume, bool), "True or False"),
            ("progress", self.progress is None or isinstance(self.progress, bool), "None, True or False"),
        ]
        check_fields(self, checks)


@dataclass
class FitResult:
    """What :func:`fit` returns.

    ``history`` has one row per epoch, ``{"epoch": e, "train_loss": mean batch loss,
    **evaluate(model)}``, counting epochs from 1 and including those run before a resume;
    ``best`` is the row of ``best_epoch``; ``resumed_from`` is the checkpoint's epoch, or None.
    """

    history: list[dict[str, float]]
    best_epoch: int
    best: dict[str, float]
    stopped_early: bool
    epochs_run: int
    resumed_from: int | None


def _is_better(value: float, best: float | None, config: FitConfig) -> bool:
    """Whether ``value`` improves on ``best`` by more than ``min_delta`` (any value beats None)."""
    if best is None:
        return True
    return value < best - config.min_delta if config.mode == "min" else value > best + config.min_delta


def _setup(config: FitConfig, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """What must not change between a run and its resume (else the saved state means something else)."""
    return {
        "monitor": config.monitor,
        "mode": config.mode,
        "restore_best": config.restore_best,
        "optimizer": type(optimizer).__name__,
        "scheduler": None if scheduler is None else type(scheduler).__name__,
    }


def _capture_state(
    loop: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    setup: dict[str, Any],
) -> dict[str, Any]:
    """Everything an exact resume needs, as tensors, numbers, strings, lists and dicts only."""
    return {
        "format": CHECKPOINT_FORMAT,
        **loop,
        "setup": setup,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "data": generator.get_state(),
        },
    }


def _restore_state(
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
) -> dict[str, Any]:
    """Load a :func:`_capture_state` dict into the live objects; return the loop state."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if torch.cuda.is_available() and len(state["rng"]["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    generator.set_state(state["rng"]["data"])
    return {key: state[key] for key in _new_loop()}


def _new_loop() -> dict[str, Any]:
    """The loop's own state at the start of training (saved in every checkpoint)."""
    return {
        "epoch": 0,
        "history": [],
        "best_epoch": 0,
        "best_value": None,
        "bad_epochs": 0,
        "stopped_early": False,
        "best_model": None,
    }


def _check_checkpoint(state: dict[str, Any], model: nn.Module, setup: dict[str, Any], path: Any) -> None:
    """Refuse (ValueError) a checkpoint written for another model or another setup."""
    where = f"checkpoint={str(path)!r}"
    fix = "delete it, choose another checkpoint path or pass resume=False"
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{where} has format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}; {fix}")
    want = {k: tuple(getattr(v, "shape", ())) for k, v in model.state_dict().items()}
    got = {k: tuple(getattr(v, "shape", ())) for k, v in state["model"].items()}
    if want != got:
        missing, unexpected = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
        problems = [
            *([f"keys missing from it: {missing}"] if missing else []),
            *([f"keys the model lacks: {unexpected}"] if unexpected else []),
            *(
                f"{k} has shape {list(got[k])} but the model's is {list(want[k])}"
                for k in sorted(want.keys() & got.keys())
                if want[k] != got[k]
            ),
        ]
        raise ValueError(f"{where} was made for a different model: {'; '.join(problems)}; {fix}")
    if state["setup"] != setup:
        raise ValueError(f"{where} was made with {state['setup']}, this run uses {setup}; {fix}")


def _copy_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _lr_hint(optimizer: torch.optim.Optimizer) -> str:
    lr = float(optimizer.param_groups[0]["lr"])
    return f"lower the learning rate (lr={lr:g}) or set FitConfig.grad_clip"


def _hook(model: nn.Module, name: str) -> Callable[[], Any] | None:
    """The model's own step hook ``name`` (``penalty``, ``after_backward``, ``after_step``), if it has one."""
    hook = getattr(model, name, None)
    return hook if callable(hook) else None


def _add_penalty(model: nn.Module) -> None:
    """After the loss's backward pass: ``model.after_backward()`` sees the loss's own gradients
    (SI's path integral needs them), then the gradient of ``model.penalty()`` is added to them."""
    if (after_backward := _hook(model, "after_backward")) is not None:
        after_backward()
    if (penalty := _hook(model, "penalty")) is not None:
        value = penalty()
        if value.requires_grad:
            value.backward()


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[nn.Module, Any], Any],
    batches: Iterable[Any],
    grad_clip: float | None,
    epoch: int,
) -> float:
    """One pass over ``batches``; return the mean batch loss. Raise on a non-finite loss."""
    model.train()
    after_step = _hook(model, "after_step")
    total, steps = 0.0, 0
    for steps, batch in enumerate(batches, start=1):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"loss={value} at epoch {epoch}, step {steps}; {_lr_hint(optimizer)}")
        loss.backward()
        _add_penalty(model)
        if grad_clip is not None:
            clip = getattr(model, "clip_grad_norm_", None)
            clip(grad_clip) if callable(clip) else nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if after_step is not None:
            after_step()
        total += value
    if steps == 0:
        raise ValueError(f"batches(generator) yielded no batches in epoch {epoch}")
    return total / steps


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    batches: Callable[[torch.Generator], Iterable[Any]],
    evaluate: Callable[[nn.Module], dict[str, float]],
    config: FitConfig,
    *,
    generator: torch.Generator | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``model`` for up to ``config.max_epochs`` epochs; see :class:`FitConfig`.

    Per epoch: train on ``batches(generator)`` (``loss_fn(model, batch)`` must return a scalar
    tensor), then ``evaluate(model)`` in eval mode without gradients, then step ``scheduler``
    (``ReduceLROnPlateau`` gets the monitored value), then write the checkpoint, then call
    ``on_epoch_end(epoch, row)``. The callback comes after the checkpoint, so an exception in it
    loses no work, and it runs on a forked torch RNG, so it cannot change the training.

    Per step: ``loss_fn``, its backward pass, then, if the model defines them,
    ``model.after_backward()`` (the loss's own gradients are in ``.grad``) and the backward pass of
    ``model.penalty()`` (a regulariser such as EWC's, reported apart from the loss: ``train_loss``
    is the loss alone), gradient clipping, the optimizer step, and ``model.after_step()``.

    With ``config.checkpoint`` set and present (and ``resume``), training continues after the
    saved epoch, with the same result as if it had never stopped; a finished run (stopped
    early or at ``max_epochs``) is returned as it is. The model is left in eval mode, holding
    the best epoch's weights if ``restore_best``.
    """
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    path, setup = config.checkpoint, _setup(config, optimizer, scheduler)
    loop, resumed_from = _new_loop(), None
    if path is not None and config.resume and Path(path).exists():
        state = load_checkpoint(path)
        _check_checkpoint(state, model, setup, path)
        loop = _restore_state(state, model, optimizer, scheduler, generator)
        resumed_from = loop["epoch"]

    last = loop["epoch"] if loop["stopped_early"] else config.max_epochs
    epochs = range(loop["epoch"] + 1, last + 1)
    bar = progress_bar(epochs, total=last, initial=loop["epoch"], desc="epochs", progress=config.progress)
    with bar:
        for epoch in bar:
            train_loss = _train_epoch(model, optimizer, loss_fn, batches(generator), config.grad_clip, epoch)
            model.eval()
            with torch.no_grad():
                metrics = evaluate(model)
            row = {"epoch": epoch, "train_loss": train_loss, **{k: float(v) for k, v in metrics.items()}}
            if config.monitor not in row:
                raise ValueError(
                    f"FitConfig.monitor={config.monitor!r} is not among the metrics "
                    f"evaluate() returned: {sorted(metrics)} (or 'train_loss')"
                )
            value = row[config.monitor]
            if not math.isfinite(value):
                raise TrainingDiverged(f"{config.monitor}={value} at epoch {epoch}; {_lr_hint(optimizer)}")
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(value)
            elif scheduler is not None:
                scheduler.step()

            loop["epoch"] = epoch
            loop["history"].append(row)
            if _is_better(value, loop["best_value"], config):
                best_model = _copy_weights(model) if config.restore_best else None
                loop.update(best_epoch=epoch, best_value=value, bad_epochs=0, best_model=best_model)
            else:
                loop["bad_epochs"] += 1
            reached = config.target is not None and (
                value >= config.target if config.mode == "max" else value <= config.target
            )
            patience_out = config.patience is not None and loop["bad_epochs"] >= config.patience
            loop["stopped_early"] = reached or patience_out
            if path is not None:
                save_checkpoint(_capture_state(loop, model, optimizer, scheduler, generator, setup), path)
            bar.set_postfix({config.monitor: f"{value:.4g}"})
            if on_epoch_end is not None:
                with torch.random.fork_rng(devices=range(torch.cuda.device_count()), device_type="cuda"):
                    on_epoch_end(epoch, dict(row))
            if loop["stopped_early"]:
                break

    model.eval()
    if config.restore_best and loop["best_model"] is not None:
        model.load_state_dict(loop["best_model"])
    history = loop["history"]
    return FitResult(
        history=history,
        best_epoch=loop["best_epoch"],
        best=history[loop["best_epoch"] - 1],
        stopped_early=loop["stopped_early"],
        epochs_run=loop["epoch"],
        resumed_from=resumed_from,
    )


class ContextAdam(torch.optim.Optimizer):
    """Adam with one learning rate per *context*: every parameter's first dimension indexes contexts.

    Many small models trained side by side as one (tasks × seeds × learning rates, each context with
    its own rows of every parameter) get a learning-rate search for free: ``lr`` ``(n_contexts,)``
    scales each context's rows. Each row's update is exactly what ``torch.optim.Adam`` with that
    row's learning rate would do (Adam's moments are elementwise, so rows never interact).
    ``params`` may also be parameter groups (dicts), each with its own ``lr`` tensor (e.g. heads per
    context and backbone copies per copy).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: torch.Tensor | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params, "lr": lr}]
        for group in groups:
            rate = group["lr"] = torch.as_tensor(group["lr"], dtype=torch.float32)
            if rate.dim() != 1 or not bool(torch.isfinite(rate).all() and (rate > 0).all()):
                raise ValueError(f"lr must be a (n_contexts,) tensor of finite numbers > 0; got {rate}")
            group["params"] = list(group["params"])
            wrong = [list(p.shape) for p in group["params"] if p.dim() < 1 or p.shape[0] != len(rate)]
            if wrong:
                raise ValueError(
                    f"every parameter needs {len(rate)} contexts in its first dimension; got {wrong}"
                )
        super().__init__(groups, {"betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            (beta1, beta2), eps = group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"].item()
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(p.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
                lr = group["lr"].to(p.device, p.dtype).view(-1, *([1] * (p.dim() - 1)))
                p.addcdiv_(exp_avg * (lr / (1 - beta1**t)), denom, value=-1.0)
        return loss
