"""The one transition every planner, surrogate env and synthetic-data generator goes through.

:func:`transition` is ``(state, action) -> next state, observation, reward, end, finite`` for
``M`` rows at once (like mbrl-lib's ``ModelEnv.step`` or mctx's ``recurrent_fn``). Everything
that steps a :class:`~mbrl.models.base.DynamicsModel` (the rollout core, and through it the
sampling planners, the compiled path, iLQR, MCTS, the surrogate envs and branched rollouts)
calls it, so reward, termination and the handling of bad predictions are defined here once.

**The divergence rule.** A row *diverges* at a step when the model's next observation or the
reward is NaN or infinite. A diverged row:

1. ends there (``end = 1``, ``done = True``) and earns nothing for that step (``reward = 0``);
2. keeps its last finite observation (``obs`` is never non-finite, so later reward,
   termination, value and policy calls only ever see finite inputs); for observation-space
   models the state is reset to that observation too;
3. is reported in ``finite = False``. Consumers that rank candidates (the rollout core's
   ``returns``) score any candidate with a diverged particle ``-inf``, so a model's blow-up
   never looks like a good plan (with negative rewards, "ending early" would otherwise look
   attractive); consumers that need finite numbers (tree backups, surrogate envs, branched
   data) read ``finite`` and treat the row as having ended.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.models.base import ENSEMBLE, DynamicsModel, ModelState
from mbrl.task_fns import RewardFn, TerminationFn

CERTAIN_END = 0.999
"""An end probability at or above this counts as a certain ending (``done``)."""


@dataclass(frozen=True)
class Transition:
    """One model step of ``M`` rows.

    Attributes:
        state: the next model state (``M`` rows).
        obs: ``(M, O)`` next observations (clipped when bounds were given; the previous
            observation on diverged rows).
        reward: ``(M,)`` reward of the step (0 on diverged rows; MOPO penalty included).
        end: ``(M,)`` probability in ``[0, 1]`` that the step ended the episode: 0/1 from a
            boolean termination function, its ``probability`` with ``soft_termination``; 1 on
            diverged rows.
        done: ``(M,)`` bool, ``end >= CERTAIN_END``.
        finite: ``(M,)`` bool, False where the row diverged (see the module docstring).
    """

    state: ModelState
    obs: Tensor
    reward: Tensor
    end: Tensor
    done: Tensor
    finite: Tensor


def end_probability(
    termination_fn: TerminationFn | None,
    obs: Tensor,
    action: Tensor,
    next_obs: Tensor,
    soft: bool = False,
) -> Tensor:
    """Probability ``(M,)`` that each transition ends the episode.

    ``termination_fn=None`` never ends; a boolean function gives 0/1; with ``soft=True`` the
    function's ``probability(obs, action, next_obs)`` method is read (a learned classifier).
    NaN counts as an ending.
    """
    if termination_fn is None:
        return torch.zeros(obs.shape[0], dtype=next_obs.dtype, device=obs.device)
    if soft:
        prob = termination_fn.probability(obs, action, next_obs)  # type: ignore[attr-defined]
    else:
        prob = termination_fn(obs, action, next_obs)
    return torch.nan_to_num(prob.reshape(-1).to(next_obs.dtype), nan=1.0).clamp(0.0, 1.0)


def _shuffled_step(
    model: DynamicsModel, state: Tensor, action: Tensor, generator: torch.Generator | None
) -> Tensor:
    """``model.step`` on rows permuted at random and put back, so that a model assigning
    members to contiguous row blocks gives each row a random member (MBPO's sampling)."""
    n = action.shape[0]
    device = action.device
    gen_device = generator.device if generator is not None else device
    perm = torch.randperm(n, generator=generator, device=gen_device).to(device)
    nxt = model.step(state[perm], action[perm], generator)
    return torch.empty_like(nxt).index_copy_(0, perm, nxt)


def transition(
    model: DynamicsModel,
    state: ModelState,
    obs: Tensor,
    action: Tensor,
    reward_fn: RewardFn,
    termination_fn: TerminationFn | None = None,
    generator: torch.Generator | None = None,
    *,
    soft_termination: bool = False,
    obs_bounds: tuple[Tensor, Tensor] | None = None,
    uncertainty_penalty: float = 0.0,
    shuffle_members: bool = False,
) -> Transition:
    """Step ``M`` rows of ``model`` once and read reward and termination.

    Args:
        model: any :class:`DynamicsModel`.
        state: the model state of the rows (``M`` rows).
        obs: ``(M, O)`` current observations (``model.observe(state)``, finite).
        action: ``(M, A)`` encoded actions.
        reward_fn: ``(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)``.
        termination_fn: same signature, bool ``(M,)``; ``None`` never ends.
        generator: randomness of sampling models.
        soft_termination: read ``termination_fn.probability`` instead of its boolean.
        obs_bounds: ``(low (O,), high (O,))`` to clip next observations to before the reward
            is read (surrogate envs: models drift outside the real observation space).
        uncertainty_penalty: MOPO's ``lambda``: the reward minus ``lambda *
            model.member_disagreement(obs, action)`` (ensembles only).
        shuffle_members: permute rows before the step so every row gets a random ensemble
            member (tensor states only; a no-op for single-member models).

    Returns:
        :class:`Transition`; no host synchronisation happens here (CUDA-graph safe).
    """
    ensemble = ENSEMBLE in model.capabilities
    if shuffle_members and ensemble and model.num_active > 1 and isinstance(state, Tensor):
        next_state = _shuffled_step(model, state, action, generator)
    else:
        next_state = model.step(state, action, generator)
    raw = model.observe(next_state)
    observation_state = raw is next_state
    ok_obs = torch.isfinite(raw).all(dim=-1)
    next_obs = torch.where(ok_obs.unsqueeze(-1), raw, obs.to(raw.dtype))
    if obs_bounds is not None:
        next_obs = torch.maximum(torch.minimum(next_obs, obs_bounds[1]), obs_bounds[0])
    if observation_state:
        next_state = next_obs
    reward = reward_fn(obs, action, next_obs).reshape(-1).to(next_obs.dtype)
    if uncertainty_penalty > 0:
        if not ensemble:
            raise TypeError(
                f"uncertainty_penalty needs an ensemble (capability {ENSEMBLE!r}); "
                f"{type(model).__name__} is not one"
            )
        disagreement = model.member_disagreement(obs, action).to(next_obs.dtype)
        reward = reward - uncertainty_penalty * disagreement
    finite = ok_obs & torch.isfinite(reward)
    reward = torch.where(finite, reward, torch.zeros_like(reward))
    end = end_probability(termination_fn, obs, action, next_obs, soft_termination)
    end = torch.where(finite, end, torch.ones_like(end))
    return Transition(next_state, next_obs, reward, end, end >= CERTAIN_END, finite)
