"""Learning in imagination: an actor-critic trained on model rollouts of any ``DynamicsModel``.

- :func:`lambda_returns`: TD(lambda) targets of imagined trajectories;
- :func:`imagine`: batched imagined rollouts on the rollout core's policy path;
- :class:`ActorCritic` / :class:`ImaginationConfig`: Dreamer-style actor (exportable
  :class:`~mbrl.models.policy_model.LearnedPolicy`), critic with a target, entropy bonus,
  dynamics backprop or a likelihood-ratio objective;
- :func:`imagine_and_learn` / :class:`ImagineLoopConfig`: the whole loop (collect, fit the
  model, train in imagination, act), real returns per episode, actor saved;
- :class:`LatentActorCritic`: Dreamer on an RSSM's latent state (start beliefs refiltered
  from the stored episodes); ``mbrl run --model rssm --policy imagine`` runs it.
"""

from __future__ import annotations

from mbrl.imagination.actor_critic import (
    ACTOR_GRADS,
    ActorCritic,
    ImaginationConfig,
    Imagined,
    imagine,
    policy_entropy,
    policy_spread,
)
from mbrl.imagination.critic import Critic
from mbrl.imagination.latent import LatentActorCritic
from mbrl.imagination.loop import ImagineLoopConfig, ImagineResult, imagine_and_learn
from mbrl.imagination.returns import lambda_returns

__all__ = [
    "ACTOR_GRADS",
    "ActorCritic",
    "Critic",
    "ImaginationConfig",
    "ImagineLoopConfig",
    "ImagineResult",
    "Imagined",
    "LatentActorCritic",
    "imagine",
    "imagine_and_learn",
    "lambda_returns",
    "policy_entropy",
    "policy_spread",
]
