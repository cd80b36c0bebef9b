"""A learned value on RSSM belief features, for latent MPC with a terminal value.

The state-space value (:mod:`mbrl.models.value_model`) regresses the discounted real returns
of the stored episodes on their observations. In latent space the "observation" a planner
sees is the belief feature vector ``f = [h, z]`` (:class:`~mbrl.models.rssm.latent.
LatentDynamics`), so the same :class:`~mbrl.models.value_model.LearnedValue` is fitted on
features: every stored episode is filtered through the current RSSM posterior (as the
:class:`~mbrl.agents.belief.BeliefAgent` filters while acting: zero belief and action at the
first step, a sampled posterior), and ``f_t`` gets the return-to-go of the real rewards that
follow it, ``G_t = r_{t+1} + gamma * G_{t+1}``, bootstrapped from ``V(f_T)`` where an episode
was cut by a time limit.

Why real returns rather than TD(lambda) targets of imagined rollouts (Dreamer): the agent's
behaviour is the planner, which is far too costly to run inside imagination at every
training step, and a value of any other policy (random actions, an unfitted actor) would
misjudge the planner's future. Monte-Carlo targets of the planner's own episodes are what the
state-space value uses; the features are refiltered at every fit because the RSSM (and so
the meaning of ``f``) changes with training. No target network is needed: bootstrapping only
happens at cut-off episode ends, from the previous sweep's fit (:func:`fit_latent_value`'s
``sweeps``), as in :func:`~mbrl.models.value_model.fit_value`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from mbrl.data.sequence_buffer import SequenceBuffer
from mbrl.models.rssm.model import RSSM
from mbrl.models.training import FitConfig, FitReport, fit
from mbrl.models.value_model import LearnedValue, ValueBatch, returns_to_go
from mbrl.util.configs import bounded, check_config


@dataclass(frozen=True)
class LatentValueConfig:
    """How :func:`fit_latent_value` fits a value on belief features.

    Attributes:
        gamma: discount per agent step (one decision, ``action_repeat`` env steps), in
            ``(0, 1)`` (default 0.99); the planner must use the same.
        sweeps: target / fit alternations (default 2; the first bootstraps cut-off
            episodes from the value as it was).
        fit: training settings of each sweep (default ``FitConfig(max_steps=300,
            eval_every=100)``: a few hundred steps refit a warm value in seconds).
    """

    gamma: float = bounded(0.99, gt=0.0, lt=1.0)
    sweeps: int = bounded(2, ge=1)
    fit: FitConfig = field(default_factory=lambda: FitConfig(max_steps=300, eval_every=100))

    def __post_init__(self) -> None:
        check_config(self)


@dataclass(frozen=True)
class BeliefRows:
    """``N`` filtered steps of the stored episodes, oldest first (each episode's last step
    excluded: no reward follows it).

    Attributes:
        features: ``(N, F)`` belief features ``f_t``.
        next_features: ``(N, F)`` the features ``f_{t+1}`` after them.
        reward: ``(N,)`` the real reward ``r_{t+1}`` paid for leaving ``f_t``.
        terminated: ``(N,)`` bool, the MDP ended at ``t + 1``.
        cut: ``(N,)`` bool, the episode stopped at ``t + 1`` without ending.
    """

    features: Tensor
    next_features: Tensor
    reward: Tensor
    terminated: Tensor
    cut: Tensor


@torch.no_grad()
def belief_rows(
    rssm: RSSM, buffer: SequenceBuffer, generator: torch.Generator | None = None
) -> BeliefRows:
    """Filter every episode of ``buffer`` through ``rssm``'s posterior into :class:`BeliefRows`.

    Raises:
        ValueError: an empty buffer.
    """
    if buffer.num_episodes == 0:
        raise ValueError("belief_rows needs at least one stored episode")
    parts: dict[str, list[Tensor]] = {k: [] for k in ("f", "nf", "r", "term", "cut")}
    device = rssm.device
    for index in range(buffer.num_episodes):
        ep = buffer.episode(index).to(device)
        feats = rssm.filter_sequence(ep.obs, ep.action, generator).features[0]  # (L, F)
        steps = feats.shape[0] - 1
        if steps < 1:
            continue
        ended = bool(ep.terminated[0, -1])
        last = torch.zeros(steps, dtype=torch.bool, device=device)
        last[-1] = True
        parts["f"].append(feats[:-1])
        parts["nf"].append(feats[1:])
        parts["r"].append(ep.reward[0, 1:])
        parts["term"].append(last & ended)
        parts["cut"].append(last & (not ended))
    if not parts["f"]:
        raise ValueError("belief_rows needs an episode with at least one transition")
    cat = torch.cat
    return BeliefRows(
        cat(parts["f"]), cat(parts["nf"]), cat(parts["r"]), cat(parts["term"]), cat(parts["cut"])
    )


def fit_latent_value(
    value: LearnedValue,
    rssm: RSSM,
    buffer: SequenceBuffer,
    config: LatentValueConfig | None = None,
    generator: torch.Generator | None = None,
) -> FitReport:
    """Fit ``value`` (over ``rssm.feature_dim`` features) to the discounted real returns of
    ``buffer``'s episodes on their filtered beliefs (in place).

    Args:
        value: a :class:`LearnedValue` with ``obs_dim == rssm.feature_dim``.
        rssm: the (trained) model whose posterior defines the features.
        buffer: the stored episodes.
        config: :class:`LatentValueConfig` (default ``LatentValueConfig()``).
        generator: randomness of the posterior samples, splits and minibatches.

    Returns:
        The last sweep's :class:`~mbrl.models.training.FitReport`.

    Raises:
        ValueError: a value of another size, or an empty buffer.
    """
    cfg = config or LatentValueConfig()
    if value.obs_dim != rssm.feature_dim:
        raise ValueError(
            f"value.obs_dim is {value.obs_dim}, the RSSM's feature size is {rssm.feature_dim}"
        )
    rows = belief_rows(rssm, buffer, generator)
    report = FitReport()
    for _ in range(cfg.sweeps):
        with torch.no_grad():
            boot = value(rows.next_features)
        targets = returns_to_go(rows.reward, rows.terminated, rows.cut, cfg.gamma, boot)
        report = fit(value, ValueBatch(rows.features, targets), cfg.fit, generator)
    return report
