"""The batched search tree of :mod:`mbrl.planners.mcts`, held in tensors (mctx-style layout).

``B`` independent trees of capacity ``N`` nodes share one set of arrays; node ``0`` of every
tree is its root. A node is created by expanding an *edge* ``(parent, slot)``: the ``K`` slots of
a node are the ``K`` discrete actions, or (continuous actions) up to ``K`` actions sampled by
progressive widening. Nodes are allocated in order, so a parent's index is always smaller than
its children's.

Every per-node array has ``N + 1`` entries along the node axis: index ``N`` is the *null node*
(all statistics zero), which unexpanded child slots and the roots' parents point to. Reading
through a null pointer therefore needs no masking, which keeps the descent loop short.

The hot statistics are packed in one ``stats (B, N + 1, 5)`` table (columns
:data:`VISITS`, :data:`VALUE_SUM`, :data:`REWARD`, :data:`DISCOUNT`, :data:`VIRTUAL`) so one
gather fetches all of a node's children. Model states are stored per node as
``(B, N + 1, ...)`` tensors: a tensor state ``(M, S)`` becomes one ``(B, N + 1, S)`` array, a
dataclass of tensors one array per tensor field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mbrl.models.base import ModelState

VISITS, VALUE_SUM, REWARD, DISCOUNT, VIRTUAL = range(5)
"""Columns of :attr:`Tree.stats`."""


def _state_fields(state: ModelState) -> dict[str, Tensor]:
    """The tensor leaves of a model state: ``{"": state}`` or a dataclass's tensor fields."""
    if isinstance(state, Tensor):
        return {"": state}
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        out = {
            f.name: getattr(state, f.name)
            for f in dataclasses.fields(state)
            if isinstance(getattr(state, f.name), Tensor)
        }
        if out:
            return out
    raise TypeError(
        "MCTS stores model states per node and needs a tensor (M, S) or a dataclass of "
        f"tensors with M leading rows; got {type(state).__name__}"
    )


def index_state(state: ModelState, rows: Tensor) -> ModelState:
    """Rows ``rows`` (an index ``(R,)`` or bool mask ``(M,)``) of a model state of ``M`` rows."""
    if isinstance(state, Tensor):
        return state[rows]
    fields = _state_fields(state)
    return dataclasses.replace(state, **{k: v[rows] for k, v in fields.items()})


def tile_state(state: ModelState, times: int) -> ModelState:
    """A state of ``M`` rows repeated particle-major into ``times * M`` rows."""
    if times == 1:
        return state

    def rep(v: Tensor) -> Tensor:
        return v.repeat((times,) + (1,) * (v.ndim - 1))

    if isinstance(state, Tensor):
        return rep(state)
    fields = _state_fields(state)
    return dataclasses.replace(state, **{k: rep(v) for k, v in fields.items()})


class StateStore:
    """Per-node storage of model states for ``B`` trees of ``N + 1`` node entries.

    Args:
        template: a state of ``M`` rows (any ``M``); only its field shapes/dtypes are used.
        batch: ``B``; entries: ``N + 1``.
    """

    def __init__(self, template: ModelState, batch: int, entries: int) -> None:
        self.template = template
        self.arrays: dict[str, Tensor] = {
            k: v.new_zeros((batch, entries) + tuple(v.shape[1:]))
            for k, v in _state_fields(template).items()
        }

    def write(self, b: Tensor, n: Tensor, state: ModelState) -> None:
        """Store rows of ``state (R, ...)`` at nodes ``(b (R,), n (R,))``."""
        for k, v in _state_fields(state).items():
            self.arrays[k][b, n] = v.to(self.arrays[k].dtype)

    def read(self, b: Tensor, n: Tensor) -> ModelState:
        """The states at nodes ``(b (R,), n (R,))`` as one model state of ``R`` rows."""
        rows = {k: arr[b, n] for k, arr in self.arrays.items()}
        if isinstance(self.template, Tensor):
            return rows[""]
        return dataclasses.replace(self.template, **rows)

    def remap(self, b: Tensor, old: Tensor, new: Tensor, entries: int) -> StateStore:
        """A new store of ``entries`` nodes holding the states of ``(b, old)`` at ``(b, new)``."""
        out = StateStore.__new__(StateStore)
        out.template = self.template
        out.arrays = {}
        for k, arr in self.arrays.items():
            fresh = arr.new_zeros((arr.shape[0], entries) + tuple(arr.shape[2:]))
            fresh[b, new] = arr[b, old]
            out.arrays[k] = fresh
        return out


@dataclass
class Tree:
    """``B`` search trees of capacity ``N`` nodes (plus the null node ``N``), ``K`` slots each.

    Attributes:
        stats: ``(B, N + 1, 5)`` float: visits (backed-up simulations through the node), value
            sum (returns from the node onwards), reward on the edge into the node, discount
            applied to the node's value by its parent (``gamma``, times the continuation
            probability under soft termination), virtual visits of the current round.
        raw_value: ``(B, N + 1)`` the node's own evaluation (rollout and/or value function).
        terminal: ``(B, N + 1)`` bool, the edge into the node ended the episode (value 0).
        pending: ``(B, N + 1)`` bool, allocated this round but not evaluated yet.
        stop: ``(B, N + 1)`` bool, a descent ends here (pending, terminal or at the depth
            limit).
        parent: ``(B, N + 1)`` long, parent index (``N`` for roots and unused nodes).
        slot: ``(B, N + 1)`` long, the parent's child slot leading here (``-1`` for roots).
        depth: ``(B, N + 1)`` long, edges from the root.
        children: ``(B, N + 1, K)`` long, child index per slot (``N``: not expanded).
        prior: ``(B, N + 1, K)`` prior probability per slot (PUCT).
        tie: ``(B, N + 1, K)`` random numbers in ``[0, 1)`` drawn when the node is created;
            ``1e-6 * tie`` is added to selection scores so ties are broken at random (not
            towards slot 0) without drawing random numbers inside the descent.
        num_children: ``(B, N + 1)`` long, expanded slots (continuous: slots ``0..n-1``).
        child_action: ``(B, N + 1, K, A)`` encoded action per slot (continuous only, else
            None).
        obs: ``(B, N + 1, O)`` what the model observes at each node.
        states: model state per node (:class:`StateStore`).
        num_nodes: ``(B,)`` long, nodes in use (the next free index).
    """

    stats: Tensor
    raw_value: Tensor
    terminal: Tensor
    pending: Tensor
    stop: Tensor
    parent: Tensor
    slot: Tensor
    depth: Tensor
    children: Tensor
    prior: Tensor
    tie: Tensor
    num_children: Tensor
    child_action: Tensor | None
    obs: Tensor
    states: StateStore
    num_nodes: Tensor

    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.stats.shape[0])

    @property
    def capacity(self) -> int:
        """``N``, which is also the index of the null node."""
        return int(self.stats.shape[1]) - 1

    @property
    def null(self) -> int:
        """Index of the null node (``N``)."""
        return int(self.stats.shape[1]) - 1

    @property
    def num_slots(self) -> int:
        """``K``."""
        return int(self.children.shape[2])

    @property
    def visit_count(self) -> Tensor:
        """``(B, N + 1)`` view of the visit counts."""
        return self.stats[..., VISITS]

    @property
    def value_sum(self) -> Tensor:
        """``(B, N + 1)`` view of the value sums."""
        return self.stats[..., VALUE_SUM]

    @property
    def reward(self) -> Tensor:
        """``(B, N + 1)`` view of the rewards into each node."""
        return self.stats[..., REWARD]

    @property
    def discount(self) -> Tensor:
        """``(B, N + 1)`` view of the discounts."""
        return self.stats[..., DISCOUNT]

    @property
    def virtual(self) -> Tensor:
        """``(B, N + 1)`` view of the virtual visits."""
        return self.stats[..., VIRTUAL]

    def node_offsets(self) -> Tensor:
        """``(B,)`` offsets ``b * (N + 1)`` turning ``(b, node)`` into flat indices."""
        return torch.arange(self.batch_size, device=self.stats.device) * (self.capacity + 1)


_NODE_FIELDS = (
    "stats",
    "raw_value",
    "terminal",
    "pending",
    "stop",
    "parent",
    "slot",
    "depth",
    "children",
    "prior",
    "tie",
    "num_children",
    "child_action",
    "obs",
)


def empty_tree(
    batch: int,
    capacity: int,
    num_slots: int,
    obs_dim: int,
    state_template: ModelState,
    action_dim: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tree:
    """An empty tree: no node in use (``num_nodes == 0``); every pointer is null.

    Args:
        batch: ``B``; capacity: ``N``; num_slots: ``K``; obs_dim: ``O``.
        state_template: a model state whose fields give the per-node state shapes.
        action_dim: ``A`` to store sampled actions per slot (continuous), or None (discrete).
    """
    b, n, k = batch, capacity + 1, num_slots

    def f(*shape: int, fill: float = 0.0) -> Tensor:
        return torch.full(shape, fill, dtype=dtype, device=device)

    def i(*shape: int, fill: int) -> Tensor:
        return torch.full(shape, fill, dtype=torch.long, device=device)

    def z(*shape: int) -> Tensor:
        return torch.zeros(shape, dtype=torch.bool, device=device)

    return Tree(
        stats=f(b, n, 5),
        raw_value=f(b, n),
        terminal=z(b, n),
        pending=z(b, n),
        stop=z(b, n),
        parent=i(b, n, fill=capacity),
        slot=i(b, n, fill=-1),
        depth=i(b, n, fill=0),
        children=i(b, n, k, fill=capacity),
        prior=f(b, n, k, fill=1.0 / k),
        tie=f(b, n, k),
        num_children=i(b, n, fill=0),
        child_action=None if action_dim is None else f(b, n, k, action_dim),
        obs=f(b, n, obs_dim),
        states=StateStore(state_template, b, n),
        num_nodes=i(b, fill=0),
    )


def node_values(tree: Tree) -> Tensor:
    """Mean backed-up value of every node ``(B, N + 1)`` (0 for unvisited nodes)."""
    return tree.value_sum / tree.visit_count.clamp(min=1.0)


def node_q(tree: Tree) -> Tensor:
    """Value of reaching each node from its parent, ``reward + discount * value``: ``(B, N + 1)``."""
    return tree.reward + tree.discount * node_values(tree)


def min_max(tree: Tree) -> tuple[Tensor, Tensor]:
    """Smallest and largest ``Q`` over the visited non-root nodes of each tree: ``(B,)`` each.

    Used to normalise Q-values to ``[0, 1]`` (MuZero), so rewards of any scale work. Trees
    with no visited child yet get ``(0, 0)``.
    """
    q = node_q(tree)
    seen = (tree.visit_count > 0) & (tree.parent != tree.null)
    inf = torch.full_like(q, torch.inf)
    lo = torch.where(seen, q, inf).amin(dim=1)
    hi = torch.where(seen, q, -inf).amax(dim=1)
    none = ~seen.any(dim=1)
    return lo.masked_fill(none, 0.0), hi.masked_fill(none, 0.0)


def normalizer(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(lo, scale, offset)`` each ``(B, 1)`` such that ``((q - lo) * scale + offset)``
    clamped to ``[0, 1]`` is the min-max normalised ``q``; trees whose bounds coincide map
    everything to 0.5."""
    span = hi - lo
    flat = span <= 1e-8
    scale = torch.where(flat, torch.zeros_like(span), 1.0 / span.clamp(min=1e-8))
    offset = flat.to(span.dtype) * 0.5
    return lo.unsqueeze(1), scale.unsqueeze(1), offset.unsqueeze(1)


def normalize_q(q: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Min-max normalise ``q (B, K)`` with per-tree bounds ``lo, hi (B,)`` into ``[0, 1]``."""
    low, scale, offset = normalizer(lo, hi)
    return ((q - low) * scale + offset).clamp(0.0, 1.0)


def children_stats(tree: Tree, b: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
    """Children of nodes ``(b (R,), node (R,))``: ``child (R, K)`` (null where unexpanded) and
    their packed statistics ``(R, K, 5)`` (zeros for the null node)."""
    child = tree.children[b, node]
    return child, tree.stats[b.unsqueeze(1), child]


def child_q(stats: Tensor) -> Tensor:
    """``reward + discount * mean value`` of children from packed ``stats (..., 5)``."""
    visits = stats[..., VISITS]
    return stats[..., REWARD] + stats[..., DISCOUNT] * stats[..., VALUE_SUM] / visits.clamp(min=1.0)


def backup(tree: Tree, b: Tensor, leaf: Tensor, value: Tensor) -> None:
    """Back up ``value (R,)`` from leaves ``(b (R,), leaf (R,))`` to their roots, in place.

    Along each path a node's visit count grows by 1 and its value sum by the return from that
    node onwards; the return seen by the parent is ``reward + discount * return``. Several rows
    may share nodes (counts accumulate).
    """
    entries = tree.capacity + 1
    flat_stats = tree.stats.view(-1, 5)
    flat_parent = tree.parent.view(-1)
    base = b * entries
    node, g = leaf.clone(), value.to(tree.stats.dtype).clone()
    ones = torch.ones_like(g)
    null = tree.null
    while True:
        live = node != null
        if not bool(live.any()):
            return
        idx = (base + node)[live]
        gl = g[live]
        upd = torch.stack([ones[live], gl], dim=1)
        flat_stats[:, VISITS : VALUE_SUM + 1].index_put_((idx,), upd, accumulate=True)
        row = flat_stats[idx]
        g[live] = row[:, REWARD] + row[:, DISCOUNT] * gl
        node[live] = flat_parent[idx]


def subtree(tree: Tree, new_root: Tensor, extra: int) -> Tree:
    """The subtrees rooted at ``new_root (B,)`` re-indexed into a fresh tree, root at node 0.

    Keeps every statistic of the kept nodes (tree reuse between planning steps); depths shift
    so the new root has depth 0. The new capacity is the largest kept subtree plus ``extra``.

    Raises:
        ValueError: if a ``new_root`` is not a node in use.
    """
    bsz, entries = tree.batch_size, tree.capacity + 1
    device = tree.stats.device
    ar = torch.arange(bsz, device=device)
    if bool(((new_root < 0) | (new_root >= tree.num_nodes)).any()):
        raise ValueError(f"new_root must index nodes in use, got {new_root.tolist()}")
    idx = torch.arange(entries, device=device).expand(bsz, entries)
    keep = idx == new_root[:, None]
    while True:  # parents precede children: membership spreads down one level per pass
        grown = keep | keep.gather(1, tree.parent)
        grown[:, -1] = False  # the null node is nobody's descendant
        if bool((grown == keep).all()):
            break
        keep = grown
    counts = keep.sum(dim=1)
    new_cap = int(counts.max()) + extra
    new_index = torch.where(keep, keep.cumsum(dim=1) - 1, torch.full_like(idx, new_cap))
    bb, old = keep.nonzero(as_tuple=True)
    new = new_index[bb, old]

    def remap_ptr(ptr: Tensor) -> Tensor:
        return new_index.gather(1, ptr.reshape(bsz, -1)).view_as(ptr)

    fresh = empty_tree(
        bsz,
        new_cap,
        tree.num_slots,
        tree.obs.shape[2],
        tree.states.template,
        None if tree.child_action is None else tree.child_action.shape[3],
        dtype=tree.stats.dtype,
        device=device,
    )
    fields: dict[str, Any] = {}
    for name in _NODE_FIELDS:
        src = getattr(tree, name)
        if src is None:
            fields[name] = None
            continue
        dst = getattr(fresh, name)
        if name in ("parent", "children"):
            src = remap_ptr(src)
        dst[bb, new] = src[bb, old]
        fields[name] = dst
    root_depth = tree.depth[ar, new_root]
    fields["depth"] = (fields["depth"] - root_depth[:, None]).clamp(min=0)
    fields["parent"][:, 0] = new_cap
    fields["slot"][:, 0] = -1
    fields["stats"][:, 0, REWARD] = 0.0
    fields["stats"][..., VIRTUAL] = 0.0
    return Tree(
        **fields,
        states=tree.states.remap(bb, old, new, new_cap + 1),
        num_nodes=counts.to(torch.long),
    )
