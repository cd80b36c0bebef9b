"""Building blocks of the RSSM: its config, Gaussian heads, and vector/image encoders/decoders.

Images enter the networks as float ``(N, C, S, S)`` in ``[-0.5, 0.5]`` (see
:func:`image_to_float`); the conv encoder halves the side with each 4x4 stride-2 layer down to
4 x 4, and the decoder mirrors it, so any power-of-two side ``S >= 8`` works (32 and 64 tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mbrl.models.configs import register_config


@register_config
@dataclass(frozen=True)
class RSSMConfig:
    """Sizes and loss settings of :class:`~mbrl.models.rssm.RSSM` (defaults sized for a 2-core CPU).

    Attributes:
        deter_size: GRU (deterministic) state size ``D`` (default 128; PlaNet: 200).
        stoch_size: stochastic state size ``S`` (default 16; PlaNet: 30).
        hidden_size: width of the MLPs around the GRU, encoder/decoder MLPs and reward head
            (default 128; PlaNet: 200).
        embed_size: vector-encoder output size (default 64; image encoders' output is fixed by
            ``cnn_depth`` and the image side).
        cnn_depth: channels of the first conv layer, doubled per layer (default 16; PlaNet: 32).
        min_std: floor on the std of prior and posterior (default 0.1).
        free_nats: KL below this many nats per step is not penalised (default ``None``: 3.0
            for images as PlaNet, 1.0 for vectors; a low-dimensional observation needs fewer
            nats than 3, and while the KL stays under the free nats the prior gets no gradient:
            on Pendulum without velocities 3.0 gave returns around -700, 1.0 around -300).
        kl_scale: weight of the KL term (default 1.0).
        overshooting_distance: latent overshooting up to this many steps; 0 or 1 = off
            (default 0).
        overshooting_scale: weight of the overshooting KL terms (default 1.0).
        vector_obs_std: fixed decoder std for (normalised) vector observations (default 0.1:
            a unit std would let the posterior ignore small but decisive features).
        image_obs_std: fixed decoder std per pixel, pixels in ``[-0.5, 0.5]`` (default 1.0).
        reward_std: fixed std of the reward head in normalised reward units (default 0.3).
        sample_latent_plans: sample the prior in latent rollouts (True, PlaNet) or follow its
            mean (False).
    """

    deter_size: int = 128
    stoch_size: int = 16
    hidden_size: int = 128
    embed_size: int = 64
    cnn_depth: int = 16
    min_std: float = 0.1
    free_nats: float | None = None
    kl_scale: float = 1.0
    overshooting_distance: int = 0
    overshooting_scale: float = 1.0
    vector_obs_std: float = 0.1
    image_obs_std: float = 1.0
    reward_std: float = 0.3
    sample_latent_plans: bool = True

    def __post_init__(self) -> None:
        for name in ("deter_size", "stoch_size", "hidden_size", "embed_size", "cnn_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.overshooting_distance < 0:
            raise ValueError(
                f"overshooting_distance must be >= 0, got {self.overshooting_distance}"
            )
        for name in ("min_std", "vector_obs_std", "image_obs_std", "reward_std"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.free_nats is not None and self.free_nats < 0:
            raise ValueError(f"free_nats must be >= 0, got {self.free_nats}")


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    """``layers`` hidden ELU layers of width ``hidden``, then a linear map to ``out_dim``."""
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        mods += [nn.Linear(dim, hidden), nn.ELU()]
        dim = hidden
    mods.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*mods)


class GaussianHead(nn.Module):
    """MLP ``(..., I) -> (mean (..., S), std (..., S))`` with ``std = softplus + min_std``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, min_std: float) -> None:
        super().__init__()
        self.net = mlp(in_dim, hidden, 2 * out_dim, layers=1)
        self.min_std = min_std

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (..., I)`` -> ``mean, std`` each ``(..., S)``."""
        mean, raw = self.net(x).chunk(2, dim=-1)
        return mean, F.softplus(raw) + self.min_std


def gaussian_kl(mean_q: Tensor, std_q: Tensor, mean_p: Tensor, std_p: Tensor) -> Tensor:
    """``KL(N(mean_q, std_q) || N(mean_p, std_p))`` summed over the last dim: ``(...)``."""
    var_ratio = (std_q / std_p).square()
    delta = ((mean_q - mean_p) / std_p).square()
    return 0.5 * (var_ratio + delta - 1.0 - var_ratio.log()).sum(-1)


def sample_gaussian(mean: Tensor, std: Tensor, generator: torch.Generator | None) -> Tensor:
    """Reparameterised sample ``mean + std * eps`` with ``eps`` from ``generator`` (same shape)."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + std * eps


def image_to_float(images: Tensor) -> Tensor:
    """``uint8 (..., C, H, W)`` -> float32 in ``[-0.5, 0.5]`` (PlaNet's pixel scaling)."""
    return images.to(torch.float32) / 255.0 - 0.5


def float_to_image(x: Tensor) -> Tensor:
    """Inverse of :func:`image_to_float`, clipped and rounded to ``uint8``."""
    return ((x + 0.5).clamp(0, 1) * 255.0).round().to(torch.uint8)


def conv_layers(side: int) -> int:
    """Number of stride-2 layers taking an ``side x side`` image down to 4 x 4.

    Raises:
        ValueError: ``side`` is not a power of two >= 8.
    """
    if side < 8 or side & (side - 1):
        raise ValueError(f"image side must be a power of two >= 8 (e.g. 32 or 64), got {side}")
    return int(math.log2(side)) - 2


class ConvEncoder(nn.Module):
    """Images ``(N, C, S, S)`` float -> embeddings ``(N, E)`` with ``E = 16 * depth * 2^(n-1)``."""

    def __init__(self, channels: int, side: int, depth: int) -> None:
        super().__init__()
        n = conv_layers(side)
        mods: list[nn.Module] = []
        c_in = channels
        for i in range(n):
            c_out = depth * 2**i
            mods += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ELU()]
            c_in = c_out
        self.net = nn.Sequential(*mods, nn.Flatten())
        self.out_dim = c_in * 16

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, S, S) -> (N, E)``."""
        return self.net(x)


class ConvDecoder(nn.Module):
    """Features ``(N, F)`` -> image means ``(N, C, S, S)`` (mirror of :class:`ConvEncoder`)."""

    def __init__(self, feature_dim: int, channels: int, side: int, depth: int) -> None:
        super().__init__()
        n = conv_layers(side)
        self.top = depth * 2 ** (n - 1)
        self.fc = nn.Linear(feature_dim, self.top * 16)
        mods: list[nn.Module] = []
        c_in = self.top
        for i in reversed(range(n)):
            last = i == 0
            c_out = channels if last else depth * 2 ** (i - 1)
            mods.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if not last:
                mods.append(nn.ELU())
            c_in = c_out
        self.net = nn.Sequential(*mods)

    def forward(self, feat: Tensor) -> Tensor:
        """``(N, F) -> (N, C, S, S)``."""
        return self.net(self.fc(feat).view(-1, self.top, 4, 4))
