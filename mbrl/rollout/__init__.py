"""The rollout layer: one transition, one rollout core, the public rollout and its fast path.

- :mod:`~mbrl.rollout.transition`: :func:`transition`, the step every consumer goes through,
  and the divergence rule;
- :mod:`~mbrl.rollout.core`: :func:`simulate`, the loop over the horizon (actions or a policy,
  terminal value, per-row step counts);
- :mod:`~mbrl.rollout.engine`: :func:`rollout`, validated scoring of ``(N, H, A)`` candidates;
- :mod:`~mbrl.rollout.compiled`: :class:`CompiledRollout`, the same core captured as a CUDA
  graph or compiled.
"""

from mbrl.rollout.core import Policy, RolloutResult, ValueFn, simulate, tile_actions
from mbrl.rollout.engine import check_actions, rollout
from mbrl.rollout.transition import CERTAIN_END, Transition, end_probability, transition

__all__ = [
    "CERTAIN_END",
    "Policy",
    "RolloutResult",
    "Transition",
    "ValueFn",
    "check_actions",
    "end_probability",
    "rollout",
    "simulate",
    "tile_actions",
    "transition",
]
