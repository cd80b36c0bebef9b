"""The MCTS descent on CPU trees through numpy views (same arithmetic as the torch path).

A descent is a chain of tiny dependent operations (one level of the tree per step, ``B`` rows,
``K`` slots); on CPU each torch call costs several microseconds of overhead, numpy's about one.
These functions read and write the tree's tensors through zero-copy numpy views, so the tree
stays in tensors and the torch path (:func:`mbrl.planners.mcts.search.descend_torch`) remains the
reference; tests check both give the same searches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mbrl.planners.mcts.tree import DISCOUNT, REWARD, VALUE_SUM, VIRTUAL, VISITS, Tree


@dataclass(frozen=True)
class SelectParams:
    """What selection needs from :class:`~mbrl.planners.mcts.MCTSConfig`.

    Attributes:
        puct: PUCT (True) or UCB1 (False); pb_c_init / pb_c_base / uct_c: their constants.
        widening_k / widening_alpha: progressive widening (``widening_k=None``: discrete).
        num_slots: ``K``.
    """

    puct: bool
    pb_c_init: float
    pb_c_base: float
    uct_c: float
    widening_k: float | None
    widening_alpha: float
    num_slots: int


def select_numpy(
    tree_np: dict[str, np.ndarray],
    ar: np.ndarray,
    node: np.ndarray,
    lo: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    p: SelectParams,
) -> np.ndarray:
    """Slot ``(B,)`` to follow at ``node (B,)`` of trees ``ar (B,)`` (numpy twin of
    :func:`mbrl.planners.mcts.search.select_slots`); ``lo, scale, offset (B, 1)`` normalise Q."""
    stats = tree_np["stats"]
    child = tree_np["children"][ar, node]  # (B, K)
    cs = stats[ar[:, None], child]  # (B, K, 5)
    ps = stats[ar, node]  # (B, 5)
    visits, virtual = cs[..., VISITS], cs[..., VIRTUAL]
    pvis = ps[:, VISITS]
    parent_value = (ps[:, VALUE_SUM] / np.maximum(pvis, 1.0))[:, None]
    q = cs[..., REWARD] + cs[..., DISCOUNT] * cs[..., VALUE_SUM] / np.maximum(visits, 1.0)
    q = np.where(visits > 0, q, parent_value)
    q_norm = np.clip((q - lo) * scale + offset, 0.0, 1.0)
    edge = visits + virtual
    q_norm = q_norm * (visits + (edge == 0)) / np.maximum(edge, 1.0)
    parent_visits = pvis + ps[:, VIRTUAL]
    if p.widening_k is None:
        prior = tree_np["prior"][ar, node]
    else:
        nch = tree_np["num_children"][ar, node]
        filled = np.arange(p.num_slots) < nch[:, None]
        prior = filled / np.maximum(nch, 1)[:, None]
    if p.puct:
        coef = (p.pb_c_init + np.log((parent_visits + p.pb_c_base + 1.0) / p.pb_c_base)) * np.sqrt(
            parent_visits
        )
        scores = q_norm + prior * coef[:, None] / (1.0 + edge)
    else:
        n_parent = np.maximum(parent_visits, 1.0)[:, None]
        bonus = p.uct_c * np.sqrt(np.log(n_parent) / np.maximum(edge, 1.0))
        scores = np.where(edge > 0, q_norm + bonus, np.inf)
    scores = scores + 1e-6 * tree_np["tie"][ar, node]
    if p.widening_k is None:
        return scores.argmax(1)
    scores = np.where(filled, scores, -np.inf)
    allowed = np.clip(
        np.ceil(p.widening_k * np.maximum(parent_visits, 1.0) ** p.widening_alpha),
        1.0,
        float(p.num_slots),
    ).astype(np.int64)
    return np.where(nch < allowed, nch, scores.argmax(1))


def descend_numpy(
    tree: Tree,
    active: Tensor,
    lo: Tensor,
    scale: Tensor,
    offset: Tensor,
    params: SelectParams,
    draw: Callable[[Tensor, Tensor], tuple[Tensor, Tensor | None]],
) -> tuple[Tensor, Tensor]:
    """One descent in every tree where ``active (B,)`` (numpy twin of the torch descent).

    Args:
        tree: a CPU tree; its arrays are updated in place (virtual visits, allocations).
        active: ``(B,)`` bool; lo / scale / offset: ``(B, 1)`` Q normalisation.
        params: selection constants.
        draw: ``(b (R,), parent (R,)) -> (tie (R, K), actions (R, A) or None)``: the random
            tie-breakers and (widening) actions of the children being created, drawn in torch
            from the planner's generator.

    Returns:
        ``(leaf (B,), grown (B,) bool)`` as tensors: the node each descent ended at and
        whether this descent allocated it.
    """
    names = ("stats", "stop", "children", "prior", "tie", "num_children")
    names += ("parent", "slot", "depth", "pending", "num_nodes")
    t = {k: getattr(tree, k).numpy() for k in names}
    stats, stop, children = t["stats"], t["stop"], t["children"]
    null = tree.null
    lo_n, scale_n, offset_n = lo.numpy(), scale.numpy(), offset.numpy()
    act = active.numpy()
    bsz = act.shape[0]
    ar = np.arange(bsz)
    node = np.zeros(bsz, dtype=np.int64)
    grown = np.zeros(bsz, dtype=bool)
    stats[ar, 0, VIRTUAL] += act
    live = act.copy()
    while True:
        live &= ~stop[ar, node]
        if not live.any():
            break
        slot = select_numpy(t, ar, node, lo_n, scale_n, offset_n, params)
        child = children[ar, node, slot]
        expand = live & (child == null)
        if expand.any():
            b = ar[expand]
            parent, s = node[b], slot[b]
            new = t["num_nodes"][b].copy()
            if (new >= null).any():
                raise RuntimeError("MCTS tree capacity exhausted (internal error)")
            t["num_nodes"][b] += 1
            t["parent"][b, new] = parent
            t["slot"][b, new] = s
            t["depth"][b, new] = t["depth"][b, parent] + 1
            t["pending"][b, new] = True
            stop[b, new] = True
            stats[b, new, VIRTUAL] = 1.0
            children[b, parent, s] = new
            t["num_children"][b, parent] += 1
            tie, actions = draw(torch.from_numpy(b), torch.from_numpy(parent))
            t["tie"][b, new] = tie.numpy()
            if actions is not None:
                assert tree.child_action is not None
                tree.child_action.numpy()[b, parent, s] = actions.numpy()
            node[b] = new
            grown |= expand
        move = live & ~expand
        node = np.where(move, child, node)
        stats[ar[move], node[move], VIRTUAL] += 1.0
        live = move
    return torch.from_numpy(node), torch.from_numpy(grown)
