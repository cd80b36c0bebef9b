"""Recurrent state-space model (PlaNet, Hafner et al. 2019) for vector or image observations.

The latent state is ``(h, z)``: a deterministic GRU state ``h (.., D)`` and a stochastic
Gaussian state ``z (.., S)``; the *feature* vector ``f = [h, z] (.., F = D + S)`` is what the
decoder, the reward head and the planner read.

- transition (prior): ``h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}])``, ``z_t ~ N(mu(h_t), sigma(h_t))``
- filter (posterior): ``z_t ~ N(mu(h_t, e(o_t)), sigma(h_t, e(o_t)))`` with encoder ``e``
- decoder ``o_t ~ N(dec(f_t), obs_std)``; reward head ``r_{t-1} ~ N(rew(f_t), reward_std)``
  (the reward for the action that led into step ``t``; see :mod:`mbrl.data.sequence_buffer`).

Training (:meth:`RSSM.loss`) maximises the ELBO on chunks: reconstruction + reward
log-likelihood - ``max(KL(posterior || prior), free_nats)``, plus optional latent overshooting.
Planning uses :class:`~mbrl.models.rssm.latent.LatentDynamics`, a ``DynamicsModel`` view whose
observation is ``f``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mbrl.data.sequence_buffer import SequenceBatch
from mbrl.models.checkpoint import register_checkpointable
from mbrl.models.normalization import Normalizer
from mbrl.models.rssm.networks import (
    ConvDecoder,
    ConvEncoder,
    GaussianHead,
    RSSMConfig,
    gaussian_kl,
    image_to_float,
    mlp,
    sample_gaussian,
)
from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class LatentState:
    """A batch of latent states.

    Attributes:
        h: ``(..., D)`` deterministic (GRU) state.
        z: ``(..., S)`` stochastic state sample.
    """

    h: Tensor
    z: Tensor

    @property
    def features(self) -> Tensor:
        """``f = [h, z]``: ``(..., D + S)``."""
        return torch.cat([self.h, self.z], dim=-1)


@dataclass(frozen=True)
class FilterResult:
    """Posterior and prior along a filtered sequence (all ``(B, L, ...)``).

    Attributes:
        h: ``(B, L, D)``; z: ``(B, L, S)`` posterior samples; post_mean / post_std and
        prior_mean / prior_std: ``(B, L, S)``.
    """

    h: Tensor
    z: Tensor
    post_mean: Tensor
    post_std: Tensor
    prior_mean: Tensor
    prior_std: Tensor

    @property
    def features(self) -> Tensor:
        """``(B, L, D + S)``."""
        return torch.cat([self.h, self.z], dim=-1)

    @property
    def last(self) -> LatentState:
        """The state after the last step: ``h (B, D)``, ``z (B, S)``."""
        return LatentState(self.h[:, -1], self.z[:, -1])


@register_checkpointable
class RSSM(nn.Module):
    """PlaNet's recurrent state-space model with MLP (vector) or conv (image) encoder/decoder.

    Args:
        obs_shape: ``(O,)`` for vector observations, or ``(S, S, C)`` / ``(C, S, S)`` uint8
            images with ``C`` in {1, 3} and ``S`` a power of two >= 8.
        action_dim: encoded action size ``A``.
        config: :class:`RSSMConfig` (defaults sized for a CPU).

    Raises:
        ValueError: unsupported ``obs_shape``.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...] | list[int],
        action_dim: int,
        config: RSSMConfig | None = None,
    ) -> None:
        super().__init__()
        self.obs_shape = tuple(int(s) for s in obs_shape)
        check_positive_int(action_dim, "action_dim")
        self.action_dim = int(action_dim)
        self.config = cfg = config or RSSMConfig()
        self.is_image = len(self.obs_shape) == 3
        if len(self.obs_shape) == 1:
            check_positive_int(self.obs_shape[0], "obs_shape[0]")
            self.channels_last = False
            self.obs_norm = Normalizer(self.obs_shape[0])
            self.encoder = mlp(self.obs_shape[0], cfg.hidden_size, cfg.embed_size, layers=1)
            self.decoder = mlp(self.feature_dim, cfg.hidden_size, self.obs_shape[0])
            embed = cfg.embed_size
        elif self.is_image:
            self.channels_last = self.obs_shape[-1] in (1, 3)
            c, s1, s2 = (
                (self.obs_shape[2], *self.obs_shape[:2]) if self.channels_last else self.obs_shape
            )
            if c not in (1, 3) or s1 != s2:
                raise ValueError(
                    f"image obs_shape must be (S, S, C) or (C, S, S) with C in {{1, 3}}, "
                    f"got {self.obs_shape}"
                )
            self.encoder = ConvEncoder(c, s1, cfg.cnn_depth)
            self.decoder = ConvDecoder(self.feature_dim, c, s1, cfg.cnn_depth)
            embed = self.encoder.out_dim
        else:
            raise ValueError(
                f"obs_shape must be (O,) or an image (S, S, C) / (C, S, S), got {self.obs_shape}"
            )
        default_nats = 3.0 if self.is_image else 1.0
        self.free_nats = default_nats if cfg.free_nats is None else float(cfg.free_nats)
        d, s, hid = cfg.deter_size, cfg.stoch_size, cfg.hidden_size
        self.pre_gru = nn.Sequential(nn.Linear(s + action_dim, hid), nn.ELU())
        self.gru = nn.GRUCell(hid, d)
        self.prior_head = GaussianHead(d, hid, s, cfg.min_std)
        self.posterior_head = GaussianHead(d + embed, hid, s, cfg.min_std)
        self.reward_head = mlp(self.feature_dim, hid, 1)
        self.reward_norm = Normalizer(1)
        self.register_buffer("normalizers_fitted", torch.tensor(False))

    @property
    def feature_dim(self) -> int:
        """Feature size ``F = D + S``."""
        return self.config.deter_size + self.config.stoch_size

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    def init_kwargs(self) -> dict[str, Any]:
        """Constructor arguments (for checkpoints)."""
        return {
            "obs_shape": list(self.obs_shape),
            "action_dim": self.action_dim,
            "config": self.config,
        }

    # ----------------------------------------------------------------- input checks / scaling
    def check_obs(self, obs: Tensor, lead: int, name: str = "obs") -> None:
        """Raise unless ``obs`` is ``(*lead dims, *obs_shape)`` of the right dtype.

        Raises:
            TypeError: image models get non-uint8 images (or non-tensors); ValueError: wrong
                shape (the message names the expected shape) or non-finite vectors.
        """
        if not isinstance(obs, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(obs).__name__}")
        if self.is_image and obs.dtype != torch.uint8:
            raise TypeError(
                f"{name} must be uint8 images (0..255) of shape {self.obs_shape}, got dtype "
                f"{obs.dtype}"
            )
        if obs.ndim != lead + len(self.obs_shape) or tuple(obs.shape[lead:]) != self.obs_shape:
            dims = ("B", "L")[:lead]
            expected = "(" + ", ".join([*dims, *map(str, self.obs_shape)]) + ")"
            raise ValueError(f"{name} must have shape {expected}, got {tuple(obs.shape)}")
        if not self.is_image and not bool(torch.isfinite(obs).all()):
            raise ValueError(f"{name} contains NaN or inf")

    def preprocess(self, obs: Tensor) -> Tensor:
        """Network input: images ``(N, *obs_shape)`` -> float ``(N, C, S, S)`` in
        ``[-0.5, 0.5]``; vectors ``(N, O)`` -> normalised float ``(N, O)``."""
        if self.is_image:
            x = image_to_float(obs)
            return x.permute(0, 3, 1, 2) if self.channels_last else x
        return self.obs_norm.normalize(obs.to(torch.float32))

    def fit_normalizers(self, obs: Tensor, reward: Tensor) -> None:
        """Set vector-observation and reward statistics from data ``obs (N, O)``, ``reward (N,)``."""
        if not self.is_image:
            self.obs_norm.fit(obs.to(torch.float32))
        self.reward_norm.fit(reward.reshape(-1, 1))
        self.normalizers_fitted.fill_(True)

    # ------------------------------------------------------------------------ one-step pieces
    def initial_state(self, batch_size: int) -> LatentState:
        """All-zero state for ``batch_size`` rows: ``h (B, D)``, ``z (B, S)``."""
        dev = self.device
        return LatentState(
            torch.zeros(batch_size, self.config.deter_size, device=dev),
            torch.zeros(batch_size, self.config.stoch_size, device=dev),
        )

    def transition(self, state: LatentState, action: Tensor) -> Tensor:
        """Deterministic GRU step: ``h_t (N, D)`` from ``h, z`` and ``action (N, A)``."""
        x = self.pre_gru(torch.cat([state.z, action.to(state.z.dtype)], dim=-1))
        return self.gru(x, state.h)

    def prior_step(
        self, state: LatentState, action: Tensor, generator: torch.Generator | None, sample: bool
    ) -> LatentState:
        """Imagined next state (no observation): ``(N, ...)`` rows, ``action (N, A)``."""
        h = self.transition(state, action)
        mean, std = self.prior_head(h)
        return LatentState(h, sample_gaussian(mean, std, generator) if sample else mean)

    def filter_step(
        self,
        state: LatentState,
        action: Tensor,
        obs: Tensor,
        generator: torch.Generator | None = None,
        sample: bool = True,
        check: bool = True,
    ) -> LatentState:
        """Belief update with one observation: ``action (N, A)`` led into ``obs (N, *obs_shape)``.

        ``check=False`` skips the input checks: their data-dependent branches cannot be
        traced by ``torch.export``, and the belief-policy artefact checks its inputs outside.

        Raises:
            TypeError / ValueError: as :meth:`check_obs`.
        """
        if check:
            self.check_obs(obs, 1)
        h = self.transition(state, action)
        mean, std = self.posterior_head(torch.cat([h, self.encoder(self.preprocess(obs))], -1))
        return LatentState(h, sample_gaussian(mean, std, generator) if sample else mean)

    def reward(self, features: Tensor) -> Tensor:
        """Predicted reward in env units from ``features (..., F)``: ``(...)``."""
        return self.reward_norm.denormalize(self.reward_head(features)).squeeze(-1)

    def decode(self, features: Tensor) -> Tensor:
        """Decoder mean from ``features (N, F)``: float ``(N, C, S, S)`` in pixel units
        ``[-0.5, 0.5]`` for images, or ``(N, O)`` in env units for vectors."""
        out = self.decoder(features)
        return out if self.is_image else self.obs_norm.denormalize(out)

    # ---------------------------------------------------------------------------- sequences
    def filter_sequence(
        self,
        obs: Tensor,
        action: Tensor,
        generator: torch.Generator | None = None,
        state: LatentState | None = None,
    ) -> FilterResult:
        """Filter ``obs (B, L, *obs_shape)`` where ``action (B, L, A)`` led into each step.

        Starts from ``state`` (default zeros). Returns posterior and prior statistics.

        Raises:
            TypeError / ValueError: wrong dtype/shape of ``obs`` or ``action``.
        """
        self.check_obs(obs, 2)
        b, length = obs.shape[:2]
        if action.ndim != 3 or tuple(action.shape) != (b, length, self.action_dim):
            raise ValueError(
                f"action must have shape ({b}, {length}, {self.action_dim}), "
                f"got {tuple(action.shape)}"
            )
        embed = self.encoder(self.preprocess(obs.reshape(b * length, *self.obs_shape)))
        embed = embed.view(b, length, -1)
        state = state or self.initial_state(b)
        hs, zs, pm, ps, qm, qs = [], [], [], [], [], []
        for t in range(length):
            h = self.transition(state, action[:, t])
            prior_mean, prior_std = self.prior_head(h)
            post_mean, post_std = self.posterior_head(torch.cat([h, embed[:, t]], -1))
            state = LatentState(h, sample_gaussian(post_mean, post_std, generator))
            hs.append(h)
            zs.append(state.z)
            pm.append(prior_mean)
            ps.append(prior_std)
            qm.append(post_mean)
            qs.append(post_std)
        stack = lambda xs: torch.stack(xs, 1)  # noqa: E731
        return FilterResult(stack(hs), stack(zs), stack(qm), stack(qs), stack(pm), stack(ps))

    def imagine(
        self,
        state: LatentState,
        actions: Tensor,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> Tensor:
        """Open-loop prior rollout from ``state (B, ...)`` under ``actions (B, H, A)``.

        Returns features ``(B, H, F)`` of the ``H`` imagined next states.
        """
        feats = []
        for t in range(actions.shape[1]):
            state = self.prior_step(state, actions[:, t], generator, sample)
            feats.append(state.features)
        return torch.stack(feats, 1)

    # --------------------------------------------------------------------------------- loss
    def _obs_nll(self, features: Tensor, obs: Tensor) -> Tensor:
        """Gaussian negative log-likelihood (up to a constant) per step: ``(B, L)``."""
        b, length = obs.shape[:2]
        target = self.preprocess(obs.reshape(b * length, *self.obs_shape))
        pred = self.decoder(features.reshape(b * length, -1))
        std = self.config.image_obs_std if self.is_image else self.config.vector_obs_std
        err = 0.5 * ((pred - target) / std).square()
        return err.reshape(b, length, -1).sum(-1)

    def _overshooting_kl(self, post: FilterResult, action: Tensor, gen) -> Tensor:
        """Mean KL of multi-step priors against (stopped) posteriors, d = 2..distance."""
        distance = min(self.config.overshooting_distance, post.h.shape[1] - 1)
        terms = []
        state = LatentState(post.h[:, :-1], post.z[:, :-1])  # starts t = 0..L-2
        for d in range(1, distance + 1):
            n = state.h.shape[1]
            b = state.h.shape[0]
            act = action[:, d : d + n]
            flat = LatentState(state.h.reshape(b * n, -1), state.z.reshape(b * n, -1))
            h = self.transition(flat, act.reshape(b * n, -1))
            mean, std = self.prior_head(h)
            z = sample_gaussian(mean, std, gen)
            if d >= 2:
                kl = gaussian_kl(
                    post.post_mean[:, d:].detach().reshape(b * n, -1),
                    post.post_std[:, d:].detach().reshape(b * n, -1),
                    mean,
                    std,
                )
                terms.append(kl.clamp(min=self.free_nats).mean())
            state = LatentState(h.view(b, n, -1)[:, :-1], z.view(b, n, -1)[:, :-1])
            if state.h.shape[1] == 0:
                break
        return torch.stack(terms).mean() if terms else action.new_zeros(())

    def loss(
        self, batch: SequenceBatch, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Negative ELBO on ``batch`` (``obs (B, L, ...)``): ``(scalar loss, parts)``.

        ``parts`` holds floats: ``obs`` (recon NLL per step), ``reward`` (NLL per step),
        ``kl`` (mean KL per step before free nats), ``overshooting``, ``loss``.
        """
        res = self.filter_sequence(batch.obs, batch.action, generator)
        feats = res.features
        obs_nll = self._obs_nll(feats, batch.obs).mean()
        valid = (~batch.first).to(feats.dtype)
        target = self.reward_norm.normalize(batch.reward.unsqueeze(-1)).squeeze(-1)
        pred = self.reward_head(feats).squeeze(-1)
        rew_err = 0.5 * ((pred - target) / self.config.reward_std).square()
        rew_nll = (rew_err * valid).sum() / valid.sum().clamp(min=1)
        kl = gaussian_kl(res.post_mean, res.post_std, res.prior_mean, res.prior_std).mean()
        kl_term = kl.clamp(min=self.free_nats)
        total = obs_nll + rew_nll + self.config.kl_scale * kl_term
        over = batch.action.new_zeros(())
        if self.config.overshooting_distance > 1:
            over = self._overshooting_kl(res, batch.action, generator)
            total = total + self.config.overshooting_scale * over
        parts = {
            "loss": float(total.detach()),
            "obs": float(obs_nll.detach()),
            "reward": float(rew_nll.detach()),
            "kl": float(kl.detach()),
            "overshooting": float(over.detach()),
        }
        return total, parts

    @torch.no_grad()
    def open_loop_prediction(
        self,
        obs: Tensor,
        action: Tensor,
        context: int,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Filter ``context`` steps, then predict the rest open loop from the prior mean.

        Args:
            obs: ``(B, L, *obs_shape)`` real observations; action: ``(B, L, A)`` (into each step).
            context: observed steps ``C`` (1 <= C < L).

        Returns:
            decoded predictions of steps ``C..L-1``: ``(B, L - C, C_img, S, S)`` float in
            ``[-0.5, 0.5]`` for images, ``(B, L - C, O)`` for vectors.
        """
        length = obs.shape[1] if obs.ndim >= 2 else 0
        if not 1 <= context < length:
            raise ValueError(f"context must lie in [1, {length - 1}], got {context}")
        res = self.filter_sequence(obs[:, :context], action[:, :context], generator)
        feats = self.imagine(res.last, action[:, context:], generator, sample=False)
        b, horizon = feats.shape[:2]
        pred = self.decode(feats.reshape(b * horizon, -1))
        return pred.reshape(b, horizon, *pred.shape[1:])

    def open_loop_error(
        self, obs: Tensor, action: Tensor, context: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Mean squared error of :meth:`open_loop_prediction` per predicted step: ``(L - C,)``.

        Images are compared in ``[-0.5, 0.5]`` pixel units (per pixel and channel); vectors in
        env units.
        """
        pred = self.open_loop_prediction(obs, action, context, generator)
        real = obs[:, context:]
        b, horizon = real.shape[:2]
        real = self.preprocess(real.reshape(b * horizon, *self.obs_shape))
        if not self.is_image:
            real = self.obs_norm.denormalize(real)
        err = (pred.reshape(b * horizon, -1) - real.reshape(b * horizon, -1)).square()
        return err.view(b, horizon, -1).mean(dim=(0, 2))
