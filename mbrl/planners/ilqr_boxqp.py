"""Batched box-constrained QP by projected Newton (Tassa, Mansard & Todorov 2014, "boxQP").

Used by the control-limited iLQR backward pass for the feedforward term; the free/clamped split
it returns gives the feedback gains (zero rows on clamped action dimensions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

_STEPS = torch.tensor([0.6**i for i in range(20)])
"""Projected line-search step sizes, tried all at once (largest accepted wins)."""


@dataclass(frozen=True)
class BoxQPResult:
    """Solution of :func:`box_qp` for ``N`` problems of size ``n``.

    Attributes:
        x: minimisers ``(N, n)`` within the bounds.
        free: bool ``(N, n)``: dimensions not held at a bound by the gradient.
        free_hessian_cholesky: lower Cholesky factor ``(N, n, n)`` of the Hessian restricted to
            the free dimensions, with identity rows/columns on the clamped ones (so solving with
            it returns zero on clamped dimensions for right-hand sides masked to the free ones).
        ok: bool ``(N,)``: the Hessian was positive definite on the free subspace.
    """

    x: Tensor
    free: Tensor
    free_hessian_cholesky: Tensor
    ok: Tensor


def _value(H: Tensor, g: Tensor, x: Tensor) -> Tensor:
    return 0.5 * (x.unsqueeze(-2) @ H @ x.unsqueeze(-1)).squeeze(-1).squeeze(-1) + (g * x).sum(-1)


def _free_factor(H: Tensor, free: Tensor) -> tuple[Tensor, Tensor]:
    clamped = ~free
    mask = (free.unsqueeze(-1) & free.unsqueeze(-2)).to(H.dtype)
    Hf = H * mask + torch.diag_embed(clamped.to(H.dtype))
    L, info = torch.linalg.cholesky_ex(Hf)
    return L, info == 0


def box_qp(
    H: Tensor,
    g: Tensor,
    low: Tensor,
    high: Tensor,
    x0: Tensor | None = None,
    *,
    max_iterations: int = 50,
    tol: float = 1e-10,
) -> BoxQPResult:
    """Minimise ``1/2 x' H x + g' x`` subject to ``low <= x <= high``, batched.

    Projected Newton: at each iteration the dimensions at a bound whose gradient pushes outward
    are clamped, a Newton step is taken on the rest and a projected Armijo line search (all step
    sizes evaluated at once) picks the largest step with sufficient decrease.

    Args:
        H: Hessians ``(N, n, n)``, symmetric (positive definite for a unique solution).
        g: gradients ``(N, n)``.
        low / high: bounds ``(N, n)`` (``-inf`` / ``inf`` allowed; ``low <= high``).
        x0: starting points ``(N, n)`` (default 0, projected into the box).
        max_iterations: Newton iterations at most.
        tol: stop when the free gradient's norm or the relative improvement falls below it.

    Returns:
        :class:`BoxQPResult`.

    Raises:
        ValueError: mismatched shapes.
    """
    if H.ndim != 3 or H.shape[-1] != H.shape[-2]:
        raise ValueError(f"H must have shape (N, n, n), got {tuple(H.shape)}")
    shape = H.shape[:2]
    for name, t in (("g", g), ("low", low), ("high", high)):
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    x = torch.zeros_like(g) if x0 is None else x0.to(g.dtype)
    x = torch.maximum(torch.minimum(x, high), low)
    value = _value(H, g, x)
    ok = torch.ones(shape[0], dtype=torch.bool, device=g.device)
    done = torch.zeros_like(ok)
    steps = _STEPS.to(dtype=g.dtype, device=g.device)
    for _ in range(max_iterations):
        grad = g + (H @ x.unsqueeze(-1)).squeeze(-1)
        clamped = ((x <= low) & (grad > 0)) | ((x >= high) & (grad < 0))
        free = ~clamped
        L, pd = _free_factor(H, free)
        ok = ok & (pd | done)
        grad_free = grad * free
        done = done | ~ok | (grad_free.norm(dim=-1) < tol) | ~free.any(-1)
        if bool(done.all()):
            break
        direction = -torch.cholesky_solve(grad_free.unsqueeze(-1), L).squeeze(-1)
        # Projected Armijo search over every step size at once: (S, N, n) candidates.
        cand = x.unsqueeze(0) + steps.view(-1, 1, 1) * direction.unsqueeze(0)
        cand = torch.maximum(torch.minimum(cand, high), low)
        cand_value = _value(H.unsqueeze(0), g.unsqueeze(0), cand)
        decrease = (grad.unsqueeze(0) * (cand - x.unsqueeze(0))).sum(-1)
        accept = cand_value - value.unsqueeze(0) <= 0.1 * decrease
        accept = accept & torch.isfinite(cand_value)
        first = torch.where(accept.any(0), accept.to(torch.int8).argmax(0), -1)
        moved = (first >= 0) & ~done
        pick = first.clamp_min(0)
        idx = torch.arange(shape[0], device=g.device)
        new_x = cand[pick, idx]
        new_value = cand_value[pick, idx]
        improvement = value - new_value
        x = torch.where(moved.unsqueeze(-1), new_x, x)
        done = done | ~moved | (improvement < tol * (1.0 + value.abs()))
        value = torch.where(moved, new_value, value)
    grad = g + (H @ x.unsqueeze(-1)).squeeze(-1)
    free = ~(((x <= low) & (grad > 0)) | ((x >= high) & (grad < 0)))
    L, pd = _free_factor(H, free)
    return BoxQPResult(x=x, free=free, free_hessian_cholesky=L, ok=ok & pd)
