"""Selection rules, progressive widening and root noise for :mod:`mbrl.planners.mcts`.

Pure tensor functions over rows of nodes: every argument is ``(R, K)`` per child slot or ``(R,)``
per node, where ``R`` rows are nodes of (possibly different) trees being descended together.
Q-values come in already min-max normalised to ``[0, 1]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def virtual_loss_q(q_norm: Tensor, visits: Tensor, total: Tensor) -> Tensor:
    """Normalised Q ``(R, K)`` with in-flight (virtual) visits scored as the worst value, 0.

    ``total = visits + virtual`` per edge ``(R, K)``; returns ``q_norm * visits / total``, and
    ``q_norm`` unchanged where nothing was visited or is in flight. This is the virtual loss
    that spreads one round's descents over different leaves.
    """
    return q_norm * (visits + (total == 0).to(visits.dtype)) / total.clamp(min=1.0)


def puct_scores(
    q_norm: Tensor,
    prior: Tensor,
    edge_visits: Tensor,
    parent_visits: Tensor,
    pb_c_init: float,
    pb_c_base: float,
) -> Tensor:
    """AlphaZero/MuZero PUCT score ``(R, K)``.

    ``q + prior * sqrt(N) / (1 + n) * (c_init + log((N + c_base + 1) / c_base))`` with ``N``
    the parent's visits ``(R,)`` and ``n`` the edge visits ``(R, K)`` (virtual ones included).
    """
    n_parent = parent_visits.unsqueeze(1)
    c = pb_c_init + torch.log((n_parent + pb_c_base + 1.0) / pb_c_base)
    return q_norm + prior * torch.sqrt(n_parent) / (1.0 + edge_visits) * c


def uct_scores(q_norm: Tensor, edge_visits: Tensor, parent_visits: Tensor, c: float) -> Tensor:
    """UCB1 score ``(R, K)``: ``q + c sqrt(ln N / n)``; unvisited edges score ``+inf``."""
    n_parent = parent_visits.clamp(min=1.0).unsqueeze(1)
    bonus = c * torch.sqrt(torch.log(n_parent) / edge_visits.clamp(min=1.0))
    return torch.where(edge_visits > 0, q_norm + bonus, torch.full_like(q_norm, torch.inf))


def widening_limit(visits: Tensor, k: float, alpha: float, max_children: int) -> Tensor:
    """Children allowed at nodes with ``visits (R,)``: ``min(max_children, ceil(k n^alpha))``, >= 1."""
    allowed = torch.ceil(k * visits.clamp(min=1.0) ** alpha)
    return allowed.clamp(min=1.0, max=float(max_children)).to(torch.long)


def sample_gamma(concentration: Tensor, generator: torch.Generator | None) -> Tensor:
    """Gamma(``concentration``, 1) samples of the same shape, drawn from ``generator``.

    Marsaglia & Tsang (2000) rejection sampling, with the ``alpha < 1`` boost
    ``Gamma(alpha) = Gamma(alpha + 1) * U^(1 / alpha)``. (torch's own gamma sampler takes no
    generator.)

    Raises:
        ValueError: for non-positive concentrations.
    """
    if not bool((concentration > 0).all()):
        raise ValueError(f"concentration must be > 0, got {concentration}")
    dev, dt = concentration.device, concentration.dtype
    small = concentration < 1.0
    a = torch.where(small, concentration + 1.0, concentration)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.zeros_like(a)
    done = torch.zeros(a.shape, dtype=torch.bool, device=dev)
    while not bool(done.all()):
        x = torch.randn(a.shape, generator=generator, device=dev, dtype=dt)
        u = torch.rand(a.shape, generator=generator, device=dev, dtype=dt)
        v = (1.0 + c * x) ** 3
        ok = (v > 0) & (
            torch.log(u.clamp(min=1e-30)) < 0.5 * x * x + d - d * v + d * torch.log(v.clamp(1e-30))
        )
        new = ok & ~done
        out = torch.where(new, d * v, out)
        done = done | ok
    boost = torch.rand(a.shape, generator=generator, device=dev, dtype=dt).clamp(min=1e-30)
    return torch.where(small, out * boost ** (1.0 / concentration), out)


def dirichlet_noise(
    shape: tuple[int, int], alpha: float, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Symmetric Dirichlet(``alpha``) samples ``(R, K)`` (rows sum to 1)."""
    g = sample_gamma(torch.full(shape, float(alpha), device=device), generator)
    g = g.clamp(min=1e-30)
    return g / g.sum(dim=1, keepdim=True)


def visit_policy(
    visits: Tensor, temperature: float, generator: torch.Generator | None, tie_break: Tensor
) -> tuple[Tensor, Tensor]:
    """Acting from root visit counts ``visits (B, K)``.

    Args:
        visits: root child visit counts ``(B, K)``.
        temperature: 0 picks the most visited slot (ties broken by ``tie_break``); ``T > 0``
            samples slot ``k`` with probability ``visits_k^(1/T) / sum``.
        generator: randomness for ``T > 0``.
        tie_break: ``(B, K)`` values in ``[0, 1]`` (e.g. normalised Q) deciding equal counts.

    Returns:
        ``(slot (B,), probabilities (B, K))`` where the probabilities are the
        temperature-adjusted visit distribution (one-hot for ``T == 0``).
    """
    if temperature == 0:
        slot = torch.argmax(visits + 0.5 * tie_break.clamp(0.0, 1.0), dim=1)
        probs = torch.nn.functional.one_hot(slot, visits.shape[1]).to(visits.dtype)
        return slot, probs
    logits = torch.log(visits.clamp(min=1e-30)) / temperature
    logits = torch.where(visits > 0, logits, torch.full_like(logits, -math.inf))
    probs = torch.softmax(logits, dim=1)
    slot = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return slot, probs
