"""Sampling helpers for trajectory optimisers: coloured (power-law) noise along the horizon."""

from __future__ import annotations

import torch
from torch import Tensor


def colored_noise(
    shape: tuple[int, int, int],
    beta: float,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Unit-variance Gaussian noise ``(K, H, A)`` with power spectrum ``~ 1 / f^beta`` along ``H``.

    ``beta = 0`` is white noise; iCEM (Pinneri et al. 2020) uses ``beta`` around 2-3 for smooth,
    low-frequency action sequences.
    """
    k, h, a = shape
    if beta == 0 or h < 2:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    freqs = torch.fft.rfftfreq(h, device=device, dtype=torch.float32)
    freqs[0] = freqs[1]  # the DC term would be infinite; give it the lowest frequency's weight
    scale = freqs.pow(-beta / 2.0)
    nf = freqs.shape[0]
    real = torch.randn((k, a, nf), generator=generator, device=device)
    imag = torch.randn((k, a, nf), generator=generator, device=device)
    spectrum = torch.complex(real, imag) * scale
    noise = torch.fft.irfft(spectrum, n=h, dim=-1)
    # Exact per-element variance of irfft of this spectrum: (DC + 4 * interior + Nyquist) / H^2.
    weights = torch.full_like(scale, 4.0)
    weights[0] = 1.0
    if h % 2 == 0:
        weights[-1] = 1.0
    noise = noise / ((weights * scale.square()).sum().sqrt() / h)
    return noise.transpose(1, 2).to(dtype)
