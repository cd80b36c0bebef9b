"""A policy in the planner's place: ``plan(obs)`` returns the policy's action, no search.

Lets anything that drives a :class:`~mbrl.planners.base.Planner` (the belief agent of the
PlaNet loop, the MPC agent, the deadline bookkeeping) act with a learned policy instead, e.g.
the actor of the latent actor-critic (Dreamer, ``mbrl run --model rssm --policy imagine``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mbrl.models.policy_model import LearnedPolicy
from mbrl.planners.base import Planner, as_obs_tensor


class PolicyPlanner(Planner):
    """``plan(obs (O,)) -> (1, A)``: the action of ``policy`` (its mode: the Gaussian's clipped
    mean), a one-step "plan"; every call is recorded in :attr:`plan_stats` with work 1.

    Args:
        policy: a Box-action :class:`LearnedPolicy` over ``(O,)`` observations; shared, so
            training it changes what this planner does.

    Raises:
        TypeError: a Discrete policy.
    """

    def __init__(self, policy: LearnedPolicy) -> None:
        if policy.discrete:
            raise TypeError("PolicyPlanner acts in continuous (Box) action spaces only")
        self.policy = policy

    def plan(self, obs: Tensor) -> Tensor:
        """The policy's action for ``obs (O,)``: ``(1, A)`` within its bounds.

        Raises:
            TypeError / ValueError: ``obs`` is not ``(O,)`` finite numbers.
        """
        device = self.policy.action_mid.device
        x = as_obs_tensor(obs, self.policy.obs_dim, device)
        deadline = self.start_plan(device)
        with torch.no_grad():
            action = self.policy.mode(x.unsqueeze(0))
        self.finish_plan(deadline, 1, False)
        return action
