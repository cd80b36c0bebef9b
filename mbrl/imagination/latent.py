"""Dreamer: the imagination actor-critic on an RSSM's latent state.

:class:`~mbrl.imagination.actor_critic.ActorCritic` trains through any ``DynamicsModel``;
:class:`~mbrl.models.rssm.latent.LatentDynamics` is the RSSM's prior seen as one, over the
belief features ``f = [h, z] (F,)``, and :class:`~mbrl.models.rssm.latent.LatentReward` its
reward head. What Dreamer adds on top are the start states: posterior beliefs of the real
episodes, not observations. :class:`LatentActorCritic` refilters every stored episode with
the current RSSM after each training phase (:func:`~mbrl.models.rssm.value.belief_rows`:
the meaning of ``f`` changes as the RSSM trains), draws ``batch_size`` of those features per
update and imagines from them with the sampled (reparameterised) prior, so the actor's
returns are back-propagated through the RSSM (dynamics backprop). The RSSM itself is never
changed by these updates.

The actor acts through a :class:`~mbrl.planners.policy.PolicyPlanner` inside the PlaNet
loop's :class:`~mbrl.agents.belief.BeliefAgent` (filter, act, exploration noise), so a run
with ``policy="imagine"`` (``mbrl run --model rssm --policy imagine``) is the PlaNet loop
with the planner replaced by the actor: same seed episodes, same RSSM training, same
checkpoints and resume. The RSSM has no termination head, so imagined rollouts never end
(as PlaNet's plans).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from mbrl.data.sequence_buffer import SequenceBuffer
from mbrl.imagination.actor_critic import ActorCritic, ImaginationConfig
from mbrl.models.policy_model import LearnedPolicy
from mbrl.models.rssm.latent import LatentDynamics, LatentReward
from mbrl.models.rssm.model import RSSM
from mbrl.models.rssm.value import belief_rows
from mbrl.validation import check_positive_int


class LatentActorCritic:
    """An :class:`ActorCritic` over ``rssm``'s belief features, trained in latent imagination.

    Args:
        rssm: the world model (shared; trained elsewhere).
        low / high: Box action bounds ``(A,)`` in encoded action units.
        config: :class:`ImaginationConfig` (horizon, discount, batch of start states, ...).
        updates: actor-critic updates per :meth:`train` call (default 100, one per RSSM
            training step of PlaNet's collect interval, as Dreamer).
        device: where the networks live (default cpu).

    Raises:
        ValueError: ``updates`` < 1; action bounds that do not match ``rssm.action_dim``.
    """

    def __init__(
        self,
        rssm: RSSM,
        low: Tensor,
        high: Tensor,
        config: ImaginationConfig | None = None,
        updates: int = 100,
        device: str | torch.device = "cpu",
    ) -> None:
        check_positive_int(updates, "updates")
        if int(torch.as_tensor(low).numel()) != rssm.action_dim:
            raise ValueError(
                f"low / high must have shape ({rssm.action_dim},), the RSSM's action size, got "
                f"{tuple(torch.as_tensor(low).shape)}"
            )
        self.rssm = rssm
        self.updates = int(updates)
        self.ac = ActorCritic(rssm.feature_dim, low, high, config, device)
        self.dynamics = LatentDynamics(rssm, sample=True)
        self.reward = LatentReward(rssm)

    @property
    def actor(self) -> LearnedPolicy:
        """The actor, a :class:`~mbrl.models.policy_model.LearnedPolicy` over ``(F,)``."""
        return self.ac.actor

    def train(self, buffer: SequenceBuffer, generator: torch.Generator) -> dict[str, float]:
        """Refilter ``buffer``'s episodes, then :attr:`updates` actor-critic updates from
        start features drawn among them (with ``generator``, on the RSSM's device).

        The actor's and critics' input statistics are set from the first call's features
        only (moving them later would shift the actor).

        Returns:
            The last update's statistics, prefixed ``ac_``: ``ac_imagined_return``,
            ``ac_actor_loss``, ``ac_critic_loss``, ``ac_entropy``, ``ac_action_std``.

        Raises:
            ValueError: an empty buffer.
        """
        feats = belief_rows(self.rssm, buffer, generator).features
        if self.ac.updates == 0:
            self.ac.fit_normalizers(feats)
        stats: dict[str, float] = {}
        n = feats.shape[0]
        for _ in range(self.updates):
            idx = torch.randint(
                n, (self.ac.config.batch_size,), generator=generator, device=feats.device
            )
            stats = self.ac.update(self.dynamics, feats[idx], self.reward, None, generator)
        return {f"ac_{k}": v for k, v in stats.items()}

    def checkpoints(self) -> Mapping[str, torch.nn.Module]:
        """File name -> network, for the run's output directory."""
        return {
            "actor.pt": self.ac.actor,
            "critic.pt": self.ac.critic,
            "critic_target.pt": self.ac.target,
        }

    def state_dict(self) -> dict[str, Any]:
        """The optimisers' state and the update count (the networks are :meth:`checkpoints`)."""
        return {
            "actor_optimizer": self.ac.actor_opt.state_dict(),
            "critic_optimizer": self.ac.critic_opt.state_dict(),
            "updates": self.ac.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            ValueError: a state of another shape (naming what did not fit).
        """
        try:
            self.ac.actor_opt.load_state_dict(state["actor_optimizer"])
            self.ac.critic_opt.load_state_dict(state["critic_optimizer"])
            self.ac.updates = int(state["updates"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"the latent actor-critic's saved state does not fit: {err}") from err
