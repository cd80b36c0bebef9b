"""Planning deadlines: every planner is anytime under an optional per-call budget.

A planner's config carries ``plan_budget_ms`` (from :class:`AnytimeConfig`, keyword-only,
default ``None`` = no budget; ``--planner-opt plan_budget_ms=80`` on the command line). Each
``plan`` call starts a :class:`Deadline`; the planner checks it *between* units of work and
stops when the budget is spent, returning the best plan so far. The units are:

- CEM / iCEM / MPPI: optimiser iterations (at least one always runs, paced: see below);
- random shooting: chunks of the population (``RandomShootingConfig.budget_chunks``; at
  least one, with the warm start);
- MCTS: search rounds of ``leaves_per_batch`` simulations (at least one);
- iLQR: iterations (at least one); GP-MPC: L-BFGS-B iterations (at least one).

CEM / iCEM and MPPI also pace their iterations (:class:`BudgetPacer`): from the measured cost
of their own past iterations they shrink the population when one full iteration would not fit
the budget, and start another iteration only when its predicted cost fits what is left, so
the budget is met rather than overrun by one iteration.

The check reads :func:`time.perf_counter`; on a CUDA device it first synchronises, so queued
kernels count against the budget (one sync per iteration, only with a budget: the device then
idles while Python queues the next iteration, a few tens of microseconds). With no budget the
check does nothing (no clock, no sync), so an unbudgeted plan is exactly what it was before
budgets existed. The work before the first check always runs, so a budget shorter than one unit
is missed, not met (except where the unit is paced, above). Timing the call itself takes one
sync at its end on CUDA, which costs nothing in an agent (it copies the first action to the
host right after).

Every ``plan`` call appends a :class:`PlanRecord` (wall time, units done, whether the budget
cut it short, whether it was missed) to the planner's :attr:`~mbrl.planners.base.Planner.
plan_stats` (a :class:`PlanStats`), which the run loop reads per episode (``summary()``) and
clears.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from mbrl.util.configs import check_config


def check_budget_ms(value: Any, name: str = "plan_budget_ms") -> None:
    """Raise ``TypeError`` / ``ValueError`` naming ``name`` unless ``value`` is None or a finite
    number of milliseconds ``> 0``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name} must be a number of milliseconds or None, got {type(value).__name__} {value!r}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number of milliseconds > 0, got {value}")


@dataclass(frozen=True)
class AnytimeConfig:
    """The setting every planner config shares (a keyword-only field after its own), and the
    checks every planner config gets: each field against its annotation, no NaN or infinite
    float (:func:`~mbrl.util.configs.check_config`), before the config's own range checks.

    Attributes:
        plan_budget_ms: wall-clock budget of one ``plan`` call in milliseconds; the planner
            stops iterating when it is spent and returns the best plan so far (see
            :mod:`mbrl.planners.deadline`). ``None`` (default): no budget, the configured
            amount of work always runs.
    """

    plan_budget_ms: float | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        check_budget_ms(self.plan_budget_ms)
        check_config(self)


class Deadline:
    """The budget of one plan call, started when constructed.

    Args:
        budget_ms: milliseconds allowed (None: unlimited; :meth:`expired` is then always
            False and reads no clock).
        device: where the planner's kernels run; on CUDA :meth:`expired` and
            :meth:`elapsed_s` synchronise it first (call them between iterations only).
    """

    __slots__ = ("budget_ms", "device", "start", "_cuda")

    def __init__(self, budget_ms: float | None, device: torch.device | str | None = None) -> None:
        check_budget_ms(budget_ms)
        self.budget_ms = None if budget_ms is None else float(budget_ms)
        self.device = torch.device(device) if device is not None else None
        self._cuda = self.device is not None and self.device.type == "cuda"
        self.start = time.perf_counter()

    @property
    def limited(self) -> bool:
        """True when there is a budget."""
        return self.budget_ms is not None

    def elapsed_s(self) -> float:
        """Seconds since the start (after a device sync on CUDA)."""
        if self._cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self.start

    def expired(self) -> bool:
        """True when the budget is spent (always False without a budget)."""
        if self.budget_ms is None:
            return False
        return 1e3 * self.elapsed_s() >= self.budget_ms


class IterationCost:
    """Seconds one optimiser iteration over ``n`` candidate rows takes, ``t = a + b n``,
    fitted online by least squares with forgetting (recent iterations count most, so it
    follows the machine's load).

    Args:
        forget: weight kept by the old observations at each new one, in ``(0, 1)``
            (default 0.8: about the last five iterations).
    """

    __slots__ = ("forget", "_sums")

    def __init__(self, forget: float = 0.8) -> None:
        if not 0.0 < forget < 1.0:
            raise ValueError(f"forget must lie in (0, 1), got {forget}")
        self.forget = forget
        self._sums = [0.0] * 5  # sum of w, w n, w n^2, w t, w n t

    def add(self, n: int, seconds: float) -> None:
        """Record an iteration over ``n`` rows that took ``seconds``."""
        f = self.forget
        for i, term in enumerate((1.0, n, n * n, seconds, n * seconds)):
            self._sums[i] = f * self._sums[i] + term

    def _fit(self) -> tuple[float, float] | None:
        s0, s1, s2, st, snt = self._sums
        if s0 == 0.0 or s2 <= 0.0:
            return None
        det = s0 * s2 - s1 * s1
        if det > 1e-6 * s0 * s2:  # the sizes varied enough to separate overhead and slope
            b = (s0 * snt - s1 * st) / det
            a = (st - b * s1) / s0
            if b > 0.0 and a >= 0.0:
                return a, b
        return 0.0, snt / s2  # one size seen (or a fit without meaning): proportional

    def predict(self, n: int) -> float | None:
        """Predicted seconds for ``n`` rows (None before the first observation)."""
        fit = self._fit()
        return None if fit is None else fit[0] + fit[1] * n

    def affordable(self, seconds: float) -> int | None:
        """The most rows one iteration can score in ``seconds`` (None: nothing known yet)."""
        fit = self._fit()
        if fit is None:
            return None
        a, b = fit
        return max(0, math.floor((seconds - a) / b)) if b > 0.0 else None


class BudgetPacer:
    """Fits a sampling optimiser's iterations into a plan budget.

    Checking the clock between iterations alone overruns a budget by up to one iteration,
    and misses it on every call when one iteration costs more than the budget. The pacer
    keeps an :class:`IterationCost` of this optimiser on this machine and, under a budget,
    (1) shrinks the population when one full iteration would not fit (never below the
    optimiser's minimum), and (2) starts another iteration only when its predicted cost fits
    in what is left. Without a budget it does nothing (no clock is read). The first budgeted
    call of a fresh optimiser has no cost estimate yet and runs one full iteration.

    Args:
        safety: the fraction of the budget the iterations plan for (default 0.85; the rest
            covers the work around them and timing jitter).
    """

    __slots__ = ("safety", "cost", "_started", "_finished")

    def __init__(self, safety: float = 0.85) -> None:
        if not 0.0 < safety <= 1.0:
            raise ValueError(f"safety must lie in (0, 1], got {safety}")
        self.safety = safety
        self.cost = IterationCost()
        self._started = 0.0
        self._finished = 0.0  # elapsed seconds at the last finish(): stop_before reads it

    def _left_s(self, deadline: Deadline) -> float:
        assert deadline.budget_ms is not None
        return self.safety * deadline.budget_ms / 1e3 - deadline.elapsed_s()

    def population(self, deadline: Deadline, rows: int, population: int, minimum: int) -> int:
        """Candidates per problem for this call: ``population``, or when one iteration over
        ``rows`` problems would not fit the budget, the largest multiple of ``population // 8``
        that fits, below that the largest power of two, never below ``minimum``. (Few
        distinct sizes: a CUDA-graph rollout captures one graph per candidate shape.)"""
        if not deadline.limited:
            return population
        fits = self.cost.affordable(self._left_s(deadline))
        if fits is None or fits >= rows * population:
            return population
        per_row = fits // max(rows, 1)
        step = max(1, population // 8)
        size = per_row // step * step if per_row >= step else 1 << max(per_row, 1).bit_length() - 1
        return max(minimum, size)

    def start(self, deadline: Deadline) -> None:
        """Mark the start of an iteration (reads the clock only under a budget)."""
        if deadline.limited:
            self._started = deadline.elapsed_s()

    def finish(self, deadline: Deadline, n: int) -> None:
        """Record the iteration started by :meth:`start`, over ``n`` candidate rows."""
        if deadline.limited:
            self._finished = deadline.elapsed_s()
            self.cost.add(n, self._finished - self._started)

    def stop_before(self, deadline: Deadline, n: int) -> bool:
        """True when the next iteration, over ``n`` rows, should not start: the budget is
        spent, or the predicted cost does not fit in what is left (always False without a
        budget). Call it right after :meth:`finish`, whose clock reading it uses (on CUDA
        each reading is a device sync)."""
        if deadline.budget_ms is None:
            return False
        if 1e3 * self._finished >= deadline.budget_ms:
            return True
        predicted = self.cost.predict(n)
        left = self.safety * deadline.budget_ms / 1e3 - self._finished
        return predicted is not None and predicted > left


@dataclass(frozen=True)
class PlanRecord:
    """One ``plan`` call.

    Attributes:
        seconds: wall time of the call (device synchronised at its end on CUDA).
        budget_ms: the budget it ran under (None: none).
        work: work done: CEM / iCEM / MPPI iterations, random-shooting candidates scored,
            MCTS simulations, iLQR / L-BFGS-B iterations.
        stopped_early: the budget ended the work before the configured amount was done.
    """

    seconds: float
    budget_ms: float | None
    work: int
    stopped_early: bool

    @property
    def ms(self) -> float:
        """Wall time in milliseconds."""
        return 1e3 * self.seconds

    @property
    def missed(self) -> bool:
        """The call took longer than its budget (never with no budget)."""
        return self.budget_ms is not None and self.ms > self.budget_ms


@dataclass
class PlanStats:
    """The :class:`PlanRecord` of every ``plan`` call since the last :meth:`clear`.

    The run loop clears it at the start of each MPC episode and writes :meth:`summary` with
    the episode's metrics; a long-lived deployment should clear it as often.
    """

    records: list[PlanRecord] = field(default_factory=list)

    def add(self, record: PlanRecord) -> None:
        """Append ``record``."""
        self.records.append(record)

    def clear(self) -> None:
        """Forget every record."""
        self.records.clear()

    @property
    def last(self) -> PlanRecord | None:
        """The latest record (None before the first plan)."""
        return self.records[-1] if self.records else None

    @property
    def ms(self) -> list[float]:
        """Wall time of each call, milliseconds."""
        return [r.ms for r in self.records]

    @property
    def deadline_misses(self) -> int:
        """Calls that took longer than their budget."""
        return sum(r.missed for r in self.records)

    def summary(self) -> dict[str, float | int | None]:
        """JSON-ready figures: ``plan_calls``, ``plan_ms_mean``, ``plan_ms_median``,
        ``plan_ms_p99``, ``plan_ms_max`` (NaN with no calls), ``deadline_misses``,
        ``stopped_early`` (calls the budget cut short) and ``plan_budget_ms`` (the budget of
        the latest call; None: none)."""
        ms = sorted(self.ms)
        nan = float("nan")

        def quantile(q: float) -> float:
            # Nearest rank, so p99 of 100 calls is the 99th slowest, not an interpolation.
            return ms[min(len(ms) - 1, max(0, math.ceil(q * len(ms)) - 1))] if ms else nan

        last = self.last
        return {
            "plan_calls": len(ms),
            "plan_ms_mean": sum(ms) / len(ms) if ms else nan,
            "plan_ms_median": quantile(0.5),
            "plan_ms_p99": quantile(0.99),
            "plan_ms_max": ms[-1] if ms else nan,
            "deadline_misses": self.deadline_misses,
            "stopped_early": sum(r.stopped_early for r in self.records),
            "plan_budget_ms": None if last is None else last.budget_ms,
        }


__all__ = [
    "AnytimeConfig",
    "BudgetPacer",
    "Deadline",
    "IterationCost",
    "PlanRecord",
    "PlanStats",
    "check_budget_ms",
]
