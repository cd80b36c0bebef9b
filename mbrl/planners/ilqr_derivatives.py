"""Row-wise derivatives for iLQR: dynamics Jacobians and stage-cost gradients/Hessians.

Every :class:`~mbrl.models.base.DynamicsModel` treats its ``M`` rows independently (the row
layout convention of :mod:`mbrl.models.base`), and so do reward functions. The Jacobian of the
row-sum ``sum_m f(x_m, u_m)`` w.r.t. the stacked inputs is therefore the per-row Jacobian, and
one forward pass plus one vectorised backward pass (``is_grads_batched``: ``torch.func.vmap``
over the ``O`` output directions) gives all ``M = B * H`` Jacobians at once, with no Python loop
over rows, time steps or state dimensions. The cost Hessian is the Jacobian of the row-wise
gradient, obtained the same way by double backward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.models.base import DynamicsModel


class NotDifferentiableError(TypeError):
    """The dynamics model (or cost) cannot be differentiated by autograd."""


@dataclass(frozen=True)
class Derivatives:
    """Local models of the dynamics and the weighted stage cost at ``M`` points.

    Attributes:
        f_x: ``(M, S, S)`` state Jacobians; f_u: ``(M, S, A)`` action Jacobians.
        l_x: ``(M, S)``; l_u: ``(M, A)`` cost gradients.
        l_xx: ``(M, S, S)``; l_uu: ``(M, A, A)``; l_ux: ``(M, A, S)`` cost Hessian blocks.
    """

    f_x: Tensor
    f_u: Tensor
    l_x: Tensor
    l_u: Tensor
    l_xx: Tensor
    l_uu: Tensor
    l_ux: Tensor

    def view(self, batch: int, horizon: int) -> Derivatives:
        """Reshape every field from ``(M, ...)`` to ``(B, H, ...)`` with ``M = B * H``."""
        return Derivatives(
            *(t.reshape(batch, horizon, *t.shape[1:]) for t in self.__dict__.values())
        )


def _basis(n: int, rows: int, like: Tensor) -> Tensor:
    """Batched grad outputs ``(n, rows, n)``: direction ``i`` selects output ``i`` of every row."""
    eye = torch.eye(n, dtype=like.dtype, device=like.device)
    return eye.unsqueeze(1).expand(n, rows, n).contiguous()


def dynamics_jacobians(
    model: DynamicsModel, state: Tensor, action: Tensor, name: str | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Next state and Jacobians of ``model.step`` at ``M`` points, vectorised.

    Args:
        model: a differentiable model whose state is a tensor ``(M, S)``.
        state: ``(M, S)``; action: ``(M, A)``.
        name: the model's name in error messages (default: its class name; iLQR passes the
            underlying model's for a :meth:`~mbrl.models.base.DynamicsModel.propagating` view).

    Returns:
        ``(next_state (M, S), f_x (M, S, S), f_u (M, S, A))`` with
        ``f_x[m, i, j] = d next_state[m, i] / d state[m, j]``.

    Raises:
        NotDifferentiableError: ``model.step`` raises under autograd, returns something that
            does not depend on its inputs through autograd (detached, numpy), or has the wrong
            shape. The message names the model.
    """
    name = type(model).__name__ if name is None else name
    x = state.detach().clone().requires_grad_(True)
    u = action.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            y = model.step(x, u)
    except Exception as err:
        raise NotDifferentiableError(
            f"iLQR differentiates through the dynamics model, but {name}.step raised while "
            f"tracking gradients: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(y, Tensor) or tuple(y.shape) != tuple(x.shape):
        raise NotDifferentiableError(
            f"iLQR needs {name}.step to map a state tensor {tuple(x.shape)} to one of the same "
            f"shape, got {type(y).__name__} {tuple(getattr(y, 'shape', ()))}"
        )
    if not y.requires_grad:
        raise NotDifferentiableError(
            f"{name}.step returned a tensor that does not depend on the state or action through "
            "autograd (detached or computed outside torch), so iLQR cannot linearise it; use a "
            "differentiable model or a sampling planner (cem, mppi)"
        )
    m, s = x.shape
    try:
        gx, gu = torch.autograd.grad(
            y, (x, u), _basis(s, m, y), is_grads_batched=True, allow_unused=True
        )
    except Exception as err:
        raise NotDifferentiableError(
            f"iLQR could not differentiate {name}.step (autograd failed): "
            f"{type(err).__name__}: {err}"
        ) from err
    f_x = torch.zeros(m, s, s, dtype=y.dtype, device=y.device) if gx is None else gx.transpose(0, 1)
    f_u = (
        torch.zeros(m, s, u.shape[1], dtype=y.dtype, device=y.device)
        if gu is None
        else gu.transpose(0, 1)
    )
    return y.detach(), f_x, f_u


def cost_derivatives(
    cost: Callable[[Tensor, Tensor, Tensor], Tensor],
    state: Tensor,
    action: Tensor,
    next_state: Tensor,
    f_x: Tensor,
    f_u: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradient and Hessian of ``l(x, u) = cost(x, u, f(x, u))`` at ``M`` points, vectorised.

    The cost's derivatives w.r.t. ``z = (x, u, x')`` are exact (autograd, double backward);
    they are chained through the dynamics Jacobians (Gauss-Newton in the dynamics: the
    dynamics' second derivatives are dropped, as in iLQR).

    Args:
        cost: ``(x (M, S), u (M, A), x' (M, S)) -> (M,)`` per-row cost.
        state: ``(M, S)``; action: ``(M, A)``; next_state: ``(M, S)`` (``f(x, u)``).
        f_x: ``(M, S, S)``; f_u: ``(M, S, A)`` dynamics Jacobians.

    Returns:
        ``(l_x (M, S), l_u (M, A), l_xx (M, S, S), l_uu (M, A, A), l_ux (M, A, S))``.

    Raises:
        NotDifferentiableError: the cost raises under autograd.
    """
    m, s = state.shape
    a = action.shape[1]
    d = 2 * s + a
    z = torch.cat([state, action.to(state.dtype), next_state], dim=1).detach().requires_grad_(True)
    g = h = None
    try:
        with torch.enable_grad():
            c = cost(z[:, :s], z[:, s : s + a], z[:, s + a :])
            if c.requires_grad:
                (g,) = torch.autograd.grad(c.sum(), z, create_graph=True, allow_unused=True)
            if g is not None and g.requires_grad:
                (h,) = torch.autograd.grad(
                    g, z, _basis(d, m, g), is_grads_batched=True, allow_unused=True
                )
    except Exception as err:
        raise NotDifferentiableError(
            f"iLQR could not differentiate the cost (minus the reward function): "
            f"{type(err).__name__}: {err}"
        ) from err
    g = torch.zeros(m, d, dtype=z.dtype, device=z.device) if g is None else g.detach()
    h = torch.zeros(m, d, d, dtype=z.dtype, device=z.device) if h is None else h.transpose(0, 1)
    h = 0.5 * (h + h.transpose(1, 2)).detach()
    # Chain through x' = f(x, u): J = [[I, 0], [0, I], [f_x, f_u]] of shape (M, D, S + A).
    eye = torch.eye(s + a, dtype=z.dtype, device=z.device).expand(m, s + a, s + a)
    jac = torch.cat([eye, torch.cat([f_x, f_u], dim=2)], dim=1)
    grad = (jac.transpose(1, 2) @ g.unsqueeze(-1)).squeeze(-1)
    hess = jac.transpose(1, 2) @ h @ jac
    return grad[:, :s], grad[:, s:], hess[:, :s, :s], hess[:, s:, s:], hess[:, s:, :s]
