"""Latent world models: the recurrent state-space model (RSSM) of PlaNet / Dreamer.

- :mod:`~mbrl.models.rssm.networks`: :class:`RSSMConfig` and the networks (GRU core, prior,
  posterior, encoder, decoder, reward head);
- :mod:`~mbrl.models.rssm.model`: :class:`RSSM` (filtering, imagination, losses) and
  :class:`LatentState`;
- :mod:`~mbrl.models.rssm.latent`: :class:`LatentDynamics`, the RSSM seen as an ordinary
  :class:`~mbrl.models.base.DynamicsModel` over belief features, so any planner plans in it;
- :mod:`~mbrl.models.rssm.training`: :class:`RSSMTrainer` on chunks of a ``SequenceBuffer``.
"""

from mbrl.models.rssm.latent import LatentDynamics, LatentReward
from mbrl.models.rssm.model import RSSM, LatentState
from mbrl.models.rssm.networks import RSSMConfig
from mbrl.models.rssm.training import RSSMTrainConfig, RSSMTrainer

__all__ = [
    "RSSM",
    "LatentDynamics",
    "LatentReward",
    "LatentState",
    "RSSMConfig",
    "RSSMTrainConfig",
    "RSSMTrainer",
]
