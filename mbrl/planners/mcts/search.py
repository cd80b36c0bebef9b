"""The search loop of :mod:`mbrl.planners.mcts` as functions over the batched :class:`Tree`.

A search is *rounds* (:func:`search_round`) until every root has had its simulations
(:func:`run_simulations`). Batching, two ways:

* each round runs ``leaves_per_batch`` descents (:func:`descend`) one after the other; each
  descent adds a virtual loss along its path so the next goes elsewhere, and the new leaves of
  the round are expanded and evaluated together, by one ``expand`` call;
* ``B`` independent searches advance together: every array of the tree
  (:mod:`mbrl.planners.mcts.tree`) has a leading ``B``.

A descent that reaches a node allocated earlier in the same round (a *collision*) is dropped:
its virtual loss stays until the round ends and it counts as no simulation. Each root stops
descending for the round after ``max(1, leaves_per_batch // 4)`` collisions.

These functions know nothing of models (mctx's split): children being created get their random
numbers from a ``draw`` callback, and new leaves are stepped and valued by an ``expand``
callback (:class:`mbrl.planners.mcts.evaluation.Evaluator`, mctx's ``recurrent_fn``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mbrl.planners.deadline import Deadline
from mbrl.planners.mcts.numpy_descent import SelectParams, descend_numpy
from mbrl.planners.mcts.select import (
    dirichlet_noise,
    puct_scores,
    uct_scores,
    virtual_loss_q,
    visit_policy,
    widening_limit,
)
from mbrl.planners.mcts.tree import (
    VALUE_SUM,
    VIRTUAL,
    VISITS,
    Tree,
    backup,
    child_q,
    children_stats,
    min_max,
    normalize_q,
    normalizer,
)

Draw = Callable[[Tensor, Tensor], tuple[Tensor, Tensor | None]]
"""``draw(b (R,), parent (R,)) -> (tie (R, K), actions (R, A) or None)``: the random numbers of
children being created under ``(b, parent)`` (tie-breakers, and widened actions for Box)."""
Expand = Callable[[Tree, Tensor, Tensor], None]
"""``expand(tree, b (R,), nodes (R,))``: step the model into pending nodes and evaluate them
(fills their state, observation, reward, discount, terminal flag, prior and raw value)."""
ProposalFn = Callable[[Tensor, torch.Generator], Tensor]
"""``proposal_fn(obs (M, O), generator) -> actions (M, A)``: widening proposals (Box spaces)."""

INACTIVE, NEW, TERMINAL, DEPTH, COLLISION = range(5)
"""How a descent ended: no descent, a new node, a terminal node, the depth limit, a collision."""


@dataclass(frozen=True)
class SearchSpec:
    """The static settings the search functions read (built once by the planner).

    Attributes:
        num_simulations: simulations per root.
        leaves_per_batch: descents per round.
        collision_limit: collisions after which a root stops descending for the round.
        select: selection constants (:class:`SelectParams`).
        use_numpy: descend through numpy views of a CPU tree instead of torch.
    """

    num_simulations: int
    leaves_per_batch: int
    collision_limit: int
    select: SelectParams
    use_numpy: bool


@dataclass(frozen=True)
class SearchOutput:
    """Result of :meth:`~mbrl.planners.mcts.MCTS.search` for ``B`` roots with ``K`` child slots.

    Attributes:
        slot: ``(B,)`` chosen root slot (the discrete action index, or the widened child).
        action: ``(B, A)`` encoded chosen action (one-hot for Discrete spaces).
        visit_counts: ``(B, K)`` visits of the root's children.
        policy: ``(B, K)`` normalised root visit counts (an AlphaZero policy target).
        q_values: ``(B, K)`` root children's Q (``reward + gamma * value``; 0 where unvisited).
        root_value: ``(B,)`` mean backed-up value of the root.
        simulations: ``(B,)`` simulations run by this search.
        descents: descents made (all roots together), collisions: descents dropped.
        tree: the search tree (:class:`~mbrl.planners.mcts.tree.Tree`).
    """

    slot: Tensor
    action: Tensor
    visit_counts: Tensor
    policy: Tensor
    q_values: Tensor
    root_value: Tensor
    simulations: Tensor
    descents: int
    collisions: int
    tree: Tree


def slot_actions(tree: Tree, b: Tensor, node: Tensor, slot: Tensor) -> Tensor:
    """Encoded actions ``(R, A)`` of slots ``slot (R,)`` at nodes ``(b (R,), node (R,))``:
    one-hot rows for Discrete spaces (trees without ``child_action``), else the stored ones."""
    if tree.child_action is None:
        return F.one_hot(slot, tree.num_slots).to(torch.float32)
    return tree.child_action[b, node, slot]


def select_slots(
    tree: Tree, flat: Tensor, lo: Tensor, scale: Tensor, offset: Tensor, p: SelectParams
) -> Tensor:
    """Slot ``(B,)`` to follow at flat node indices ``flat (B,)`` (PUCT/UCT), or a new slot
    when progressive widening allows one more child; ``lo, scale, offset (B, 1)`` normalise Q.
    """
    bsz, entries = tree.batch_size, tree.capacity + 1
    flat_stats = tree.stats.view(-1, 5)
    child = tree.children.view(bsz * entries, -1)[flat]
    cstats = flat_stats[child + (flat - flat % entries).unsqueeze(1)]  # (B, K, 5)
    pstats = flat_stats[flat]  # (B, 5)
    visits, virtual = cstats[..., VISITS], cstats[..., VIRTUAL]
    pvis = pstats[:, VISITS]
    parent_value = (pstats[:, VALUE_SUM] / pvis.clamp(min=1.0)).unsqueeze(1)
    # Unvisited children start at the parent's value ("first-play urgency" as mctx).
    q = torch.where(visits > 0, child_q(cstats), parent_value)
    q_norm = ((q - lo) * scale + offset).clamp(0.0, 1.0)
    edge = visits + virtual
    q_norm = virtual_loss_q(q_norm, visits, edge)
    parent_visits = pvis + pstats[:, VIRTUAL]
    if p.widening_k is None:
        prior = tree.prior.view(bsz * entries, -1)[flat]
    else:
        nch = tree.num_children.view(-1)[flat]
        filled = torch.arange(p.num_slots, device=flat.device) < nch.unsqueeze(1)
        prior = filled / nch.clamp(min=1).unsqueeze(1)
    if p.puct:
        scores = puct_scores(q_norm, prior, edge, parent_visits, p.pb_c_init, p.pb_c_base)
    else:
        scores = uct_scores(q_norm, edge, parent_visits, p.uct_c)
    # Ties (e.g. fresh nodes) are broken at random, not towards slot 0.
    scores = scores + 1e-6 * tree.tie.view(bsz * entries, -1)[flat]
    if p.widening_k is None:
        return torch.argmax(scores, dim=1)
    scores = torch.where(filled, scores, torch.full_like(scores, -torch.inf))
    allowed = widening_limit(parent_visits, p.widening_k, p.widening_alpha, p.num_slots)
    return torch.where(nch < allowed, nch, torch.argmax(scores, dim=1))


def allocate(tree: Tree, grow: Tensor, node: Tensor, slot: Tensor, draw: Draw) -> Tensor:
    """Allocate a pending child at ``(node, slot)`` in trees ``grow (B,)``; its index ``(B,)``
    (null where nothing grew)."""
    b = grow.nonzero(as_tuple=True)[0]
    parent, s = node[b], slot[b]
    new = tree.num_nodes[b]
    if bool((new >= tree.capacity).any()):
        raise RuntimeError("MCTS tree capacity exhausted (internal error)")
    tree.num_nodes[b] += 1
    tree.parent[b, new] = parent
    tree.slot[b, new] = s
    tree.depth[b, new] = tree.depth[b, parent] + 1
    tree.pending[b, new] = True
    tree.stop[b, new] = True
    tree.stats[b, new, VIRTUAL] = 1.0
    tree.children[b, parent, s] = new
    tree.num_children[b, parent] += 1
    tie, actions = draw(b, parent)
    tree.tie[b, new] = tie
    if actions is not None:
        assert tree.child_action is not None
        tree.child_action[b, parent, s] = actions
    out = torch.full_like(node, tree.null)
    out[b] = new
    return out


def descend_torch(
    tree: Tree,
    active: Tensor,
    lo: Tensor,
    scale: Tensor,
    offset: Tensor,
    p: SelectParams,
    draw: Draw,
) -> tuple[Tensor, Tensor]:
    """One descent in torch (any device) in every tree where ``active (B,)``, adding virtual
    visits on the way: ``(leaf (B,), grown (B,) bool)`` (whether it allocated the leaf)."""
    bsz = tree.batch_size
    null = tree.null
    base = tree.node_offsets()
    virtual = tree.stats.view(-1, 5)[:, VIRTUAL]
    stop = tree.stop.view(-1)
    children = tree.children.view(bsz * (null + 1), -1)
    node = torch.zeros(bsz, dtype=torch.long, device=active.device)
    grown = torch.zeros(bsz, dtype=torch.bool, device=active.device)
    virtual.index_add_(0, base, active.to(virtual.dtype))
    live = active
    while True:
        flat = base + node
        live = live & ~stop[flat]
        if not bool(live.any()):
            return node, grown
        slot = select_slots(tree, flat, lo, scale, offset, p)
        child = children[flat].gather(1, slot.unsqueeze(1)).squeeze(1)
        expand = live & (child == null)
        if bool(expand.any()):
            new = allocate(tree, expand, node, slot, draw)
            node = torch.where(expand, new, node)
            grown = grown | expand
        move = live & ~expand
        node = torch.where(move, child, node)
        virtual.index_add_(0, base + node, move.to(virtual.dtype))
        live = move


def descend(
    tree: Tree,
    active: Tensor,
    lo: Tensor,
    scale: Tensor,
    offset: Tensor,
    spec: SearchSpec,
    draw: Draw,
) -> tuple[Tensor, Tensor]:
    """One descent in every tree where ``active (B,)`` (torch or numpy, the same search).

    ``lo, scale, offset (B, 1)`` normalise Q-values (:func:`normalizer`).

    Returns:
        ``(leaf (B,), kind (B,))``: the node reached and how the descent ended
        (:data:`NEW`, :data:`TERMINAL`, :data:`DEPTH`, :data:`COLLISION`, :data:`INACTIVE`).
    """
    if spec.use_numpy:
        node, grown = descend_numpy(tree, active, lo, scale, offset, spec.select, draw)
    else:
        node, grown = descend_torch(tree, active, lo, scale, offset, spec.select, draw)
    # How each descent ended, read once at its last node.
    flat = tree.node_offsets() + node
    pend = tree.pending.view(-1)[flat] & ~grown
    term = tree.terminal.view(-1)[flat]
    kind = torch.full_like(node, DEPTH)
    kind = torch.where(term, torch.full_like(kind, TERMINAL), kind)
    kind = torch.where(pend, torch.full_like(kind, COLLISION), kind)
    kind = torch.where(grown, torch.full_like(kind, NEW), kind)
    kind = torch.where(active, kind, torch.full_like(kind, INACTIVE))
    return node, kind


def search_round(
    tree: Tree, counted: Tensor, spec: SearchSpec, draw: Draw, expand: Expand
) -> tuple[int, int]:
    """One round: up to ``leaves_per_batch`` descents per root, one batched expansion and
    evaluation of the new leaves, one backup. Updates ``counted (B,)`` in place.

    Returns:
        ``(descents, collisions)`` made this round.
    """
    lo, scale, offset = normalizer(*min_max(tree))
    budget = spec.num_simulations - counted
    taken = torch.zeros_like(counted)
    clashes = torch.zeros_like(counted)
    leaves, kinds = [], []
    for _ in range(spec.leaves_per_batch):
        active = (taken < budget) & (clashes < spec.collision_limit)
        if not bool(active.any()):
            break
        leaf, kind = descend(tree, active, lo, scale, offset, spec, draw)
        taken += ((kind == NEW) | (kind == TERMINAL) | (kind == DEPTH)).long()
        clashes += (kind == COLLISION).long()
        leaves.append(leaf)
        kinds.append(kind)
    leaf_t, kind_t = torch.stack(leaves), torch.stack(kinds)  # (J, B)
    is_new = kind_t == NEW
    _, nb = is_new.nonzero(as_tuple=True)
    if nb.numel():
        expand(tree, nb, leaf_t[is_new])
    use = is_new | (kind_t == TERMINAL) | (kind_t == DEPTH)
    _, ub = use.nonzero(as_tuple=True)
    nodes = leaf_t[use]
    backup(tree, ub, nodes, tree.raw_value[ub, nodes])
    tree.stats[..., VIRTUAL] = 0.0
    counted += taken
    return int((kind_t != INACTIVE).sum()), int((kind_t == COLLISION).sum())


def run_simulations(
    tree: Tree, spec: SearchSpec, draw: Draw, expand: Expand, deadline: Deadline | None = None
) -> tuple[Tensor, int, int]:
    """Rounds until every root of ``tree`` got ``num_simulations`` simulations, or until
    ``deadline`` expires (checked after each round, so at least one round runs).

    Returns:
        ``(simulations (B,), descents, collisions)``.
    """
    counted = torch.zeros(tree.batch_size, dtype=torch.long, device=tree.stats.device)
    descents = collisions = 0
    while bool((counted < spec.num_simulations).any()):
        d, c = search_round(tree, counted, spec, draw, expand)
        descents, collisions = descents + d, collisions + c
        if deadline is not None and deadline.expired():
            break
    return counted, descents, collisions


def add_root_noise(
    tree: Tree, alpha: float, fraction: float, generator: torch.Generator | None
) -> None:
    """Mix Dirichlet(``alpha``) noise into every root's prior ``(B, K)`` with weight
    ``fraction`` (AlphaZero's exploration at the root), in place."""
    shape = (tree.batch_size, tree.num_slots)
    noise = dirichlet_noise(shape, alpha, generator, tree.prior.device)
    tree.prior[:, 0] = (1 - fraction) * tree.prior[:, 0] + fraction * noise


def choose_root_slots(
    tree: Tree, temperature: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """The acting choice at every root: ``(slot (B,), visits (B, K), q (B, K))``.

    The most visited child at ``temperature`` 0 (ties to the better normalised Q, then the
    root's random tie-breakers), else a draw from the visit counts to the ``1 / temperature``.
    """
    ar = torch.arange(tree.batch_size, device=tree.stats.device)
    zero = torch.zeros_like(ar)
    _, cstats = children_stats(tree, ar, zero)
    visits = cstats[..., VISITS]
    q = torch.where(visits > 0, child_q(cstats), torch.zeros_like(visits))
    lo, hi = min_max(tree)
    tie = 0.99 * normalize_q(q, lo, hi) * (visits > 0) + 0.01 * tree.tie[:, 0]
    slot, _ = visit_policy(visits, temperature, generator, tie)
    return slot, visits, q


def widened_actions(
    tree: Tree,
    b: Tensor,
    parent: Tensor,
    low: Tensor,
    high: Tensor,
    generator: torch.Generator,
    *,
    local_prob: float,
    std: float,
    proposal_fn: ProposalFn | None = None,
) -> Tensor:
    """New actions ``(R, A)`` for widening nodes ``(b (R,), parent (R,))`` within ``low, high
    (A,)``: ``proposal_fn``'s, or uniform, or with probability ``local_prob`` Gaussian
    (``std`` times the range) around the action of the parent's best visited child."""
    rows, dim = b.shape[0], low.shape[0]
    span = high - low
    if proposal_fn is not None:
        acts = proposal_fn(tree.obs[b, parent], generator).float()
        return torch.minimum(torch.maximum(acts, low), high)
    u = torch.rand((rows, dim), generator=generator, device=low.device)
    acts = low + u * span
    if local_prob > 0:
        older_n = tree.num_children[b, parent] - 1  # excluding the slot being filled
        _, cstats = children_stats(tree, b, parent)
        slots = torch.arange(tree.num_slots, device=low.device)
        older = slots < older_n.unsqueeze(1)
        # The best child so far: highest Q among visited ones (else the first).
        visited = older & (cstats[..., VISITS] > 0)
        score = torch.where(
            visited, child_q(cstats), torch.full_like(visited, -torch.inf, dtype=cstats.dtype)
        )
        best = torch.argmax(score, dim=1)
        assert tree.child_action is not None
        centre = tree.child_action[b, parent, best]
        noise = torch.randn((rows, dim), generator=generator, device=low.device)
        local = torch.minimum(torch.maximum(centre + std * span * noise, low), high)
        pick = torch.rand(rows, generator=generator, device=low.device) < local_prob
        acts = torch.where((pick & (older_n > 0)).unsqueeze(1), local, acts)
    return acts
