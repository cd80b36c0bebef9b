"""Exact LQR: Riccati recursion vs scipy's DARE and vs a direct least-squares solve."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from mbrl.planners.lqr import LQR

F64 = torch.float64


def _random_system(gen: torch.Generator, o: int = 4, a: int = 2):
    A = 0.7 * torch.randn(o, o, generator=gen, dtype=F64)
    B = torch.randn(o, a, generator=gen, dtype=F64)
    M = torch.randn(o, o, generator=gen, dtype=F64)
    Q = M @ M.T / o + 0.1 * torch.eye(o, dtype=F64)
    R = 0.5 * torch.eye(a, dtype=F64)
    N = 0.05 * torch.randn(a, o, generator=gen, dtype=F64)
    return A, B, Q, R, N


def _scipy_gain(A, B, Q, R, N=None):
    a, b, q, r = (t.numpy() for t in (A, B, Q, R))
    s = None if N is None else N.numpy().T
    P = scipy.linalg.solve_discrete_are(a, b, q, r, s=s)
    cross = b.T @ P @ a + (0 if N is None else N.numpy())
    return np.linalg.solve(r + b.T @ P @ b, cross), P


def _rel(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(x - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("cross", [False, True])
def test_infinite_horizon_gain_matches_scipy_dare(cross: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    A, B, Q, R, N = _random_system(gen)
    N = N if cross else None
    K_ref, P_ref = _scipy_gain(A, B, Q, R, N)
    K, P = LQR.infinite_horizon(A, B, Q, R, N)
    # Our K includes the minus sign: u = K x.
    assert _rel(-K.numpy(), K_ref) < 1e-5
    assert _rel(P.numpy(), P_ref) < 1e-5


def test_long_horizon_riccati_gain_matches_scipy_dare() -> None:
    gen = torch.Generator().manual_seed(2)
    A, B, Q, R, N = _random_system(gen)
    K_ref, P_ref = _scipy_gain(A, B, Q, R, N)
    sol = LQR(A, B, Q, R, N=N, horizon=300).solve()
    assert sol.K.shape == (1, 300, 2, 4) and sol.P.shape == (1, 301, 4, 4)
    assert _rel(-sol.K[0, 0].numpy(), K_ref) < 1e-5
    assert _rel(sol.P[0, 0].numpy(), P_ref) < 1e-5
    # Near the end of the horizon the gains differ (finite-horizon effect): not a trivial match.
    assert _rel(-sol.K[0, -1].numpy(), K_ref) > 1e-2


def test_infinite_horizon_batched_over_leading_dims() -> None:
    gen = torch.Generator().manual_seed(3)
    systems = [_random_system(gen) for _ in range(3)]
    stacked = [torch.stack([s[i] for s in systems]) for i in range(4)]
    K, _ = LQR.infinite_horizon(*stacked)
    for i, (A, B, Q, R, _N) in enumerate(systems):
        K_ref, _ = _scipy_gain(A, B, Q, R)
        assert _rel(-K[i].numpy(), K_ref) < 1e-5


def test_infinite_horizon_unstabilisable_raises() -> None:
    A = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=F64)  # unstable mode not actuated
    B = torch.tensor([[0.0], [1.0]], dtype=F64)
    with pytest.raises(ValueError, match="Riccati"):
        LQR.infinite_horizon(A, B, torch.eye(2, dtype=F64), torch.eye(1, dtype=F64))


def test_time_varying_affine_lqr_matches_direct_least_squares() -> None:
    """Optimal controls of a small time-varying problem with linear terms and drift equal the
    minimiser of the same quadratic written out over the stacked controls."""
    gen = torch.Generator().manual_seed(4)
    o, a, h = 3, 2, 6
    A = 0.8 * torch.randn(h, o, o, generator=gen, dtype=F64)
    B = torch.randn(h, o, a, generator=gen, dtype=F64)
    c = 0.1 * torch.randn(h, o, generator=gen, dtype=F64)
    Q = torch.eye(o, dtype=F64).expand(h, o, o) * torch.rand(h, 1, 1, generator=gen, dtype=F64)
    R = 0.3 * torch.eye(a, dtype=F64)
    N = 0.05 * torch.randn(h, a, o, generator=gen, dtype=F64)
    q = torch.randn(h, o, generator=gen, dtype=F64)
    r = torch.randn(h, a, generator=gen, dtype=F64)
    Qf = 2.0 * torch.eye(o, dtype=F64)
    qf = torch.randn(o, generator=gen, dtype=F64)
    x0 = torch.randn(o, generator=gen, dtype=F64)
    lqr = LQR(A, B, Q, R, N=N, q=q, r=r, c=c, Qf=Qf, qf=qf)
    x, u = lqr.rollout(x0, lqr.solve())

    # x_t = S_t x0 + T_t U + d_t, cost is quadratic in U: minimise it with a dense solve.
    n = h * a
    S, T, d = torch.eye(o, dtype=F64), torch.zeros(o, n, dtype=F64), torch.zeros(o, dtype=F64)
    maps = [(S, T, d)]
    for t in range(h):
        S, T, d = A[t] @ S, A[t] @ T, A[t] @ d + c[t]
        T = T.clone()
        T[:, t * a : (t + 1) * a] += B[t]
        maps.append((S, T, d))

    def total(U: torch.Tensor) -> torch.Tensor:
        cost = torch.zeros((), dtype=F64)
        for t in range(h):
            S_t, T_t, d_t = maps[t]
            xt = S_t @ x0 + T_t @ U + d_t
            ut = U[t * a : (t + 1) * a]
            cost = cost + 0.5 * xt @ Q[t] @ xt + 0.5 * ut @ R @ ut + ut @ N[t] @ xt
            cost = cost + q[t] @ xt + r[t] @ ut
        S_h, T_h, d_h = maps[h]
        xh = S_h @ x0 + T_h @ U + d_h
        return cost + 0.5 * xh @ Qf @ xh + qf @ xh

    zero = torch.zeros(n, dtype=F64)
    grad0 = torch.autograd.functional.jacobian(total, zero)
    hess = torch.autograd.functional.hessian(total, zero)
    u_ref = torch.linalg.solve(hess, -grad0)
    torch.testing.assert_close(u[0].reshape(-1), u_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(lqr.cost(x, u)[0], total(u_ref), rtol=1e-9, atol=1e-9)


def test_batched_problems_are_solved_independently() -> None:
    gen = torch.Generator().manual_seed(5)
    b, h, o, a = 3, 5, 2, 1
    A = torch.randn(b, h, o, o, generator=gen, dtype=F64)
    B = torch.randn(b, h, o, a, generator=gen, dtype=F64)
    Q, R = torch.eye(o, dtype=F64), torch.eye(a, dtype=F64)
    batched = LQR(A, B, Q, R, Qf=Q).solve()
    assert batched.K.shape == (b, h, a, o)
    for i in range(b):
        single = LQR(A[i], B[i], Q, R, Qf=Q).solve()
        torch.testing.assert_close(batched.K[i], single.K[0])
        torch.testing.assert_close(batched.P[i], single.P[0])


def test_bad_inputs_raise_clear_errors() -> None:
    eye2 = torch.eye(2, dtype=F64)
    B = torch.ones(2, 1, dtype=F64)
    with pytest.raises(ValueError, match="horizon must be given"):
        LQR(eye2, B, eye2, torch.eye(1, dtype=F64))
    with pytest.raises(ValueError, match="R must have shape"):
        LQR(eye2, B, eye2, torch.eye(2, dtype=F64), horizon=3)
    with pytest.raises(ValueError, match="horizon"):
        LQR(torch.stack([eye2] * 3), B, torch.stack([eye2] * 4), torch.eye(1, dtype=F64))
    with pytest.raises(ValueError, match="B must have shape"):
        LQR(eye2, torch.ones(3, 1, dtype=F64), eye2, torch.eye(1, dtype=F64), horizon=2)
    with pytest.raises(ValueError, match="not positive definite"):
        LQR(eye2, B, eye2, -torch.eye(1, dtype=F64), horizon=2).solve()
