"""Monte-Carlo tree search over a dynamics model (mctx-style: a batched tree held in tensors).

- :mod:`~mbrl.planners.mcts.tree`: the tree as tensors and pure functions over it (backup,
  subtree reuse);
- :mod:`~mbrl.planners.mcts.select`: selection rules (UCT / PUCT), progressive widening, root
  noise;
- :mod:`~mbrl.planners.mcts.numpy_descent`: the same descent on the host for small trees;
- :mod:`~mbrl.planners.mcts.planner`: :class:`MCTSConfig`, :class:`MCTS` (the search loop,
  expansion and leaf evaluation) and its registration as the ``"mcts"`` planner.
"""

from mbrl.planners.mcts.planner import MCTS, MCTSConfig, SearchOutput

__all__ = ["MCTS", "MCTSConfig", "SearchOutput"]
