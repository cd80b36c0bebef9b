"""Sampling helpers for trajectory optimisers: coloured noise and per-row generators."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Generators = torch.Generator | Sequence[torch.Generator]
"""One generator for every problem of a batch, or one per problem (row)."""

Sampler = Callable[[tuple[int, ...], torch.Generator], Tensor]
"""``sampler(shape, generator) -> samples of that shape``."""


def colored_noise(
    shape: tuple[int, ...],
    beta: float,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Unit-variance Gaussian noise ``(*batch, H, A)`` with spectrum ``~ 1 / f^beta`` along ``H``.

    ``beta = 0`` is white noise; iCEM (Pinneri et al. 2020) uses ``beta`` around 2-3 for smooth,
    low-frequency action sequences. Leading dimensions are filled in order, so ``(1, K, H, A)``
    draws the same numbers as ``(K, H, A)`` from the same generator state.
    """
    *batch, h, a = shape
    if beta == 0 or h < 2:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    freqs = torch.fft.rfftfreq(h, device=device, dtype=torch.float32)
    freqs[0] = freqs[1]  # the DC term would be infinite; give it the lowest frequency's weight
    scale = freqs.pow(-beta / 2.0)
    nf = freqs.shape[0]
    real = torch.randn((*batch, a, nf), generator=generator, device=device)
    imag = torch.randn((*batch, a, nf), generator=generator, device=device)
    spectrum = torch.complex(real, imag) * scale
    noise = torch.fft.irfft(spectrum, n=h, dim=-1)
    # Exact per-element variance of irfft of this spectrum: (DC + 4 * interior + Nyquist) / H^2.
    weights = torch.full_like(scale, 4.0)
    weights[0] = 1.0
    if h % 2 == 0:
        weights[-1] = 1.0
    noise = noise / ((weights * scale.square()).sum().sqrt() / h)
    return noise.transpose(-1, -2).to(dtype)


def sample_rows(
    sampler: Sampler, rows: int, shape: tuple[int, ...], generators: Generators
) -> Tensor:
    """Samples ``(rows, *shape)``: all rows at once from one generator, or row ``b`` from
    ``generators[b]`` (so a batched call draws what ``rows`` single-row calls would).

    Raises:
        ValueError: a sequence of generators whose length is not ``rows``.
    """
    if isinstance(generators, torch.Generator):
        return sampler((rows, *shape), generators)
    if len(generators) != rows:
        raise ValueError(
            f"generators must hold one generator per row ({rows}), got {len(generators)}"
        )
    return torch.stack([sampler((1, *shape), g)[0] for g in generators])
