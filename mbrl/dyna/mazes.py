"""Small grid mazes for tabular Dyna-Q (Sutton & Barto's Dyna maze, Fig. 8.2).

Layouts are strings, one per row: ``.`` free, ``W`` wall, ``S`` start, ``G`` goal.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

DYNA_MAZE: tuple[str, ...] = (
    ".......WG",
    "..W....W.",
    "S.W....W.",
    "..W......",
    ".....W...",
    ".........",
)
"""Sutton & Barto's 6 x 9 Dyna maze (Example 8.1): the shortest start-goal path is 14 steps."""

ACTIONS: tuple[tuple[int, int], ...] = ((-1, 0), (1, 0), (0, 1), (0, -1))
"""Moves of actions 0..3: up, down, right, left (row, column deltas)."""


def _parse(
    layout: tuple[str, ...] | list[str],
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    rows = [str(r) for r in layout]
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("layout must be a non-empty list of equally long strings")
    bad = {c for r in rows for c in r} - set(".WSG")
    if bad:
        raise ValueError(f"layout may only contain '.', 'W', 'S', 'G'; found {sorted(bad)}")
    grid = np.array([[c == "W" for c in r] for r in rows])
    starts = [(i, j) for i, r in enumerate(rows) for j, c in enumerate(r) if c == "S"]
    goals = [(i, j) for i, r in enumerate(rows) for j, c in enumerate(r) if c == "G"]
    if len(starts) != 1 or len(goals) != 1:
        raise ValueError(
            f"layout needs exactly one 'S' and one 'G', got {len(starts)} and {len(goals)}"
        )
    return grid, starts[0], goals[0]


class DynaMazeEnv(gym.Env):
    """A deterministic grid maze: ``Discrete(rows * cols)`` states (``row * cols + col``),
    ``Discrete(4)`` actions (up, down, right, left).

    Moving into a wall or off the grid leaves the agent in place. Reward is 1 on reaching the
    goal (which terminates the episode) and 0 otherwise, as in Sutton & Barto.

    Args:
        layout: the maze (default :data:`DYNA_MAZE`).
        max_steps: truncate after this many steps (default ``None``: never).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        layout: tuple[str, ...] | list[str] = DYNA_MAZE,
        max_steps: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.walls, self.start, self.goal = _parse(layout)
        self.rows, self.cols = self.walls.shape
        self.observation_space = gym.spaces.Discrete(self.rows * self.cols)
        self.action_space = gym.spaces.Discrete(4)
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
        self.max_steps = max_steps
        self.render_mode = render_mode
        self._pos = self.start
        self._steps = 0

    def state_index(self, pos: tuple[int, int]) -> int:
        """``(row, col) -> row * cols + col``."""
        return pos[0] * self.cols + pos[1]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Back to the start cell."""
        super().reset(seed=seed)
        self._pos, self._steps = self.start, 0
        return self.state_index(self._pos), {}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Move one cell (or stay at a wall).

        Raises:
            ValueError: an action outside ``0..3``.
        """
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is outside the action space {self.action_space}")
        dr, dc = ACTIONS[int(action)]
        r, c = self._pos[0] + dr, self._pos[1] + dc
        if 0 <= r < self.rows and 0 <= c < self.cols and not self.walls[r, c]:
            self._pos = (r, c)
        self._steps += 1
        terminated = self._pos == self.goal
        truncated = self.max_steps is not None and self._steps >= self.max_steps and not terminated
        return self.state_index(self._pos), float(terminated), terminated, truncated, {}

    def shortest_path_length(self) -> int:
        """Length of the shortest start-goal path (breadth-first search)."""
        seen = {self.start}
        queue = deque([(self.start, 0)])
        while queue:
            pos, d = queue.popleft()
            if pos == self.goal:
                return d
            for dr, dc in ACTIONS:
                r, c = pos[0] + dr, pos[1] + dc
                if 0 <= r < self.rows and 0 <= c < self.cols and not self.walls[r, c]:
                    if (r, c) not in seen:
                        seen.add((r, c))
                        queue.append(((r, c), d + 1))
        raise ValueError("the goal cannot be reached from the start")

    def render(self) -> str | None:
        """The maze as text with the agent as ``A`` (``render_mode="ansi"``)."""
        if self.render_mode != "ansi":
            return None
        lines = []
        for i in range(self.rows):
            row = []
            for j in range(self.cols):
                if (i, j) == self._pos:
                    row.append("A")
                elif self.walls[i, j]:
                    row.append("W")
                elif (i, j) == self.goal:
                    row.append("G")
                else:
                    row.append(".")
            lines.append("".join(row))
        return "\n".join(lines)
