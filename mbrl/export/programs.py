"""The modules that are exported: a policy's deterministic action, a belief policy (an RSSM
filter with the actor reading its features), and a fixed-work CEM planner.

Both are ordinary ``nn.Module`` s that call the library's own code (``LearnedPolicy.mode``,
``CEMOptimizer.optimize_batch``, ``SamplingPlanner.objective`` and through it the rollout
core), so the exported graph is the Python object's computation, traced once; nothing is
re-implemented for deployment.

What the planner artefact fixes, so that it is one deterministic function of its inputs:

- **Noise.** CEM's sampling noise is drawn at export time from ``torch.Generator(seed)``,
  exactly as the Python :class:`~mbrl.planners.cem.CEMOptimizer` with that generator draws
  it in one ``plan`` call (white or coloured, with the population decay), and stored in the
  artefact. Every call (and every row of a batch) uses the same noise: the artefact equals
  ``SamplingPlanner.plan(obs, generators=[torch.Generator().manual_seed(seed)] * B)``.
- **Model propagation.** The model steps through its mean (``model.propagating
  ("expectation")``, one particle): a sampling model's noise would need a generator inside the
  graph. For an ensemble this is the member mean, for an MLP or known physics its only step.
- **Work.** A fixed number of CEM iterations and candidates (no deadline), and no state
  carried between calls apart from the warm start, which is an input: iCEM's kept elites
  restart at every call.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mbrl.models.base import EXPECTATION, DynamicsModel
from mbrl.models.delta_model import DeltaModel
from mbrl.models.known import KnownModel
from mbrl.models.policy_model import LearnedPolicy
from mbrl.planners.cem import CEMOptimizer
from mbrl.planners.deadline import Deadline
from mbrl.planners.optimizer import _FiniteCheck
from mbrl.planners.sampling import SamplingPlanner

EXPORTABLE_MODELS: tuple[type[DynamicsModel], ...] = (DeltaModel, KnownModel)
"""Model classes a planner artefact can hold: the MLP / ensemble delta models and the known
physics models (torch code with a deterministic mean step). GPs (gpytorch) and the RSSM
(a latent belief, planned through a different loop) cannot be exported."""


class UnexportableError(TypeError):
    """The object cannot be exported (a model, planner or policy kind the exporter does not
    support); the message names it and what is supported."""


def check_exportable_model(model: DynamicsModel) -> None:
    """Raise :class:`UnexportableError` unless ``model`` is one of :data:`EXPORTABLE_MODELS`
    and steps through its mean (``expectation``)."""
    base = getattr(model, "base", model)  # a PropagationView exports its model
    if not isinstance(base, EXPORTABLE_MODELS):
        names = ", ".join(c.__name__ for c in EXPORTABLE_MODELS)
        raise UnexportableError(
            f"a {type(base).__name__} model cannot be exported into a planner artefact; "
            f"exportable models: {names} (mbrl run --model ensemble, mlp or known)"
        )
    if EXPECTATION not in base.propagations:
        raise UnexportableError(
            f"{type(base).__name__} has no 'expectation' propagation; the planner artefact "
            "steps models through their mean"
        )


def _frozen_copy(module: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``module`` on ``device``, in eval mode, its parameters not requiring grad."""
    return copy.deepcopy(module).to(device).eval().requires_grad_(False)


class PolicyProgram(nn.Module):
    """``forward(obs (B, O)) -> action (B, A)``: the policy's most likely encoded action
    (:meth:`LearnedPolicy.mode`), input normalisation and action bounds included.

    Args:
        policy: the policy (copied; the copy's parameters are frozen).
        device: where the program runs (default: the policy's device).
    """

    def __init__(self, policy: LearnedPolicy, device: str | torch.device | None = None) -> None:
        super().__init__()
        if not isinstance(policy, LearnedPolicy):
            raise UnexportableError(
                f"policy must be a LearnedPolicy (a policy_model.pt, actor.pt or a distilled "
                f"policy), got {type(policy).__name__}"
            )
        self.policy = copy.deepcopy(policy).eval().requires_grad_(False)
        if device is not None:
            self.policy.to(device)

    def forward(self, obs: Tensor) -> Tensor:
        """``obs (B, O)`` float32 -> encoded actions ``(B, A)`` (one-hot for Discrete)."""
        return self.policy.mode(obs)


class BeliefPolicyProgram(nn.Module):
    """``forward(obs (B, O), h (B, D), z (B, S), last_action (B, A)) -> (action (B, A),
    h (B, D), z (B, S))``: one belief update of an RSSM's posterior with the new observation
    (the last action led into it), then the actor's most likely action on the features.

    The posterior is filtered through its *mean* (a sampled belief would need a generator in
    the graph): the deployed controller is the Python one with ``sample=False`` in
    :meth:`~mbrl.models.rssm.model.RSSM.filter_step`. Zero ``h``, ``z`` and ``last_action``
    start an episode, as :class:`~mbrl.agents.belief.BeliefAgent` does.

    Args:
        rssm: a vector-observation :class:`~mbrl.models.rssm.model.RSSM` (copied, frozen).
        actor: a Box :class:`LearnedPolicy` over its ``feature_dim`` features (copied).
        device: where the program runs (default: the actor's device).

    Raises:
        UnexportableError: an image RSSM, a Discrete actor, or sizes that do not match.
    """

    def __init__(
        self, rssm: nn.Module, actor: LearnedPolicy, device: str | torch.device | None = None
    ) -> None:
        super().__init__()
        from mbrl.models.rssm.model import RSSM  # late: only belief policies need the RSSM

        if not isinstance(rssm, RSSM) or rssm.is_image:
            raise UnexportableError(
                "a belief policy exports a vector-observation RSSM; got "
                f"{'an image RSSM' if isinstance(rssm, RSSM) else type(rssm).__name__}"
            )
        if not isinstance(actor, LearnedPolicy) or actor.discrete:
            raise UnexportableError("a belief policy's actor must be a Box LearnedPolicy")
        if actor.obs_dim != rssm.feature_dim or actor.action_dim != rssm.action_dim:
            raise UnexportableError(
                f"the actor reads ({actor.obs_dim},) and acts ({actor.action_dim},); the RSSM's "
                f"features are ({rssm.feature_dim},) and actions ({rssm.action_dim},)"
            )
        device = torch.device(device) if device is not None else actor.action_mid.device
        self.rssm = _frozen_copy(rssm, device)
        self.policy = _frozen_copy(actor, device)

    def forward(
        self, obs: Tensor, h: Tensor, z: Tensor, last_action: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One step: see the class docstring (all float32)."""
        from mbrl.models.rssm.model import LatentState

        belief = self.rssm.filter_step(LatentState(h, z), last_action, obs, None, False, False)
        return self.policy.mode(belief.features), belief.h, belief.z


class _NoiseTapCEM(CEMOptimizer):
    """A :class:`CEMOptimizer` whose sampling noise is recorded (``record``) or replayed from
    given tensors (``replay``) instead of drawn; everything else is CEM's own code."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[Tensor] = []
        self.replay: list[Tensor] | None = None

    def _noise(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        if self.replay is None:
            draw = super()._noise(shape, generator)
            self.recorded.append(draw[0])
            return draw
        noise = self.replay.pop(0)
        return noise.unsqueeze(0).expand(shape[0], *noise.shape)


def draw_cem_noise(
    optimizer: CEMOptimizer, horizon: int, seed: int, device: torch.device
) -> list[Tensor]:
    """The noise ``optimizer``'s CEM draws in one single-problem plan call with
    ``torch.Generator(device).manual_seed(seed)``: one ``(K_i, H, A)`` tensor per iteration.

    Recorded by running the optimiser itself on a constant objective (the noise does not
    depend on the scores), so the population sizes, the decay and the colour are CEM's own.
    """
    low, high = optimizer.low.to(device), optimizer.high.to(device)
    gen = torch.Generator(device).manual_seed(int(seed))
    tap = _NoiseTapCEM(optimizer.config, low, high, gen)
    initial = tap.middle.expand(1, horizon, -1).clone()
    tap.optimize_batch(
        lambda c: torch.zeros(c.shape[:2], device=device), initial, gen, Deadline(None)
    )
    return tap.recorded


class PlannerProgram(nn.Module):
    """``forward(obs (B, O), initial (B, H, A)) -> plan (B, H, A)``: a fixed number of CEM
    iterations through the model, from the warm start ``initial`` (the middle of the action box
    for a cold start).

    Equal to the Python ``SamplingPlanner`` (model through its mean, one particle, no warm
    start of its own) planning from ``initial`` with a fresh ``torch.Generator(seed)`` per row
    (see the module docstring). A problem whose every candidate scored non-finite returns its
    clipped ``initial``, as :meth:`~mbrl.planners.optimizer.TrajectoryOptimizer.optimize` does
    (without the warning: the artefact cannot print).

    Args:
        planner: a ``SamplingPlanner`` with a :class:`CEMOptimizer` (CEM or iCEM) over an
            exportable model (:func:`check_exportable_model`); its model, task functions,
            horizon, discount and CEM settings are copied.
        seed: seed of the noise drawn into the artefact (always on a CPU generator, so an
            artefact for another device plans as the CPU one does, up to rounding).
        device: where the program runs (default: the planner's device).

    Raises:
        UnexportableError: another planner or optimiser, or a model that cannot be exported.
    """

    def __init__(
        self,
        planner: SamplingPlanner,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(planner, SamplingPlanner) or not isinstance(
            planner.optimizer, CEMOptimizer
        ):
            kind = type(getattr(planner, "optimizer", planner)).__name__
            raise UnexportableError(
                f"only CEM / iCEM sampling planners can be exported (mbrl run --planner cem or "
                f"icem), got {type(planner).__name__} with {kind}"
            )
        check_exportable_model(planner.model)
        opt = planner.optimizer
        device = torch.device(device) if device is not None else opt.device
        # Copies: freezing their parameters must not touch the caller's objects.
        self.model = _frozen_copy(planner.model, device)
        model = self.model.propagating(EXPECTATION)
        reward_fn, termination_fn = planner.reward_fn, planner.termination_fn
        if isinstance(reward_fn, nn.Module):
            self.reward_model = reward_fn = _frozen_copy(reward_fn, device)
        if isinstance(termination_fn, nn.Module):
            self.termination_model = termination_fn = _frozen_copy(termination_fn, device)
        self.horizon = planner.horizon
        self.gamma = planner.gamma
        self.seed = int(seed)
        self.config = opt.config
        noise = draw_cem_noise(opt, planner.horizon, self.seed, torch.device("cpu"))
        self.iterations = len(noise)
        for i, draw in enumerate(noise):
            self.register_buffer(f"noise_{i}", draw.to(device))
        low, high = opt.low.to(device), opt.high.to(device)
        self._optimizer = _NoiseTapCEM(opt.config, low, high, torch.Generator(device))
        self._planner = SamplingPlanner(
            model,
            reward_fn,
            termination_fn,
            self._optimizer,
            planner.horizon,
            n_particles=1,
            gamma=planner.gamma,
            generator=self._optimizer.generator,
            warm_start=False,
        )

    @property
    def populations(self) -> list[int]:
        """Candidates scored per iteration (CEM's population, decayed for iCEM)."""
        return [int(n.shape[0]) for n in self.noise]

    @property
    def noise(self) -> Sequence[Tensor]:
        """The stored noise: one ``(K_i, H, A)`` tensor per iteration."""
        return [getattr(self, f"noise_{i}") for i in range(self.iterations)]

    def forward(self, obs: Tensor, initial: Tensor) -> Tensor:
        """``obs (B, O)``, ``initial (B, H, A)`` float32 -> plan ``(B, H, A)`` in the bounds."""
        opt = self._optimizer
        checked = _FiniteCheck(self._planner.objective(obs), obs.shape[0], obs.device)
        opt.reset()
        opt.replay = list(self.noise)
        try:
            best = opt.optimize_batch(checked, initial, opt.generator, Deadline(None))
        finally:
            opt.replay = None
        keep = checked.seen_finite[:, None, None]
        return torch.where(keep, best, opt.clamp(initial))
