"""The state-value critic of the imagination actor-critic."""

from __future__ import annotations

from torch import Tensor, nn

from mbrl.models.checkpoint import register_checkpointable
from mbrl.models.layers import EnsembleMLP
from mbrl.models.normalization import Normalizer
from mbrl.validation import check_positive_int


@register_checkpointable
class Critic(nn.Module):
    """MLP state value ``V(obs)``: ``forward(obs (..., O)) -> (...)``.

    The input is standardised with statistics set by :meth:`fit_normalizer` (saved with the
    weights); the output layer starts at zero, so an untrained critic values every state 0.

    Args:
        obs_dim: ``O``.
        hidden_size / num_layers: MLP size (default 128 x 2).
        activation: hidden activation (default ``silu``).
    """

    def __init__(
        self, obs_dim: int, hidden_size: int = 128, num_layers: int = 2, activation: str = "silu"
    ) -> None:
        super().__init__()
        check_positive_int(obs_dim, "obs_dim")
        check_positive_int(hidden_size, "hidden_size")
        check_positive_int(num_layers, "num_layers")
        self.obs_dim, self.hidden_size, self.num_layers = obs_dim, hidden_size, num_layers
        self.activation = activation
        self.net = EnsembleMLP(1, obs_dim, 1, hidden_size, num_layers, activation)
        self.net.out.weight.data.zero_()
        self.input_norm = Normalizer(obs_dim)

    def init_kwargs(self) -> dict:
        """Constructor arguments (for checkpoints)."""
        return {
            "obs_dim": self.obs_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "activation": self.activation,
        }

    def fit_normalizer(self, obs: Tensor) -> None:
        """Input statistics from observations ``(N, O)``."""
        self.input_norm.fit(obs)

    def forward(self, obs: Tensor) -> Tensor:
        """Values ``(...)`` of ``obs (..., O)``."""
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"obs must have shape (..., {self.obs_dim}), got {tuple(obs.shape)}")
        x = self.input_norm.normalize(obs.float())
        lead = x.shape[:-1]
        return self.net(x.reshape(1, -1, self.obs_dim)).reshape(lead)
