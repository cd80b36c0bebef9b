"""Training an :class:`~mbrl.models.rssm.RSSM` on chunks from a :class:`SequenceBuffer`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from mbrl.data.sequence_buffer import SequenceBuffer
from mbrl.models.rssm.model import RSSM
from mbrl.models.rssm.value import LatentValueConfig, fit_latent_value
from mbrl.models.value_model import LearnedValue
from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class RSSMTrainConfig:
    """Optimiser and batch settings (defaults sized for a 2-core CPU).

    Attributes:
        batch_size: chunks per step ``B`` (default 16; PlaNet: 50).
        chunk_length: steps per chunk ``L`` (default 32; PlaNet: 50).
        learning_rate: Adam step size (default 1e-3, PlaNet's).
        adam_eps: Adam epsilon (default 1e-4, PlaNet's).
        grad_clip: global gradient-norm clip (default 100).
    """

    batch_size: int = 16
    chunk_length: int = 32
    learning_rate: float = 1e-3
    adam_eps: float = 1e-4
    grad_clip: float = 100.0

    def __post_init__(self) -> None:
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.chunk_length, "chunk_length", minimum=2)
        if not self.learning_rate > 0 or not self.grad_clip > 0:
            raise ValueError("learning_rate and grad_clip must be > 0")


class RSSMTrainer:
    """Keeps the Adam state across training phases of one model.

    Args:
        model: the :class:`RSSM` to train (in place).
        config: :class:`RSSMTrainConfig`.
        generator: randomness for chunk sampling and latent samples (on the model's device).
        value: a :class:`~mbrl.models.value_model.LearnedValue` over the belief features,
            refitted after every training phase (:func:`~mbrl.models.rssm.value.
            fit_latent_value`), or None (default).
        value_config: how the value is fitted (default ``LatentValueConfig()``).

    Raises:
        ValueError: a value whose size is not the model's feature size.
    """

    def __init__(
        self,
        model: RSSM,
        config: RSSMTrainConfig,
        generator: torch.Generator,
        value: LearnedValue | None = None,
        value_config: LatentValueConfig | None = None,
    ) -> None:
        if value is not None and value.obs_dim != model.feature_dim:
            raise ValueError(
                f"value.obs_dim is {value.obs_dim}, the RSSM's feature size is {model.feature_dim}"
            )
        self.model = model
        self.config = config
        self.generator = generator
        self.value = value
        self.value_config = value_config or LatentValueConfig()
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=config.learning_rate, eps=config.adam_eps
        )

    def train(
        self, buffer: SequenceBuffer, steps: int, progress: str | None = None
    ) -> dict[str, float]:
        """``steps`` gradient steps on chunks ``(B, L)``; returns the mean loss parts (and,
        with a value, ``value``: its best held-out MSE on standardised returns after the
        refit on the newly filtered features).

        The model's normalisers are fitted from the buffer on the first call only (so the
        latent space does not drift with the data statistics).

        Raises:
            ValueError: empty buffer, or every episode shorter than ``chunk_length``.
        """
        check_positive_int(steps, "steps")
        model, cfg = self.model, self.config
        if not bool(model.normalizers_fitted):
            obs, reward = buffer.observations_and_rewards()
            model.fit_normalizers(obs.to(model.device), reward.to(model.device))
        model.train()
        totals: dict[str, float] = {}
        bar = tqdm(range(steps), desc=progress, disable=progress is None, leave=False)
        for _ in bar:
            batch = buffer.sample(cfg.batch_size, cfg.chunk_length, self.generator)
            loss, parts = model.loss(batch.to(model.device), self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value / steps
        model.eval()
        if self.value is not None:
            fitted = fit_latent_value(self.value, model, buffer, self.value_config, self.generator)
            totals["value"] = fitted.best_val_score
        return totals
