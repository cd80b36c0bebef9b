"""Export for deployment: policies and fixed-work CEM planners as ``torch.export`` artefacts.

``mbrl export RUN_DIR --what policy|planner --out FILE.pt2`` (or :func:`export_run`) writes a
self-contained ``.pt2`` file: the program with weights and normalisation inside, its
input/output spec, and a digest. :mod:`mbrl.export.loader` (torch and the standard library
only; copy the one file) loads and runs it. docs/guides/deploy-a-saved-model.md has the
walk-through and the choice of format.

- :func:`export_policy` / :func:`export_planner`: from Python objects;
- :func:`export_run`: from a run directory (:mod:`mbrl.export.run_dir`: the run's planner,
  its policy, or a policy distilled from its MPC episodes);
- :mod:`mbrl.export.checks`: parity with the Python objects and latency.
"""

from __future__ import annotations

import os
from typing import Any

from mbrl.export.artefact import (
    MAX_BATCH,
    Exported,
    export_belief_policy,
    export_planner,
    export_policy,
)
from mbrl.export.checks import (
    LatencyReport,
    belief_policy_parity,
    measure_latency,
    planner_parity,
    policy_parity,
    random_observations,
    reference_planner,
)
from mbrl.export.loader import (
    DeployedBeliefPolicy,
    DeployedPlanner,
    DeployedPolicy,
    load,
    read_spec,
)
from mbrl.export.programs import (
    EXPORTABLE_MODELS,
    BeliefPolicyProgram,
    PlannerProgram,
    PolicyProgram,
    UnexportableError,
)
from mbrl.export.run_dir import (
    POLICY_SOURCES,
    DistillConfig,
    distill_policy,
    is_latent_run,
    mpc_transitions,
    run_belief_policy,
    run_env_id,
    run_planner,
    run_policy,
)

WHAT = ("policy", "planner")
"""What :func:`export_run` exports."""


def export_run(
    run_dir: str | os.PathLike,
    what: str,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    device: str = "cpu",
    max_batch: int = MAX_BATCH,
    planner_options: dict[str, Any] | None = None,
    horizon: int | None = None,
    policy_source: str = "auto",
    distill: DistillConfig | None = None,
) -> tuple[Exported, Any]:
    """Export the planner or a policy of ``run_dir`` to ``out`` (``.pt2``).

    Args:
        run_dir: an ``mbrl run --out`` directory (or an imagination one, for a policy).
        what: ``policy`` or ``planner``.
        out: the artefact file.
        seed: the planner's stored noise seed.
        device: where the artefact runs (default cpu; the loader can move it).
        max_batch: largest batch the artefact accepts.
        planner_options / horizon: CEM settings and horizon replacing the run's (planner).
        policy_source: one of :data:`POLICY_SOURCES` (policy).
        distill: distillation settings (policy from the MPC episodes).

    A policy of an ``mbrl run --model rssm --policy imagine`` directory is exported with the
    RSSM's belief filter (:func:`export_belief_policy`).

    Returns:
        ``(exported, source)``: the :class:`Exported` artefact and the Python object it was
        exported from (the ``SamplingPlanner``, the ``LearnedPolicy``, or ``(rssm, actor)``
        for a belief policy), for parity checks.

    Raises:
        ValueError: unknown ``what``, not a run directory, a missing file (``model.pt``,
            ``buffer.pt``, ...), bad options.
        UnexportableError: a model, planner or policy kind that cannot be exported.
    """
    if what not in WHAT:
        raise ValueError(f"what must be one of {WHAT} (--what), got {what!r}")
    env_id = run_env_id(run_dir)
    if what == "planner":
        planner = run_planner(run_dir, planner_options, horizon)
        source = {"run_dir": str(run_dir), "env_id": env_id}
        exported = export_planner(
            planner,
            out,
            seed=seed,
            device=device,
            max_batch=max_batch,
            env_id=env_id,
            source=source,
        )
        return exported, planner
    if is_latent_run(run_dir):
        if policy_source not in ("auto", "actor"):
            raise ValueError(
                f"policy_source={policy_source!r} (--policy-source): an rssm run's policy is "
                "its actor (actor.pt)"
            )
        rssm, actor, repeat, source = run_belief_policy(run_dir)
        exported = export_belief_policy(
            rssm, actor, out, action_repeat=repeat, device=device, max_batch=max_batch,
            env_id=env_id, source=source,
        )  # fmt: skip
        return exported, (rssm, actor)
    policy, source = run_policy(run_dir, policy_source, distill)
    exported = export_policy(
        policy, out, device=device, max_batch=max_batch, env_id=env_id, source=source
    )
    return exported, policy


__all__ = [
    "EXPORTABLE_MODELS",
    "BeliefPolicyProgram",
    "DeployedBeliefPolicy",
    "belief_policy_parity",
    "export_belief_policy",
    "is_latent_run",
    "run_belief_policy",
    "MAX_BATCH",
    "POLICY_SOURCES",
    "WHAT",
    "DeployedPlanner",
    "DeployedPolicy",
    "DistillConfig",
    "Exported",
    "LatencyReport",
    "PlannerProgram",
    "PolicyProgram",
    "UnexportableError",
    "distill_policy",
    "export_planner",
    "export_policy",
    "export_run",
    "load",
    "measure_latency",
    "mpc_transitions",
    "planner_parity",
    "policy_parity",
    "random_observations",
    "read_spec",
    "reference_planner",
    "run_env_id",
    "run_planner",
    "run_policy",
]
