"""Write policy and planner artefacts: ``torch.export`` programs with their spec and digest.

Why ``torch.export``: it is the supported way to save a torch program for deployment in this
torch (``torch.jit.trace`` / ``script`` / ``save`` / ``load`` all raise ``FutureWarning``
deprecation notices in 2.14), it captures one graph of ATen operators with the weights and
normalisation statistics as tensors, with symbolic (dynamic) batch sizes checked at call
time, and it loads with ``torch.export.load`` alone: no mbrl, no Python class of ours.
ONNX would need an extra exporter and runtime for the same graph; AOTInductor compiles that
graph to a shared library for one machine type, which is a further step one can take from
this artefact (``torch._inductor.aoti_compile_and_package``), not a different format.

The archive holds, besides the program, ``mbrl_spec.json`` (see :func:`policy_spec`,
:func:`planner_spec`) and ``mbrl_sha256``, checked by :mod:`mbrl.export.loader` before
anything is read.
"""

from __future__ import annotations

import json
import os
import platform
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mbrl.export.loader import DIGEST_FILE, FORMAT, SPEC_FILE, VERSION, archive_digest
from mbrl.export.programs import (
    BeliefPolicyProgram,
    PlannerProgram,
    PolicyProgram,
    UnexportableError,
)
from mbrl.models.policy_model import LearnedPolicy
from mbrl.planners.sampling import SamplingPlanner
from mbrl.validation import check_positive_int

MAX_BATCH = 4096
"""Default largest batch an artefact accepts (the batch size is symbolic up to this)."""


@dataclass(frozen=True)
class Exported:
    """What :func:`export_policy` / :func:`export_planner` return.

    Attributes:
        path: the artefact file.
        spec: its spec (the JSON object stored as ``mbrl_spec.json``).
        program: the eager module that was exported (:class:`PolicyProgram` or
            :class:`PlannerProgram`), for parity checks.
    """

    path: Path
    spec: dict[str, Any]
    program: nn.Module


def _tensor(name: str, shape: list[Any], description: str) -> dict[str, Any]:
    return {"name": name, "shape": shape, "dtype": "float32", "description": description}


def _base_spec(
    kind: str,
    obs_dim: int,
    action_dim: int,
    low: Tensor,
    high: Tensor,
    discrete: bool,
    device: torch.device,
    max_batch: int,
    env_id: str,
    source: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "env_id": env_id,
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "discrete": discrete,
        "action_low": [float(v) for v in low.reshape(-1).tolist()],
        "action_high": [float(v) for v in high.reshape(-1).tolist()],
        "device": str(device),
        "max_batch": max_batch,
        "exported_with": {
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "source": source or {},
    }


def policy_spec(
    policy: LearnedPolicy,
    device: torch.device,
    max_batch: int = MAX_BATCH,
    env_id: str = "",
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The spec of a policy artefact: input ``obs (B, O)`` (raw observations, the
    normalisation is inside), output ``action (B, A)`` in the action bounds."""
    if policy.discrete:
        low, high = torch.zeros(policy.action_dim), torch.ones(policy.action_dim)
    else:
        low, high = torch.tensor(policy.low), torch.tensor(policy.high)
    spec = _base_spec(
        "policy",
        policy.obs_dim,
        policy.action_dim,
        low,
        high,
        policy.discrete,
        device,
        max_batch,
        env_id,
        source,
    )
    spec["inputs"] = [
        _tensor("obs", ["B", policy.obs_dim], "raw env observations (normalised inside)")
    ]
    what = "one-hot encoded Discrete action" if policy.discrete else "action in the bounds"
    spec["outputs"] = [
        _tensor("action", ["B", policy.action_dim], f"the policy's most likely {what}")
    ]
    return spec


def belief_policy_spec(
    program: BeliefPolicyProgram,
    device: torch.device,
    action_repeat: int = 1,
    max_batch: int = MAX_BATCH,
    env_id: str = "",
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The spec of a belief-policy artefact: inputs ``obs (B, O)``, the belief ``h (B, D)``,
    ``z (B, S)`` and ``last_action (B, A)``; outputs ``action (B, A)`` and the updated
    ``h``, ``z``. ``belief`` holds the sizes and ``action_repeat`` (env steps per action)."""
    rssm, policy = program.rssm, program.policy
    o, a = int(rssm.obs_shape[0]), rssm.action_dim
    d, s = rssm.config.deter_size, rssm.config.stoch_size
    low, high = torch.tensor(policy.low), torch.tensor(policy.high)
    spec = _base_spec("belief_policy", o, a, low, high, False, device, max_batch, env_id, source)
    spec["belief"] = {
        "deter_size": d,
        "stoch_size": s,
        "posterior": "mean",
        "action_repeat": int(action_repeat),
        "start": "zeros for h, z and last_action at every episode start",
    }
    spec["inputs"] = [
        _tensor("obs", ["B", o], "raw env observations (normalised inside)"),
        _tensor("h", ["B", d], "deterministic belief state returned by the last call"),
        _tensor("z", ["B", s], "stochastic belief state (posterior mean) of the last call"),
        _tensor("last_action", ["B", a], "the action executed since the last call"),
    ]
    spec["outputs"] = [
        _tensor(
            "action",
            ["B", a],
            f"the actor's most likely action in the bounds; hold it for {int(action_repeat)} "
            "env steps",
        ),
        _tensor("h", ["B", d], "updated deterministic belief state"),
        _tensor("z", ["B", s], "updated stochastic belief state"),
    ]
    return spec


def planner_spec(
    program: PlannerProgram,
    obs_dim: int,
    device: torch.device,
    max_batch: int = MAX_BATCH,
    env_id: str = "",
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The spec of a planner artefact: inputs ``obs (B, O)`` and the warm start ``initial
    (B, H, A)``, output ``plan (B, H, A)``; ``planner`` holds the fixed settings."""
    opt = program._optimizer
    h, a = program.horizon, int(opt.low.shape[0])
    spec = _base_spec(
        "planner", obs_dim, a, opt.low, opt.high, False, device, max_batch, env_id, source
    )
    cfg = program.config
    spec["planner"] = {
        "algorithm": "cem",
        "horizon": h,
        "iterations": program.iterations,
        "populations": program.populations,
        "elites": cfg.num_elites,
        "momentum": cfg.momentum,
        "init_std": cfg.init_std,
        "noise_beta": cfg.noise_beta,
        "return_best": cfg.return_best,
        "keep_elites_frac": cfg.keep_elites_frac,
        "gamma": program.gamma,
        "noise_seed": program.seed,
        "model": type(getattr(program.model, "base", program.model)).__name__,
        "propagation": "expectation",
        "particles": 1,
    }
    spec["inputs"] = [
        _tensor("obs", ["B", obs_dim], "raw env observations"),
        _tensor(
            "initial",
            ["B", h, a],
            "warm start: the last plan shifted by the steps executed, padded with the middle "
            "of the action box (all middle for a cold start)",
        ),
    ]
    spec["outputs"] = [_tensor("plan", ["B", h, a], "planned actions; execute row 0")]
    return spec


def _export(
    program: nn.Module, inputs: tuple[Tensor, ...], max_batch: int
) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    dynamic = tuple({0: batch} for _ in inputs)
    try:
        # Grad mode on while tracing: the ensemble layers' no-grad path reuses activation
        # buffers cached on the module, which must not be traced (parameters are frozen).
        with torch.enable_grad():
            return torch.export.export(program, inputs, dynamic_shapes=dynamic)
    except Exception as err:  # torch.export raises many types; all mean "cannot trace"
        raise UnexportableError(
            f"torch.export could not trace {type(program).__name__}: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from err


def save_program(
    exported: torch.export.ExportedProgram, spec: dict[str, Any], path: str | os.PathLike
) -> Path:
    """Write ``exported`` with ``spec`` and the digest to ``path`` (atomically: a temporary
    file in the same directory, then a rename)."""
    path = Path(path)
    if path.suffix != ".pt2":
        raise ValueError(f"the artefact file must end in .pt2, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.pt2")
    try:
        torch.export.save(exported, tmp, extra_files={SPEC_FILE: json.dumps(spec, indent=2)})
        with zipfile.ZipFile(tmp) as archive:
            prefix = archive.namelist()[0].split("/", 1)[0]
        digest = archive_digest(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(f"{prefix}/extra/{DIGEST_FILE}", digest)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _example_obs(obs_dim: int, device: torch.device) -> Tensor:
    # Two rows: torch.export specialises sizes 0 and 1, so the example must not be 1.
    return torch.zeros(2, obs_dim, device=device)


def export_policy(
    policy: LearnedPolicy,
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    max_batch: int = MAX_BATCH,
    env_id: str = "",
    source: dict[str, Any] | None = None,
) -> Exported:
    """Export ``policy`` (its :meth:`~LearnedPolicy.mode`) to ``path`` (``.pt2``).

    Args:
        policy: a :class:`LearnedPolicy` (a run's ``policy_model.pt``, an imagination actor,
            or a policy distilled from MPC actions).
        path: the artefact file; device: where it runs (default cpu; the loader can move it);
        max_batch: largest batch accepted; env_id / source: recorded in the spec.

    Raises:
        UnexportableError: not a :class:`LearnedPolicy`, or tracing failed.
    """
    check_positive_int(max_batch, "max_batch", minimum=2)
    device = torch.device(device)
    program = PolicyProgram(policy, device)
    exported = _export(program, (_example_obs(policy.obs_dim, device),), max_batch)
    spec = policy_spec(policy, device, max_batch, env_id, source)
    return Exported(save_program(exported, spec, path), spec, program)


def export_belief_policy(
    rssm: nn.Module,
    actor: LearnedPolicy,
    path: str | os.PathLike,
    *,
    action_repeat: int = 1,
    device: str | torch.device = "cpu",
    max_batch: int = MAX_BATCH,
    env_id: str = "",
    source: dict[str, Any] | None = None,
) -> Exported:
    """Export an RSSM belief filter with the actor on its features
    (:class:`BeliefPolicyProgram`, e.g. ``mbrl run --model rssm --policy imagine``) to
    ``path``.

    Args:
        rssm / actor: the world model and the actor over its features.
        path: the artefact file (``.pt2``); action_repeat: env steps per action (recorded);
        device, max_batch, env_id, source: as :func:`export_policy`.

    Raises:
        UnexportableError: an image RSSM, a Discrete or mismatched actor, or tracing failed.
    """
    check_positive_int(max_batch, "max_batch", minimum=2)
    check_positive_int(action_repeat, "action_repeat")
    device = torch.device(device)
    program = BeliefPolicyProgram(rssm, actor, device)
    r = program.rssm
    inputs = (
        _example_obs(int(r.obs_shape[0]), device),
        torch.zeros(2, r.config.deter_size, device=device),
        torch.zeros(2, r.config.stoch_size, device=device),
        torch.zeros(2, r.action_dim, device=device),
    )
    exported = _export(program, inputs, max_batch)
    spec = belief_policy_spec(program, device, action_repeat, max_batch, env_id, source)
    return Exported(save_program(exported, spec, path), spec, program)


def export_planner(
    planner: SamplingPlanner,
    path: str | os.PathLike,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_batch: int = MAX_BATCH,
    env_id: str = "",
    source: dict[str, Any] | None = None,
) -> Exported:
    """Export ``planner`` as a fixed-work CEM planner (:class:`PlannerProgram`) to ``path``.

    Args:
        planner: a CEM / iCEM ``SamplingPlanner`` over an exportable model.
        path: the artefact file (``.pt2``); seed: the stored noise's seed; device, max_batch,
            env_id, source: as :func:`export_policy`.

    Raises:
        UnexportableError: another planner, a model that cannot be exported, or tracing
            failed.
    """
    check_positive_int(max_batch, "max_batch", minimum=2)
    device = torch.device(device)
    program = PlannerProgram(planner, seed, device)
    obs = _example_obs(planner.model.obs_dim, device)
    initial = program._optimizer.middle.expand(2, planner.horizon, -1).clone()
    exported = _export(program, (obs, initial), max_batch)
    spec = planner_spec(program, planner.model.obs_dim, device, max_batch, env_id, source)
    return Exported(save_program(exported, spec, path), spec, program)
