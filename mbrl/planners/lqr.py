"""Exact linear-quadratic regulators: finite-horizon time-varying LQR and infinite-horizon gains.

Conventions (shared with :mod:`mbrl.planners.ilqr`): ``B`` problems, horizon ``H``, state size
``O``, action size ``A``. Dynamics ``x_{t+1} = A_t x_t + B_t u_t + c_t``; stage cost

    l_t(x, u) = 1/2 x' Q_t x + 1/2 u' R_t u + u' N_t x + q_t' x + r_t' u

and terminal cost ``1/2 x' Qf x + qf' x``. The optimal policy is affine,
``u_t = K_t x_t + k_t`` (note the sign: ``K`` already includes the minus), and the cost-to-go is
``1/2 x' P_t x + p_t' x + const``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class LQRSolution:
    """Result of :meth:`LQR.solve`.

    Attributes:
        K: feedback gains ``(B, H, A, O)``.
        k: feedforward terms ``(B, H, A)`` (zero without linear costs or drift).
        P: cost-to-go Hessians ``(B, H + 1, O, O)`` (``P[:, H]`` is the terminal ``Qf``).
        p: cost-to-go gradients ``(B, H + 1, O)``.
    """

    K: Tensor
    k: Tensor
    P: Tensor
    p: Tensor


def _sym(m: Tensor) -> Tensor:
    return 0.5 * (m + m.transpose(-1, -2))


def _stage(
    t: Tensor | None,
    name: str,
    tail: tuple[int, ...],
    batch: int,
    horizon: int,
    like: Tensor,
) -> Tensor:
    """Broadcast a stage tensor given as ``tail``, ``(H, *tail)`` or ``(B, H, *tail)``."""
    if t is None:
        return like.new_zeros((batch, horizon, *tail))
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    n = len(tail)
    if tuple(t.shape[t.ndim - n :]) != tail or t.ndim not in (n, n + 1, n + 2):
        raise ValueError(
            f"{name} must have shape {tail}, (H, *{tail}) or (B, H, *{tail}), got {tuple(t.shape)}"
        )
    if t.ndim == n + 1 and t.shape[0] != horizon:
        raise ValueError(f"{name} has horizon {t.shape[0]}, expected {horizon}")
    if t.ndim == n + 2 and (t.shape[0] not in (1, batch) or t.shape[1] != horizon):
        raise ValueError(
            f"{name} has leading dims {tuple(t.shape[:2])}, expected ({batch}, {horizon})"
        )
    while t.ndim < n + 2:
        t = t.unsqueeze(0)
    return t.expand(batch, horizon, *tail)


def _terminal(t: Tensor | None, name: str, tail: tuple[int, ...], batch: int, like: Tensor):
    if t is None:
        return like.new_zeros((batch, *tail))
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    n = len(tail)
    if tuple(t.shape[t.ndim - n :]) != tail or t.ndim not in (n, n + 1):
        raise ValueError(f"{name} must have shape {tail} or (B, *{tail}), got {tuple(t.shape)}")
    if t.ndim == n + 1 and t.shape[0] not in (1, batch):
        raise ValueError(f"{name} has batch size {t.shape[0]}, expected {batch}")
    return (t if t.ndim == n + 1 else t.unsqueeze(0)).expand(batch, *tail)


class LQR:
    """Finite-horizon, time-varying, batched LQR solved by the backward Riccati recursion.

    Every stage tensor may be given shared (``(O, O)``), per time step (``(H, O, O)``) or per
    problem and time step (``(B, H, O, O)``); terminal tensors as ``(O, O)`` or ``(B, O, O)``.
    ``B`` and ``H`` are read from the tensors that carry them (``horizon`` is needed when none
    does). Everything runs in ``A``'s dtype (use float64 for accurate gains) and device.

    Args:
        A: state matrices ``(..., O, O)``; B: input matrices ``(..., O, A)``.
        Q: state cost ``(..., O, O)``; R: action cost ``(..., A, A)`` (positive definite).
        N: cross cost ``(..., A, O)`` (default 0); q / r: linear costs ``(..., O)`` / ``(..., A)``.
        c: dynamics drift ``(..., O)`` (default 0).
        Qf / qf: terminal cost ``(O, O)`` / ``(O,)`` (default 0).
        horizon: ``H`` when no stage tensor has a time axis.

    Raises:
        ValueError: inconsistent shapes or horizons.
    """

    def __init__(
        self,
        A: Tensor,
        B: Tensor,
        Q: Tensor,
        R: Tensor,
        *,
        N: Tensor | None = None,
        q: Tensor | None = None,
        r: Tensor | None = None,
        c: Tensor | None = None,
        Qf: Tensor | None = None,
        qf: Tensor | None = None,
        horizon: int | None = None,
    ) -> None:
        A = torch.as_tensor(A)
        if not A.is_floating_point():
            A = A.to(torch.get_default_dtype())
        if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
            raise ValueError(f"A must have shape (..., O, O), got {tuple(A.shape)}")
        B = torch.as_tensor(B, dtype=A.dtype, device=A.device)
        if B.ndim < 2 or B.shape[-2] != A.shape[-1]:
            raise ValueError(f"B must have shape (..., {A.shape[-1]}, A), got {tuple(B.shape)}")
        o, a = int(A.shape[-1]), int(B.shape[-1])
        stage_args = {"A": (A, 2), "B": (B, 2), "Q": (Q, 2), "R": (R, 2), "N": (N, 2)}
        stage_args.update({"q": (q, 1), "r": (r, 1), "c": (c, 1)})
        batch, horizon_found = 1, None
        for name, (t, n) in stage_args.items():
            if t is None:
                continue
            nd = torch.as_tensor(t).ndim
            if nd == n + 2:
                batch = max(batch, int(torch.as_tensor(t).shape[0]))
            if nd >= n + 1:
                h = int(torch.as_tensor(t).shape[nd - n - 1])
                if horizon_found is not None and h != horizon_found:
                    raise ValueError(f"{name} has horizon {h}, others have {horizon_found}")
                horizon_found = h
        if horizon is not None:
            check_positive_int(horizon, "horizon")
            if horizon_found is not None and horizon != horizon_found:
                raise ValueError(f"horizon={horizon} but the stage tensors have {horizon_found}")
            horizon_found = horizon
        if horizon_found is None:
            raise ValueError("horizon must be given when no stage tensor has a time axis")
        h = horizon_found
        self.batch, self.horizon, self.obs_dim, self.action_dim = batch, h, o, a
        self.A = _stage(A, "A", (o, o), batch, h, A)
        self.B = _stage(B, "B", (o, a), batch, h, A)
        self.Q = _stage(Q, "Q", (o, o), batch, h, A)
        self.R = _stage(R, "R", (a, a), batch, h, A)
        self.N = _stage(N, "N", (a, o), batch, h, A)
        self.q = _stage(q, "q", (o,), batch, h, A)
        self.r = _stage(r, "r", (a,), batch, h, A)
        self.c = _stage(c, "c", (o,), batch, h, A)
        self.Qf = _terminal(Qf, "Qf", (o, o), batch, A)
        self.qf = _terminal(qf, "qf", (o,), batch, A)

    def solve(self) -> LQRSolution:
        """Backward Riccati recursion over the horizon, batched over the ``B`` problems.

        Returns:
            :class:`LQRSolution` with ``K (B, H, A, O)``, ``k (B, H, A)``,
            ``P (B, H + 1, O, O)``, ``p (B, H + 1, O)``.

        Raises:
            ValueError: ``R + B' P B`` is not positive definite at some step.
        """
        h = self.horizon
        P, p = _sym(self.Qf), self.qf
        Ks, ks, Ps, ps = [], [], [P], [p]
        for t in range(h - 1, -1, -1):
            A, B = self.A[:, t], self.B[:, t]
            At, Bt = A.transpose(-1, -2), B.transpose(-1, -2)
            v = p + (P @ self.c[:, t].unsqueeze(-1)).squeeze(-1)
            Qx = self.q[:, t] + (At @ v.unsqueeze(-1)).squeeze(-1)
            Qu = self.r[:, t] + (Bt @ v.unsqueeze(-1)).squeeze(-1)
            Qxx = self.Q[:, t] + At @ P @ A
            Quu = _sym(self.R[:, t] + Bt @ P @ B)
            Qux = self.N[:, t] + Bt @ P @ A
            L, info = torch.linalg.cholesky_ex(Quu)
            if bool((info != 0).any()):
                bad = torch.nonzero(info != 0).flatten().tolist()
                raise ValueError(
                    f"R + B'PB is not positive definite at step {t} for problem(s) {bad}"
                )
            K = -torch.cholesky_solve(Qux, L)
            k = -torch.cholesky_solve(Qu.unsqueeze(-1), L).squeeze(-1)
            Kt = K.transpose(-1, -2)
            P = _sym(Qxx + Kt @ Qux)
            p = Qx + (Kt @ Qu.unsqueeze(-1)).squeeze(-1)
            Ks.append(K)
            ks.append(k)
            Ps.append(P)
            ps.append(p)
        return LQRSolution(
            K=torch.stack(Ks[::-1], 1),
            k=torch.stack(ks[::-1], 1),
            P=torch.stack(Ps[::-1], 1),
            p=torch.stack(ps[::-1], 1),
        )

    def rollout(self, x0: Tensor, solution: LQRSolution) -> tuple[Tensor, Tensor]:
        """Apply ``u_t = K_t x_t + k_t`` from ``x0 (B, O)`` (or ``(O,)``).

        A single problem (``B = 1``) is rolled out from every row of ``x0``; otherwise ``x0``
        has one row per problem (or one row for all).

        Returns:
            ``(x (N, H + 1, O), u (N, H, A))`` with ``N = max(B, len(x0))``.
        """
        x = torch.as_tensor(x0, dtype=self.A.dtype, device=self.A.device)
        if x.ndim == 1:
            x = x.unsqueeze(0)
        if (
            x.ndim != 2
            or x.shape[-1] != self.obs_dim
            or (self.batch != 1 and x.shape[0] not in (1, self.batch))
        ):
            raise ValueError(
                f"x0 must have shape ({self.obs_dim},) or (N, {self.obs_dim}) with N = 1 or "
                f"{self.batch}, got {tuple(x.shape)}"
            )
        n = max(self.batch, x.shape[0])
        x = x.expand(n, -1)

        def rows(t: Tensor) -> Tensor:
            return t.expand(n, *t.shape[1:])

        xs, us = [x], []
        for t in range(self.horizon):
            u = (rows(solution.K[:, t]) @ x.unsqueeze(-1)).squeeze(-1) + rows(solution.k[:, t])
            x = (
                (rows(self.A[:, t]) @ x.unsqueeze(-1)).squeeze(-1)
                + (rows(self.B[:, t]) @ u.unsqueeze(-1)).squeeze(-1)
                + rows(self.c[:, t])
            )
            xs.append(x)
            us.append(u)
        return torch.stack(xs, 1), torch.stack(us, 1)

    def cost(self, x: Tensor, u: Tensor) -> Tensor:
        """Total cost ``(B,)`` of trajectories ``x (B, H + 1, O)``, ``u (B, H, A)``."""
        xs, xh = x[:, :-1].unsqueeze(-1), x[:, -1].unsqueeze(-1)
        uc = u.unsqueeze(-1)

        def quad(m: Tensor, v: Tensor, w: Tensor) -> Tensor:
            return (v.transpose(-1, -2) @ m @ w).squeeze(-1).squeeze(-1)

        stage = (
            0.5 * quad(self.Q, xs, xs)
            + 0.5 * quad(self.R, uc, uc)
            + quad(self.N, uc, xs)
            + (self.q * x[:, :-1]).sum(-1)
            + (self.r * u).sum(-1)
        )
        terminal = 0.5 * quad(self.Qf, xh, xh) + (self.qf * x[:, -1]).sum(-1)
        return stage.sum(1) + terminal

    @staticmethod
    def infinite_horizon(
        A: Tensor,
        B: Tensor,
        Q: Tensor,
        R: Tensor,
        N: Tensor | None = None,
        *,
        tol: float = 1e-12,
        max_iterations: int = 100,
    ) -> tuple[Tensor, Tensor]:
        """Stationary gains of a time-invariant system: solves the discrete algebraic Riccati eq.

        Uses the structure-preserving doubling algorithm (quadratic convergence), batched over
        any leading dims. Requires ``(A, B)`` stabilisable and ``(A, Q)`` detectable.

        Args:
            A: ``(..., O, O)``; B: ``(..., O, A)``; Q: ``(..., O, O)``; R: ``(..., A, A)``;
            N: cross cost ``(..., A, O)`` (default 0).
            tol: relative change of ``P`` at which to stop.
            max_iterations: doubling steps before giving up.

        Returns:
            ``(K (..., A, O), P (..., O, O))`` with ``u = K x`` optimal and cost-to-go
            ``1/2 x' P x``.

        Raises:
            ValueError: no convergence, non-finite values, or a closed loop ``A + B K`` that is
                not stable (e.g. an unstabilisable system).
        """
        A = torch.as_tensor(A)
        B = torch.as_tensor(B, dtype=A.dtype, device=A.device)
        Q = torch.as_tensor(Q, dtype=A.dtype, device=A.device)
        R = torch.as_tensor(R, dtype=A.dtype, device=A.device)
        o = A.shape[-1]
        eye = torch.eye(o, dtype=A.dtype, device=A.device)
        Bt = B.transpose(-1, -2)
        Ak, Hk = A, Q
        if N is not None:
            N = torch.as_tensor(N, dtype=A.dtype, device=A.device)
            RiN = torch.linalg.solve(R, N)
            Ak = A - B @ RiN
            Hk = Q - N.transpose(-1, -2) @ RiN
        Gk = B @ torch.linalg.solve(R, Bt)
        Hk = _sym(Hk)
        for _ in range(max_iterations):
            W = eye + Gk @ Hk
            WiA = torch.linalg.solve(W, Ak)
            WiG = torch.linalg.solve(W, Gk)
            H_new = _sym(Hk + Ak.transpose(-1, -2) @ Hk @ WiA)
            Gk = _sym(Gk + Ak @ WiG @ Ak.transpose(-1, -2))
            Ak = Ak @ WiA
            change = (H_new - Hk).flatten(-2).norm(dim=-1)
            scale = H_new.flatten(-2).norm(dim=-1).clamp_min(1e-300)
            Hk = H_new
            if not bool(torch.isfinite(Hk).all()):
                raise ValueError("the Riccati iteration diverged (is (A, B) stabilisable?)")
            if bool((change <= tol * scale).all()):
                break
        else:
            raise ValueError(
                f"the Riccati iteration did not converge in {max_iterations} doubling steps"
            )
        P = Hk
        cross = Bt @ P @ A if N is None else Bt @ P @ A + N
        K = -torch.linalg.solve(_sym(R + Bt @ P @ B), cross)
        radius = torch.linalg.eigvals(A + B @ K).abs().amax(-1)
        if not bool(torch.isfinite(K).all()) or bool((radius >= 1.0).any()):
            raise ValueError(
                "the Riccati iteration found no stabilising solution (closed-loop spectral "
                f"radius {radius.max().item():.4g} >= 1): is (A, B) stabilisable and (A, Q) "
                "detectable?"
            )
        return K, P
