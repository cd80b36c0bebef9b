"""Monte-Carlo tree search over a dynamics model (mctx-style: a batched tree held in tensors).

- :mod:`~mbrl.planners.mcts.config`: :class:`MCTSConfig` and its validation;
- :mod:`~mbrl.planners.mcts.tree`: the tree as tensors and pure functions over it (backup,
  subtree reuse);
- :mod:`~mbrl.planners.mcts.select`: selection rules (UCT / PUCT), progressive widening, root
  noise;
- :mod:`~mbrl.planners.mcts.search`: the search loop as functions over the tree (rounds,
  descents, selection, allocation, widened actions, the acting choice);
- :mod:`~mbrl.planners.mcts.numpy_descent`: the same descent on the host for small trees;
- :mod:`~mbrl.planners.mcts.evaluation`: roots, expansion and leaf evaluation (one
  :func:`~mbrl.rollout.transition.transition` per expansion, leaf rollouts through
  :func:`~mbrl.rollout.core.simulate`);
- :mod:`~mbrl.planners.mcts.planner`: the :class:`MCTS` planner wiring them, and its
  registration as the ``"mcts"`` planner.
"""

from mbrl.planners.mcts.config import MCTSConfig
from mbrl.planners.mcts.planner import MCTS
from mbrl.planners.mcts.search import SearchOutput

__all__ = ["MCTS", "MCTSConfig", "SearchOutput"]
