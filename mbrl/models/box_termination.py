"""Termination learned as leaving a box: ``done = any_d next_obs_d < low_d or > high_d``.

Many control tasks end when a state leaves its safe limits: a pole angle or cart position out
of range (CartPole, InvertedPendulum), a body too low or tilted (MuJoCo locomotion health
checks), a beam reading at the aperture. An MLP classifier fitted to a handful of such
endings generalises poorly: on CartPole it learned the track end only for the speeds it had
seen there, and its spurious small ending chances elsewhere steered MCTS (docs/mcts.md).
:class:`BoxTermination` learns the limits themselves, from the same data:

1. the *safe box* is the range of every observation dimension over the ``next_obs`` of
   transitions that did not terminate;
2. each terminal ``next_obs`` lies outside that box on some sides (a dimension and a
   direction); a greedy set cover picks the fewest sides that account for every ending,
   preferring the side that accounts for the most and then the one the endings overshoot
   furthest (in units of the dimension's spread);
3. each chosen side gets a limit halfway between the safe extreme and the nearest ending
   beyond it; sides with no ending stay open (infinite).

With one or two endings the sides are ambiguous (a pole that fell fast is beyond the safe
range in angle *and* angular speed); more endings settle them, since one limit has to account
for all of them. Endings that no box can explain (inside the safe range on every side) are
counted in :class:`BoxFit`, not hidden. Use it with ``mbrl run --reward learned --termination
box``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mbrl.data.buffer import TransitionBatch, TransitionBuffer
from mbrl.models.checkpoint import register_checkpointable
from mbrl.validation import check_positive_int


@dataclass(frozen=True)
class BoxFit:
    """What :meth:`BoxTermination.fit_bounds` found.

    Attributes:
        sides: chosen limits as ``(dim, "low" | "high", limit)``, in the order picked.
        endings: terminal transitions in the data.
        unexplained: endings inside the safe box on every side (no limit can predict them).
    """

    sides: tuple[tuple[int, str, float], ...]
    endings: int
    unexplained: int


@register_checkpointable
class BoxTermination(nn.Module):
    """Termination flags from learned per-dimension limits on the next observation.

    ``__call__(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)`` bool, True where
    ``next_obs`` is below ``low`` or above ``high`` in any dimension; ``obs`` and ``action``
    are accepted for the common termination-function signature and ignored. Before
    :meth:`fit_bounds` (or with no endings in the data) every limit is infinite and nothing
    terminates.

    Args:
        obs_dim: ``O``.
        action_dim: ``A`` (checked on input; kept so it is a drop-in for
            :class:`~mbrl.models.task_models.LearnedTermination`).

    Attributes:
        low / high: ``(O,)`` limits (``-inf`` / ``inf`` where open).
    """

    def __init__(self, obs_dim: int, action_dim: int) -> None:
        super().__init__()
        check_positive_int(obs_dim, "obs_dim")
        check_positive_int(action_dim, "action_dim")
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.register_buffer("low", torch.full((obs_dim,), -torch.inf))
        self.register_buffer("high", torch.full((obs_dim,), torch.inf))

    def init_kwargs(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return {"obs_dim": self.obs_dim, "action_dim": self.action_dim}

    def forward(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Predicted termination flags ``(M,)`` (any leading dims ``(..., O) -> (...)``)."""
        if next_obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"next_obs must have shape (..., {self.obs_dim}), got {tuple(next_obs.shape)}"
            )
        x = next_obs.to(self.low.dtype)
        return ((x < self.low) | (x > self.high)).any(dim=-1)

    def probability(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Termination probability ``(M,)``: the flags as 0/1 floats (a box is certain)."""
        return self.forward(obs, action, next_obs).float()

    @torch.no_grad()
    def fit_bounds(self, data: TransitionBuffer | TransitionBatch) -> BoxFit:
        """Set ``low`` / ``high`` from ``data`` (in place; earlier limits are discarded).

        Args:
            data: a buffer, or a batch with ``next_obs (N, O)`` and ``terminated (N,)``.

        Returns:
            A :class:`BoxFit` with the chosen sides.

        Raises:
            ValueError: an observation size other than ``obs_dim``, or NaN/inf observations.
        """
        batch = data.all() if isinstance(data, TransitionBuffer) else data
        nxt = batch.next_obs.to(self.low.device, self.low.dtype)
        if nxt.ndim != 2 or nxt.shape[1] != self.obs_dim:
            raise ValueError(
                f"data next_obs must have shape (N, {self.obs_dim}), got {tuple(nxt.shape)}"
            )
        if not bool(torch.isfinite(nxt).all()):
            raise ValueError("data next_obs contains NaN or inf; a box cannot be fitted to it")
        done = batch.terminated.to(nxt.device).bool()
        self.low.fill_(-torch.inf)
        self.high.fill_(torch.inf)
        safe, ends = nxt[~done], nxt[done]
        if ends.shape[0] == 0 or safe.shape[0] == 0:
            return BoxFit((), int(ends.shape[0]), int(ends.shape[0]) if safe.shape[0] else 0)
        smin, smax = safe.min(dim=0).values, safe.max(dim=0).values
        spread = safe.std(dim=0, unbiased=False).clamp_min(1e-6)
        # Column j < O is dimension j's high side, column O + j its low side.
        beyond = torch.cat([ends - smax, smin - ends], dim=1) / spread.repeat(2)
        outside = beyond > 0
        unexplained = torch.ones(ends.shape[0], dtype=torch.bool, device=nxt.device)
        sides: list[tuple[int, str, float]] = []
        while True:
            hits = outside & unexplained.unsqueeze(1)
            count = hits.sum(dim=0)
            if int(count.max()) == 0:
                break
            overshoot = torch.where(hits, beyond, torch.zeros_like(beyond)).amax(dim=0)
            # Count first; among equal counts the side the endings overshoot furthest.
            score = count.to(beyond.dtype) + overshoot / (overshoot.max() + 1.0)
            col = int(torch.argmax(torch.where(count > 0, score, torch.full_like(score, -1.0))))
            dim, high_side = col % self.obs_dim, col < self.obs_dim
            past = outside[:, col]
            if high_side:
                limit = float((smax[dim] + ends[past, dim].min()) / 2)
                self.high[dim] = limit
            else:
                limit = float((smin[dim] + ends[past, dim].max()) / 2)
                self.low[dim] = limit
            sides.append((dim, "high" if high_side else "low", limit))
            unexplained &= ~past
        return BoxFit(tuple(sides), int(ends.shape[0]), int(unexplained.sum()))
