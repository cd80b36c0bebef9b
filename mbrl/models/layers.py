"""Batched ensemble layers: ``E`` independent networks evaluated as one ``baddbmm`` per layer."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


_INPLACE: dict[str, Callable[[Tensor], Tensor]] = {
    "silu": lambda x: F.silu(x, inplace=True),
    "relu": torch.relu_,
    "tanh": torch.tanh_,
    "elu": lambda x: F.elu(x, inplace=True),
}


def make_activation(name: str) -> nn.Module:
    """Activation module by name (``silu``, ``relu``, ``tanh``, ``elu``)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError as err:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}") from err


class EnsembleLinear(nn.Module):
    """``E`` independent affine maps: ``x (E, N, in) -> (E, N, out)``.

    Weights are ``(E, in, out)``, biases ``(E, 1, out)``. When the input has a lower-precision
    dtype than the parameters (the bf16 inference path), parameters are cast to it per call: the
    cast touches ``E*in*out`` numbers while the matmul does ``N`` times that much work.
    """

    def __init__(self, ensemble_size: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.ensemble_size = ensemble_size
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal init scaled by fan-in (as PETS), zero biases."""
        std = 1.0 / (2.0 * math.sqrt(self.in_features))
        with torch.no_grad():
            nn.init.trunc_normal_(self.weight, std=std, a=-2 * std, b=2 * std)
            self.bias.zero_()

    def _params(self, members: Tensor | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        w, b = self.weight, self.bias
        if members is not None:
            w, b = w.index_select(0, members), b.index_select(0, members)
        if dtype != w.dtype:
            w, b = w.to(dtype), b.to(dtype)
        return w, b

    def forward(
        self, x: Tensor, members: Tensor | None = None, out: Tensor | None = None
    ) -> Tensor:
        """``x (E', N, in) -> (E', N, out)`` where ``E' = len(members)`` or ``E``.

        ``out`` (no-grad only) receives the result in place of a fresh allocation.
        """
        w, b = self._params(members, x.dtype)
        if out is None:
            return torch.baddbmm(b, x, w)
        return torch.baddbmm(b, x, w, out=out)


class EnsembleMLP(nn.Module):
    """``E`` MLPs with ``num_layers`` hidden layers of ``hidden_size`` units, batched.

    ``forward(x (E', N, in), members) -> (E', N, out)``.
    """

    def __init__(
        self,
        ensemble_size: int,
        in_features: int,
        out_features: int,
        hidden_size: int = 200,
        num_layers: int = 4,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        sizes = [in_features] + [hidden_size] * num_layers
        self.hidden = nn.ModuleList(
            EnsembleLinear(ensemble_size, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.out = EnsembleLinear(ensemble_size, hidden_size, out_features)
        self.act = make_activation(activation)
        self._act_inplace = _INPLACE[activation]
        self.hidden_size = hidden_size
        self._workspace: tuple[Tensor, Tensor] | None = None

    def _buffers_for(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Two reusable ``(E', N, hidden)`` activation buffers matching ``x``'s batch and dtype."""
        shape = (x.shape[0], x.shape[1], self.hidden_size)
        ws = self._workspace
        if ws is None or ws[0].shape != shape or ws[0].dtype != x.dtype or ws[0].device != x.device:
            ws = (x.new_empty(shape), x.new_empty(shape))
            self._workspace = ws
        return ws

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        """``x (E', N, in) -> (E', N, out)``; ``members (E',)`` selects a subset of the ``E`` nets.

        Without autograd (planning), hidden activations are written into two reused buffers
        with in-place activations: a rollout step then allocates nothing of size
        ``E' x N x hidden`` (fresh multi-megabyte allocations page-fault on every step on CPU).
        The returned tensor is always freshly allocated. Not safe for concurrent calls on one
        module from several threads.
        """
        if torch.is_grad_enabled():
            for layer in self.hidden:
                x = self.act(layer(x, members))
            return self.out(x, members)
        buffers = self._buffers_for(x)
        for i, layer in enumerate(self.hidden):
            x = self._act_inplace(layer(x, members, out=buffers[i % 2]))
        return self.out(x, members)
