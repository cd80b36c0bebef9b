"""A fast path for the rollout objective: CUDA-graph capture or ``torch.compile``, eager fallback.

:class:`CompiledRollout` scores candidates exactly like :func:`mbrl.rollout.rollout` (same
model, task functions, particles, discount) but, on a CUDA device, replays the whole ``H``-step
loop as one captured CUDA graph per candidate shape (static input buffers; one graph launch per
call instead of ~10 kernel launches per layer and step), or runs it through ``torch.compile``.
On CPU it is the eager engine itself, with identical results.

Backends (``mode``):

- ``"auto"`` (default): ``"graph"`` on CUDA, ``"eager"`` elsewhere;
- ``"graph"``: CUDA graphs; on CPU it falls back to eager (``fallback_reason`` says why);
- ``"compile"``: ``torch.compile`` of the rollout (any device; ``compile_options`` are passed
  to ``torch.compile``);
- ``"eager"``: the rollout core (:func:`mbrl.rollout.core.simulate`).

A backend that fails (capture of an op that cannot be captured, a compiler error) falls back
to eager once, with a warning, and records the reason. Graphs are re-captured automatically
when the model's parameters or buffers are replaced (e.g. new elites after a refit); in-place
weight updates (training) are picked up without re-capture. Sampling models draw their noise
from ``generator``; a replayed graph advances that generator's Philox offset, so every call
still draws fresh noise, but not the same numbers as the eager path.

Use it in a :class:`~mbrl.planners.sampling.SamplingPlanner` with :func:`compile_planner`.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mbrl.models.base import DynamicsModel
from mbrl.rollout.core import simulate
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.validation import check_positive_int

if TYPE_CHECKING:
    from mbrl.planners.sampling import SamplingPlanner

MODES = ("auto", "eager", "graph", "compile")
"""Accepted values of ``mode``."""


@dataclass
class _Captured:
    """One captured graph: static inputs ``state (P*N, S)``, ``actions (N, H, A)``; output
    ``returns (N,)``; ``keepalive``: tensors the graph uses that the model might drop."""

    graph: Any
    state: Tensor
    actions: Tensor
    returns: Tensor
    keepalive: list[Tensor]


class CompiledRollout:
    """Rollout objective ``(obs (O,), candidates (N, H, A)) -> returns (N,)`` on a fast path.

    Args:
        model: dynamics model (tensor states; any :class:`DynamicsModel` works eagerly).
        reward_fn / termination_fn: task functions ``(obs, action, next_obs) -> (M,)``.
        n_particles: particles ``P`` per candidate (default 1).
        gamma: discount (default 1).
        generator: randomness of sampling models (on the model's device).
        mode: ``auto`` / ``eager`` / ``graph`` / ``compile`` (see the module docstring).
        warmup: eager calls on a side stream before a capture (default 2; CUDA only).
        compile_options: keyword arguments of ``torch.compile`` (default
            ``{"dynamic": False}``).

    Attributes:
        backend: the backend in use (``eager``, ``graph`` or ``compile``).
        fallback_reason: why the requested backend is not in use (``None`` if it is).
        captures: graphs captured so far (re-captures included).

    Raises:
        ValueError: unknown ``mode`` or ``n_particles < 1``.
    """

    def __init__(
        self,
        model: DynamicsModel,
        reward_fn: RewardFn,
        termination_fn: TerminationFn | None = None,
        *,
        n_particles: int = 1,
        gamma: float = 1.0,
        generator: torch.Generator | None = None,
        mode: str = "auto",
        warmup: int = 2,
        compile_options: Mapping[str, Any] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        check_positive_int(n_particles, "n_particles")
        check_positive_int(warmup, "warmup", minimum=0)
        self.model = model
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        self.n_particles = n_particles
        self.gamma = gamma
        self.generator = generator
        self.warmup = warmup
        self.compile_options = {"dynamic": False, **dict(compile_options or {})}
        self.mode = mode
        self.fallback_reason: str | None = None
        self.captures = 0
        self._graphs: dict[tuple, _Captured] = {}
        self._signature: tuple | None = None
        self._pool: Any = None
        self._compiled: Callable[[Tensor, Tensor], Tensor] | None = None
        self.backend = self._choose_backend(mode)

    # ------------------------------------------------------------------------ set-up
    @property
    def device(self) -> torch.device:
        """The model's device."""
        return self.model.device

    def _choose_backend(self, mode: str) -> str:
        cuda = self.device.type == "cuda"
        if mode == "eager":
            return "eager"
        if mode == "auto":
            if cuda:
                return "graph"
            self.fallback_reason = f"{self.device.type} device: the eager rollout is the fast path"
            return "eager"
        if mode == "graph" and not cuda:
            self._fall_back(f"CUDA graphs need a CUDA device, the model is on {self.device}")
            return "eager"
        if mode == "compile" and not hasattr(torch, "compile"):
            self._fall_back("torch.compile is not available in this torch build")
            return "eager"
        return mode

    def _fall_back(self, reason: str) -> None:
        self.fallback_reason = reason
        self.backend = "eager"
        self._graphs.clear()
        self._compiled = None
        if self.mode != "auto":
            warnings.warn(f"CompiledRollout: using the eager rollout: {reason}", stacklevel=3)

    @classmethod
    def like(cls, source: Any, **kwargs: Any) -> CompiledRollout:
        """A :class:`CompiledRollout` of ``source``'s rollout (its ``model``, task functions,
        ``n_particles``, ``gamma`` and ``generator``: a planner's or another compiled
        rollout's); ``kwargs`` set the rest (``mode``, ``warmup``, ``compile_options``)."""
        return cls(
            source.model,
            source.reward_fn,
            source.termination_fn,
            n_particles=source.n_particles,
            gamma=source.gamma,
            generator=source.generator,
            **kwargs,
        )

    def with_mode(self, mode: str) -> CompiledRollout:
        """A new :class:`CompiledRollout` with this one's settings and backend ``mode``."""
        return CompiledRollout.like(
            self, mode=mode, warmup=self.warmup, compile_options=self.compile_options
        )

    def invalidate(self) -> None:
        """Drop captured graphs / compiled code (the next call re-captures)."""
        self._graphs.clear()
        self._signature = None
        self._compiled = None

    # ------------------------------------------------------------------------- calls
    @staticmethod
    def _starts(obs: Tensor, n: int) -> Tensor:
        """Start observations ``(N, O)``: ``obs (O,)`` shared by all, or already one per row."""
        return obs.unsqueeze(0).expand(n, -1) if obs.ndim == 1 else obs

    def _eager(self, obs: Tensor, candidates: Tensor) -> Tensor:
        return simulate(
            self.model,
            self._starts(obs, candidates.shape[0]),
            self.reward_fn,
            self.termination_fn,
            actions=candidates,
            n_particles=self.n_particles,
            gamma=self.gamma,
            generator=self.generator,
        ).returns

    def _initial_state(self, obs: Tensor, n: int) -> Tensor:
        """The model's start state ``(P * N, S)`` for ``obs (O,)`` or ``(N, O)``, computed eagerly.

        Kept out of captured/compiled code: a model's start state may be built with
        data-dependent control flow, which a CUDA graph cannot contain.
        """
        state = self.model.initial_state(self._starts(obs, n), self.n_particles, self.generator)
        if not isinstance(state, Tensor):
            raise TypeError(
                f"{type(self.model).__name__} has a non-tensor rollout state "
                f"({type(state).__name__}); only tensor states can be captured or compiled"
            )
        return state

    def rollout_from_state(self, state: Tensor, candidates: Tensor) -> Tensor:
        """The rollout core from a start ``state (P * N, S)``: returns ``(N,)``.

        :func:`mbrl.rollout.core.simulate` itself (so the same numbers as the eager path for
        the same generator state), without validation: this is the body that is captured or
        compiled.
        """
        n = candidates.shape[0]
        return simulate(
            self.model,
            candidates.new_empty(n, 0),
            self.reward_fn,
            self.termination_fn,
            actions=candidates,
            n_particles=self.n_particles,
            gamma=self.gamma,
            generator=self.generator,
            start_state=state,
        ).returns

    @torch.no_grad()
    def __call__(self, obs: Tensor, candidates: Tensor) -> Tensor:
        """Mean discounted return ``(N,)`` of ``candidates (N, H, A)`` from ``obs (O,)`` (shared)
        or ``obs (N, O)`` (one start per candidate).

        Raises:
            ValueError: ``candidates`` not ``(N, H, action_dim)`` or ``obs`` not ``(O,)`` /
                ``(N, O)``.
        """
        if candidates.ndim != 3 or candidates.shape[2] != self.model.action_dim:
            raise ValueError(
                f"candidates must have shape (N, H, {self.model.action_dim}), "
                f"got {tuple(candidates.shape)}"
            )
        o, n = self.model.obs_dim, candidates.shape[0]
        if obs.shape not in ((o,), (n, o)):
            raise ValueError(f"obs must have shape ({o},) or ({n}, {o}), got {tuple(obs.shape)}")
        if self.backend == "graph":
            try:
                return self._graph_call(obs, candidates)
            except Exception as err:  # capture of an uncapturable op, out of memory, ...
                self._fall_back(f"CUDA graph capture failed: {type(err).__name__}: {err}")
        elif self.backend == "compile":
            try:
                if self._compiled is None:  # dynamo guards on the model's tensors itself
                    self._compiled = torch.compile(self.rollout_from_state, **self.compile_options)
                state = self._initial_state(obs, candidates.shape[0])
                return self._compiled(state, candidates)
            except Exception as err:
                self._fall_back(f"torch.compile failed: {type(err).__name__}: {err}")
        return self._eager(obs, candidates)

    def objective(self, obs: Tensor) -> Callable[[Tensor], Tensor]:
        """What a trajectory optimiser maximises: ``obs (O,)`` gives ``candidates (K, H, A) ->
        (K,)``; ``obs (B, O)`` gives ``candidates (B, K, H, A) -> (B, K)`` (one call over all
        ``B * K`` candidates, as :meth:`SamplingPlanner.objective`)."""
        if obs.ndim == 1:
            return lambda candidates: self(obs, candidates)

        def batched(candidates: Tensor) -> Tensor:
            b, k = candidates.shape[:2]
            starts = obs.repeat_interleave(k, dim=0)
            return self(starts, candidates.reshape(b * k, *candidates.shape[2:])).view(b, k)

        return batched

    # ------------------------------------------------------------------ CUDA graphs
    def _model_signature(self) -> tuple:
        tensors = itertools.chain(self.model.parameters(), self.model.buffers())
        # Task functions whose traced path depends on Python state (a learned termination
        # that has seen no ending skips its network) expose it as ``capture_key``.
        task_fns = (self.reward_fn, self.termination_fn)
        keys = tuple(getattr(fn, "capture_key", None) for fn in task_fns)
        return tuple((t.data_ptr(), tuple(t.shape), t.dtype) for t in tensors) + (
            getattr(self.model, "compute_dtype", None),
            self.model.propagation,
            keys,
        )

    def _graph_call(self, obs: Tensor, candidates: Tensor) -> Tensor:
        signature = self._model_signature()
        if signature != self._signature:
            self._graphs.clear()
            self._signature = signature
        state = self._initial_state(obs, candidates.shape[0])
        key = (tuple(candidates.shape), candidates.dtype, tuple(state.shape), state.dtype)
        cap = self._graphs.get(key)
        if cap is None:
            cap = self._capture(state, candidates)
            self._graphs[key] = cap
        cap.state.copy_(state)
        cap.actions.copy_(candidates)
        cap.graph.replay()
        return cap.returns.clone()

    def _capture(self, state: Tensor, candidates: Tensor) -> _Captured:
        device = self.device
        static_state = state.detach().clone()
        static_actions = candidates.detach().clone()
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(self.warmup):
                self.rollout_from_state(static_state, static_actions)
        torch.cuda.current_stream(device).wait_stream(stream)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None and self.generator.device.type == "cuda":
            graph.register_generator_state(self.generator)
        with torch.cuda.graph(graph, pool=self._pool):
            returns = self.rollout_from_state(static_state, static_actions)
        self.captures += 1
        # The graph reads and writes the memory of every tensor it touched at capture, e.g.
        # reusable activation workspaces that the model re-allocates for other shapes: keep
        # them alive for as long as the graph exists.
        return _Captured(graph, static_state, static_actions, returns, _module_tensors(self.model))


def _module_tensors(model: torch.nn.Module) -> list[Tensor]:
    """Every tensor held by ``model``'s modules: parameters, buffers and plain attributes."""
    out: list[Tensor] = [*model.parameters(), *model.buffers()]
    for module in model.modules():
        for value in vars(module).values():
            items = value if isinstance(value, tuple | list) else (value,)
            out += [v for v in items if isinstance(v, Tensor)]
    return out


def compile_planner(planner: SamplingPlanner, mode: str = "auto", **kwargs: Any) -> CompiledRollout:
    """Make a :class:`~mbrl.planners.sampling.SamplingPlanner` score candidates with a
    :class:`CompiledRollout` (its model, task functions, particles, discount and generator).

    Replaces the planner's ``objective`` method on this instance only; ``kwargs`` go to
    :class:`CompiledRollout`. Returns the :class:`CompiledRollout` (see its ``backend``).

    Raises:
        TypeError: ``planner`` is not a :class:`~mbrl.planners.sampling.SamplingPlanner`.
    """
    # Imported here: the planners import this module.
    from mbrl.planners.sampling import SamplingPlanner

    if not isinstance(planner, SamplingPlanner):
        raise TypeError(
            f"planner must be a SamplingPlanner (with a rollout objective), got {type(planner).__name__}"
        )
    fast = CompiledRollout.like(planner, mode=mode, **kwargs)
    planner.objective = fast.objective
    return fast


def pick_fastest_backend(
    rollout_fn: CompiledRollout,
    obs: Tensor,
    candidates: Tensor,
    modes: tuple[str, ...] = ("eager", "graph", "compile"),
    repeats: int = 5,
) -> dict[str, float]:
    """Median seconds per call of each backend at this shape (after a warm-up call each).

    Builds a :class:`CompiledRollout` per mode with ``rollout_fn``'s settings; backends that
    fall back to eager are reported under their requested name with the eager time. Use it
    once per machine to choose ``mode``.
    """
    out: dict[str, float] = {}
    for mode in modes:
        candidate = rollout_fn.with_mode(mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            candidate(obs, candidates)
        times = []
        for _ in range(repeats):
            if obs.device.type == "cuda":
                torch.cuda.synchronize(obs.device)
            start = time.perf_counter()
            candidate(obs, candidates)
            if obs.device.type == "cuda":
                torch.cuda.synchronize(obs.device)
            times.append(time.perf_counter() - start)
        out[mode] = sorted(times)[len(times) // 2]
    return out


__all__ = ["MODES", "CompiledRollout", "compile_planner", "pick_fastest_backend"]
