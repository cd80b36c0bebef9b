"""Parity of an artefact with the Python object it was exported from, and its latency.

- :func:`policy_parity`: the loaded policy against ``LearnedPolicy.mode``.
- :func:`belief_policy_parity`: the loaded belief policy, stepped along observation
  sequences, against the RSSM's own ``filter_step`` (posterior mean) and ``LearnedPolicy.mode``.
- :func:`planner_parity`: the loaded planner against the library's own
  :class:`~mbrl.planners.sampling.SamplingPlanner` with an unmodified
  :class:`~mbrl.planners.cem.CEMOptimizer`, stepping the model through its mean with one
  particle, each row planned with a fresh ``torch.Generator().manual_seed(seed)``: what the
  artefact promises to equal (:mod:`mbrl.export.programs`).
- :func:`measure_latency`: median and p99 wall time per call over ``calls`` calls (CUDA work
  synchronised inside each timed call). Timings on a shared machine include other
  processes' load; the report says how many threads torch used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from mbrl.export.loader import time_calls
from mbrl.models.base import EXPECTATION
from mbrl.models.policy_model import LearnedPolicy
from mbrl.planners.cem import CEMOptimizer
from mbrl.planners.sampling import SamplingPlanner
from mbrl.validation import check_positive_int


def random_observations(space: gym.spaces.Box, n: int, seed: int = 0) -> Tensor:
    """``n`` observations ``(n, O)`` float32: uniform within ``space``'s finite bounds,
    standard normal along unbounded dimensions."""
    check_positive_int(n, "n")
    gen = torch.Generator().manual_seed(int(seed))
    low = torch.as_tensor(np.asarray(space.low, dtype=np.float64).reshape(-1))
    high = torch.as_tensor(np.asarray(space.high, dtype=np.float64).reshape(-1))
    finite = torch.isfinite(low) & torch.isfinite(high)
    u = torch.rand(n, low.shape[0], generator=gen, dtype=torch.float64)
    z = torch.randn(n, low.shape[0], generator=gen, dtype=torch.float64)
    box = torch.where(finite, low, 0.0) + u * torch.where(finite, high - low, 0.0)
    return torch.where(finite, box, z).to(torch.float32)


def policy_parity(
    policy: LearnedPolicy, deployed: Callable[[Tensor], Tensor], obs: Tensor
) -> float:
    """Max absolute difference between ``deployed(obs (N, O))`` and ``policy.mode(obs)``."""
    with torch.no_grad():
        expected = policy.mode(obs.to(next(policy.parameters()).device))
    got = deployed(obs)
    return float((got.cpu() - expected.cpu()).abs().max())


def belief_policy_parity(
    rssm: torch.nn.Module,
    actor: LearnedPolicy,
    deployed_step: Callable[..., tuple[Tensor, Tensor, Tensor]],
    obs: Tensor,
) -> float:
    """Max absolute difference of the actions and belief states along ``obs (T, N, O)``
    (``N`` sequences of ``T`` observations, each started from the zero belief and action)
    between ``deployed_step(obs_t, h, z, last_action)`` and the Python filter
    (``rssm.filter_step(..., sample=False)``) with ``actor.mode`` on its features; each side
    carries its own belief and actions."""
    if obs.ndim != 3:
        raise ValueError(f"obs must have shape (T, N, O), got {tuple(obs.shape)}")
    n, device = obs.shape[1], rssm.device
    state = rssm.initial_state(n)
    last = torch.zeros(n, rssm.action_dim, device=device)
    h, z, got_last = state.h.clone(), state.z.clone(), last.clone()
    worst = 0.0
    for x in obs:
        with torch.no_grad():
            state = rssm.filter_step(state, last, x.to(device), None, sample=False)
            last = actor.mode(state.features)
        got_last, h, z = deployed_step(x, h, z, got_last)
        for a, b in ((got_last, last), (h, state.h), (z, state.z)):
            worst = max(worst, float((a.cpu() - b.cpu()).abs().max()))
    return worst


def reference_planner(planner: SamplingPlanner, seed: int) -> SamplingPlanner:
    """The Python planner an artefact of ``planner`` equals (see the module docstring)."""
    opt = planner.optimizer
    if not isinstance(opt, CEMOptimizer):
        raise TypeError(f"planner must use a CEMOptimizer, got {type(opt).__name__}")
    gen = torch.Generator(opt.device).manual_seed(int(seed))
    return SamplingPlanner(
        planner.model.propagating(EXPECTATION),
        planner.reward_fn,
        planner.termination_fn,
        CEMOptimizer(opt.config, opt.low, opt.high, gen),
        planner.horizon,
        n_particles=1,
        gamma=planner.gamma,
        warm_start=False,
    )


def planner_parity(
    planner: SamplingPlanner,
    seed: int,
    deployed_plan: Callable[[Tensor], Tensor],
    obs: Tensor,
    chunk: int = 32,
) -> float:
    """Max absolute difference over ``obs (N, O)`` between ``deployed_plan(obs_chunk)``
    (``(b, H, A)``) and :func:`reference_planner`'s plans, ``chunk`` rows at a time."""
    check_positive_int(chunk, "chunk")
    ref = reference_planner(planner, seed)
    worst = 0.0
    for rows in torch.split(obs, chunk):
        gens = [torch.Generator().manual_seed(int(seed)) for _ in range(rows.shape[0])]
        expected = ref.plan(rows, generators=gens)
        ref.reset()
        got = deployed_plan(rows)
        worst = max(worst, float((got.cpu() - expected.cpu()).abs().max()))
    return worst


@dataclass(frozen=True)
class LatencyReport:
    """Wall time per call of one function.

    Attributes:
        name: what was timed; device: where it ran; calls: timed calls (after ``warmup``);
        median_ms / p99_ms / mean_ms / max_ms: statistics over the calls; threads: torch
        intra-op threads.
    """

    name: str
    device: str
    calls: int
    median_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    threads: int

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object."""
        return asdict(self)

    def line(self) -> str:
        """One line: ``name on device: median x ms, p99 y ms (n calls, t threads)``."""
        return (
            f"{self.name} on {self.device}: median {self.median_ms:.3f} ms, p99 "
            f"{self.p99_ms:.3f} ms, max {self.max_ms:.3f} ms ({self.calls} calls, "
            f"{self.threads} threads)"
        )


def measure_latency(
    name: str,
    call: Callable[[], Any],
    calls: int = 1000,
    warmup: int = 20,
    device: str | torch.device = "cpu",
) -> LatencyReport:
    """Time ``call()`` ``calls`` times after ``warmup`` untimed calls
    (:func:`mbrl.export.loader.time_calls`, the loader's own timer, so a deployment machine
    with only torch measures the same way). On a CUDA ``device`` each timed call ends with
    ``torch.cuda.synchronize``, so the time is the result's, not the launch's.
    """
    check_positive_int(calls, "calls")
    check_positive_int(warmup, "warmup", minimum=0)
    stats = time_calls(call, calls, warmup, device)
    return LatencyReport(
        name, str(torch.device(device)), calls, threads=torch.get_num_threads(), **stats
    )
