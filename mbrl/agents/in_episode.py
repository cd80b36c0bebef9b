"""Learning inside an episode: random actions until the data can be fitted, then plans, with
the models refitted every ``refit_every`` env steps.

Between-episode fits alone make learning depend on the episode length: on Pendulum-v1 a
model fitted after one 200-step random episode has already cost 200 real interactions, and
what the agent sees during an MPC episode is only used in the next one. With
``RunConfig.refit_every = K`` the episode loop hands the env a :class:`LearningPolicy`
instead of the planner: it acts at random while the data is too small to fit (so
``seed_episodes=0`` means "a few random steps at the start of the first episode"), fits as
soon as it can, and refits on everything seen so far every ``K`` steps after that. With
``RunConfig.condition_steps`` a model with a cheap posterior update (a GP: new points enter
its posterior, the hyperparameters are kept) also conditions on every step between refits,
so each plan sees all data at the cost of a rank-k update instead of a fit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mbrl.agents.episode import Policy

__all__ = ["LearningPolicy"]


class LearningPolicy:
    """``policy(obs (O,)) -> action`` for one episode that learns while it acts.

    Each call, before acting on ``obs``: while the model is not fitted and ``ready()`` is
    False, it returns ``explore(obs)`` (counted in :attr:`random_steps`); once ``ready()``
    holds it fits and from then on returns ``plan(obs)``; with ``every > 0`` it refits when
    ``every`` plan steps have passed since the last fit, and with ``condition`` it calls it
    before every other plan (the model takes the transitions since its last fit). Fits and
    conditioning are timed apart from planning (:attr:`fit_seconds`), so the planner's own
    timings stay planning only.

    Args:
        plan: the agent's policy (``MPCAgent.act``).
        explore: the policy of the random steps (the action space's sampler).
        refit: fits the models on all data so far; returns the fit's report.
        ready: whether the data suffices for a fit (the seed-data rule of the loop).
        every: plan steps between refits (0: none inside the episode).
        fitted: the models were fitted before the episode (the first fit is not waited for).
        condition: conditions the fitted models on the data added since the last fit or
            condition and returns how many transitions it took (None: no conditioning).

    Attributes:
        random_steps: steps acted by ``explore``; refits: fits done inside the episode;
        conditioned: transitions taken by ``condition``; fit_seconds: wall time of fits and
        conditioning; report: the last fit's report (None: no fit yet).
    """

    def __init__(
        self,
        plan: Policy,
        explore: Policy,
        refit: Callable[[], Any],
        ready: Callable[[], bool],
        every: int,
        fitted: bool,
        condition: Callable[[], int] | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"every (refit_every) must be an int >= 0, got {every!r}")
        self._plan, self._explore, self._refit, self._ready = plan, explore, refit, ready
        self.every = every
        self.fitted = fitted
        self._condition = condition
        self.random_steps = 0
        self.refits = 0
        self.conditioned = 0
        self.fit_seconds = 0.0
        self.report: Any = None
        self._since_fit = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray | int:
        """The action for ``obs (O,)``: random until the first fit, then planned."""
        if not self.fitted:
            if not self._ready():
                self.random_steps += 1
                return self._explore(obs)
            self._fit()
        elif self.every and self._since_fit >= self.every:
            self._fit()
        elif self._condition is not None:
            begin = time.perf_counter()
            self.conditioned += self._condition()
            self.fit_seconds += time.perf_counter() - begin
        self._since_fit += 1
        return self._plan(obs)

    def _fit(self) -> None:
        begin = time.perf_counter()
        self.report = self._refit()
        self.fit_seconds += time.perf_counter() - begin
        self.refits += 1
        self.fitted = True
        self._since_fit = 0
