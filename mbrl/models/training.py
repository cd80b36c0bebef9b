"""Fitting learned models on a transition buffer: held-out split, bootstrapped minibatches,
early stopping, progress bar, loss curves.

Subnormal floats: Adam with an L2 ``weight_decay`` shrinks every parameter whose loss gradient
is zero (weights of an input feature that is constant in the data, hence 0 once normalised;
the ``next_obs - obs`` of a goal; units that never activate) by a constant factor per step, so
such weights pass 1e-38 within one 1500-step fit and then stay there as subnormals (their
updates underflow). Each refit continues from the last weights, so their number grows as a
run collects data, and on CPUs that handle subnormal operands in microcode (Intel x86) every
multiplication with one costs ~100 cycles: planning, which multiplies each weight by every
rollout row, slows down episode after episode at the same shapes. :func:`fit` therefore sets
subnormal parameters, floating buffers and optimiser moments to exactly zero
(:func:`flush_subnormals_`) after every evaluation chunk and on the weights it returns. A
parameter at exactly zero with zero moments stays at zero: ``0 / (0 + eps)`` is no update.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mbrl.data.buffer import RowBatch, TransitionBuffer
from mbrl.models.base import DynamicsModel
from mbrl.util.configs import bounded, check_config


@dataclass(frozen=True)
class FitConfig:
    """How :func:`fit` trains a model.

    Training runs in chunks of ``eval_every`` gradient steps on minibatches drawn with
    replacement (independently per ensemble member: a bootstrap), with a held-out evaluation
    after each chunk. Counting steps rather than epochs keeps tiny early datasets from getting
    a handful of updates and large late ones from taking minutes.

    Every field is checked when the config is made (:func:`~mbrl.util.configs.check_config`):
    the counts are ints >= 1, NaN and infinities are refused, and a wrong type or value raises
    a ``TypeError``/``ValueError`` naming the field.

    Attributes:
        max_steps: upper bound on gradient steps per call (default 1500).
        eval_every: gradient steps between held-out evaluations (default 100).
        batch_size: minibatch rows per member (default 128).
        lr: Adam learning rate, > 0 (default 1e-3).
        weight_decay: Adam L2 penalty, >= 0 (default 5e-5).
        holdout_frac: fraction of data held out for validation/early stopping, in [0, 1]
            (default 0.1).
        max_holdout: cap on held-out rows (default 5000).
        patience: evaluations without held-out improvement before stopping (default 4).
        bootstrap: each ensemble member draws its own minibatches (default True); False gives
            every member the same rows.
        progress: show a tqdm bar (default False).
    """

    max_steps: int = bounded(1500, ge=1)
    eval_every: int = bounded(100, ge=1)
    batch_size: int = bounded(128, ge=1)
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(5e-5, ge=0)
    holdout_frac: float = bounded(0.1, ge=0, le=1)
    max_holdout: int = bounded(5000, ge=1)
    patience: int = bounded(4, ge=1)
    bootstrap: bool = True
    progress: bool = False

    def __post_init__(self) -> None:
        check_config(self)


@dataclass
class FitReport:
    """What a :func:`fit` call did.

    Attributes:
        train_loss: mean training loss per evaluation chunk.
        val_score: mean held-out score per chunk (empty without a holdout).
        best_val_score: best mean held-out score (the restored weights'), or the last train loss.
        member_val_scores: per-member held-out scores ``(E,)`` of the restored weights.
        evaluations: chunks run; steps: gradient steps taken; seconds: wall time.
        accepted: the model now reflects all the data it was handed (False: a model that
            rejects a failed or unconverged fit kept its previous state, e.g. a GP, so the
            new data is not in it yet).
    """

    train_loss: list[float] = field(default_factory=list)
    val_score: list[float] = field(default_factory=list)
    best_val_score: float = float("nan")
    member_val_scores: list[float] = field(default_factory=list)
    evaluations: int = 0
    steps: int = 0
    seconds: float = 0.0
    accepted: bool = True


def _floating(tensors: Iterable[Tensor]) -> Iterator[Tensor]:
    return (t for t in tensors if isinstance(t, Tensor) and t.is_floating_point())


@torch.no_grad()
def flush_subnormals_(tensors: Iterable[Tensor]) -> None:
    """Set the subnormal entries (``0 < |x| < finfo(dtype).tiny``) of floating ``tensors``
    (any shapes; others are skipped) to exactly 0, in place, without a host sync."""
    for t in _floating(tensors):
        t.masked_fill_(t.abs() < torch.finfo(t.dtype).tiny, 0.0)


def count_subnormals(tensors: Iterable[Tensor]) -> Tensor:
    """Number of subnormal entries over floating ``tensors`` (any shapes): an int64 scalar
    tensor (no host sync; on the first tensor's device, cpu when there is none)."""
    counts = [((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum() for t in _floating(tensors)]
    return torch.stack(counts).sum() if counts else torch.zeros((), dtype=torch.int64)


def _model_tensors(model: torch.nn.Module) -> Iterator[Tensor]:
    yield from model.parameters()
    yield from model.buffers()


def _optimizer_tensors(opt: torch.optim.Optimizer) -> Iterator[Tensor]:
    for state in opt.state.values():
        yield from state.values()


def _minibatch_indices(
    n: int, members: int, batch: int, bootstrap: bool, gen: torch.Generator
) -> torch.Tensor:
    """Row indices ``(E, batch)`` into ``n`` training rows, drawn with replacement."""
    shape = (members, batch) if bootstrap else (1, batch)
    idx = torch.randint(0, n, shape, generator=gen, device=gen.device)
    return idx.expand(members, batch)


_SIZED_FIELDS = (("obs", "obs_dim"), ("next_obs", "obs_dim"), ("action", "action_dim"))
"""Batch fields whose last size must equal a model attribute, when both exist."""


def check_data_sizes(model: torch.nn.Module, batch: RowBatch) -> None:
    """Raise ``ValueError`` naming both sizes when ``batch``'s ``obs``/``next_obs`` ``(N, O)``
    or ``action`` ``(N, A)`` do not match ``model.obs_dim`` / ``model.action_dim`` (fields or
    attributes that one side lacks are not checked)."""
    for field_name, dim_name in _SIZED_FIELDS:
        tensor = getattr(batch, field_name, None)
        want = getattr(model, dim_name, None)
        if not isinstance(tensor, Tensor) or tensor.ndim != 2 or not isinstance(want, int):
            continue
        if tensor.shape[1] != want:
            raise ValueError(
                f"fit: the data's {field_name} has size {tensor.shape[1]} (shape "
                f"{tuple(tensor.shape)}) but {type(model).__name__} has {dim_name}={want}; "
                "the model must be built for the data's sizes"
            )


def fit(
    model: DynamicsModel | torch.nn.Module,
    data: TransitionBuffer | RowBatch,
    config: FitConfig | None = None,
    generator: torch.Generator | None = None,
) -> FitReport:
    """Train ``model`` on ``data`` and restore the weights with the best held-out score.

    ``model`` implements the training hooks of :class:`~mbrl.models.base.DynamicsModel`
    (``update_normalizers``, ``training_loss``, ``validation_score``, ``on_fit_end``): dynamics
    models and the learned reward/termination models do. A model with its own training method
    ``fit_transitions(batch, config, generator) -> FitReport`` (GPs) is handed the data instead,
    and a model without trainable parameters (known physics) is left as it is.

    Args:
        model: the model to train (in place; training continues from its current weights).
        data: a buffer, or a batch of ``N`` rows: transitions, or any
            :class:`~mbrl.data.buffer.RowBatch` the model's hooks understand (e.g. the
            value targets of :class:`~mbrl.models.value_model.ValueBatch`).
        config: training settings (defaults: :class:`FitConfig`).
        generator: randomness for the split and minibatches (seed 0 when omitted).

    Raises:
        ValueError: with fewer than 2 transitions, data whose observation or action size is not
            the model's (:func:`check_data_sizes`), or when the loss becomes non-finite (the
            weights from before the call are restored).
        TypeError: a ``config`` that is not a :class:`FitConfig`.
    """
    cfg = config or FitConfig()
    if not isinstance(cfg, FitConfig):
        raise TypeError(f"fit: config must be a FitConfig, got {type(cfg).__name__}")
    batch = data.all() if isinstance(data, TransitionBuffer) else data
    check_data_sizes(model, batch)
    custom = getattr(model, "fit_transitions", None)
    if custom is not None:
        # Models with their own training (e.g. GPs by marginal likelihood) take the data as is.
        return custom(batch, cfg, generator)
    if not any(p.requires_grad for p in model.parameters()):
        return FitReport()  # nothing to learn (known-physics models)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    batch = batch.to(device)
    n = len(batch)
    if n < 2:
        raise ValueError(f"need at least 2 transitions to fit {type(model).__name__}, got {n}")
    perm = torch.randperm(n, generator=gen, device=gen.device).to(device)
    n_val = min(int(round(cfg.holdout_frac * n)), cfg.max_holdout, n - 1)
    val, train = batch.index(perm[:n_val]), batch.index(perm[n_val:])
    members = getattr(model, "ensemble_size", 1)
    model.update_normalizers(train)
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    report = FitReport()
    start = time.perf_counter()
    best_state, best_score, stale = None, float("inf"), 0
    bs = min(cfg.batch_size, len(train))
    n_chunks = -(-cfg.max_steps // cfg.eval_every)
    bar = tqdm(
        total=n_chunks, desc=f"fit {type(model).__name__}", disable=not cfg.progress, leave=False
    )
    model.train()
    try:
        while report.steps < cfg.max_steps:
            losses = torch.zeros((), device=device)
            chunk = min(cfg.eval_every, cfg.max_steps - report.steps)
            for _ in range(chunk):
                idx = _minibatch_indices(len(train), members, bs, cfg.bootstrap, gen).to(device)
                loss = model.training_loss(train.index(idx)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses = losses + loss.detach()
            # Before the snapshot below, so the restored best weights carry none either.
            flush_subnormals_(_model_tensors(model))
            flush_subnormals_(_optimizer_tensors(opt))
            report.steps += chunk
            mean_loss = losses.item() / (chunk * members)
            if not math.isfinite(mean_loss):
                model.load_state_dict(before)
                raise ValueError(
                    f"training loss of {type(model).__name__} became non-finite ({mean_loss}); "
                    "weights restored to their state before this fit"
                )
            report.train_loss.append(mean_loss)
            report.evaluations += 1
            score = mean_loss
            if n_val > 0:
                with torch.no_grad():
                    score = model.validation_score(val).mean().item()
                report.val_score.append(score)
            if best_state is None or score < best_score - 1e-6 * abs(best_score):
                best_score, stale = score, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            bar.update(1)
            bar.set_postfix(train=f"{mean_loss:.4f}", val=f"{score:.4f}")
            if stale >= cfg.patience:
                break
    finally:
        bar.close()
        model.eval()
    if best_state is not None:
        model.load_state_dict(best_state)
    flush_subnormals_(_model_tensors(model))
    with torch.no_grad():
        per_member = model.validation_score(val if n_val > 0 else train)
    model.on_fit_end(per_member)
    report.best_val_score = best_score
    report.member_val_scores = per_member.tolist()
    report.seconds = time.perf_counter() - start
    return report
