"""Read what a run directory holds into exportable objects: its planner, or a policy.

A directory of ``mbrl run --out DIR`` (``config.json``, ``model.pt``, ``buffer.pt``,
``metrics.jsonl``, learned task models, ``policy_model.pt`` with ``--policy learned``) gives:

- the **planner** the run planned with (:func:`run_planner`): the run's config is rebuilt by
  :func:`mbrl.agents.setup.build_run` (presets, planner options and task functions exactly as
  the run resolved them, built on CPU without stepping the env), and the saved weights of the
  model and of any learned reward / termination are loaded into it;
- a **policy** (:func:`run_policy`): an imagination actor (``actor.pt``, written by
  :func:`mbrl.imagination.imagine_and_learn`), the run's learned rollout policy
  (``policy_model.pt``), or one *distilled* from the MPC agent's own actions: a
  :class:`~mbrl.models.policy_model.LearnedPolicy` fitted to the ``(obs, action)`` pairs of
  the run's MPC episodes in ``buffer.pt`` (:func:`distill_policy`), so a planner-quality
  controller can run without the planner.

A directory of :func:`mbrl.imagination.imagine_and_learn` (``imagine.json``, ``actor.pt``,
``model.pt``) gives its actor.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mbrl.data.buffer import TransitionBatch, TransitionBuffer
from mbrl.models.checkpoint import load_checkpoint, load_weights
from mbrl.models.policy_model import LearnedPolicy, fit_policy
from mbrl.models.training import FitConfig
from mbrl.planners.cem import CEMOptimizer
from mbrl.planners.sampling import SamplingPlanner
from mbrl.spaces import ActionCodec
from mbrl.validation import check_positive_int

RUN_CONFIG = "config.json"
IMAGINE_CONFIG = "imagine.json"
MODEL_FILE = "model.pt"
ACTOR_FILE = "actor.pt"
POLICY_FILE = "policy_model.pt"
BUFFER_FILE = "buffer.pt"
POLICY_SOURCES = ("auto", "actor", "policy_model", "distill")
"""Where :func:`run_policy` takes the policy from (``auto``: the first that exists of
``actor.pt``, ``policy_model.pt``, then distillation from the buffer)."""


@dataclass(frozen=True)
class DistillConfig:
    """Settings of :func:`distill_policy`.

    Attributes:
        hidden_size / num_layers: the policy MLP (default 64 x 2, :class:`LearnedPolicy`'s).
        fit: training (default: at most 3000 steps, batch 256, early stopping on 10% held
            out).
        min_rows: fewest MPC transitions to fit to (default 20).
        seed: randomness of the fit (default 0).
    """

    hidden_size: int = 64
    num_layers: int = 2
    fit: FitConfig = field(
        default_factory=lambda: FitConfig(max_steps=3000, batch_size=256, eval_every=100)
    )
    min_rows: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int(self.hidden_size, "hidden_size")
        check_positive_int(self.num_layers, "num_layers")
        check_positive_int(self.min_rows, "min_rows", minimum=2)
        if not isinstance(self.fit, FitConfig):
            raise TypeError(f"fit must be a FitConfig, got {type(self.fit).__name__}")


def _run_path(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"run directory {str(path)!r} does not exist")
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not readable JSON: {err}") from err
    if not isinstance(doc, dict):
        raise ValueError(f"{str(path)!r} does not hold a JSON object")
    return doc


def run_env_id(run_dir: str | os.PathLike) -> str:
    """The env id of an ``mbrl run`` or imagination directory.

    Raises:
        ValueError: neither ``config.json`` nor ``imagine.json`` is there.
    """
    path = _run_path(run_dir)
    for name in (RUN_CONFIG, IMAGINE_CONFIG):
        if (path / name).exists():
            doc = _read_json(path / name)
            env_id = doc.get("config", {}).get("env_id")
            if isinstance(env_id, str) and env_id:
                return env_id
            raise ValueError(f"{str(path / name)!r} names no env_id")
    raise ValueError(
        f"{str(path)!r} is not a run directory: it has neither {RUN_CONFIG} (mbrl run --out) "
        f"nor {IMAGINE_CONFIG} (imagine_and_learn)"
    )


def _refuse_latent_policy(path: Path) -> None:
    """Raise :class:`UnexportableError` for an ``mbrl run --model rssm`` directory."""
    from mbrl.export.programs import UnexportableError

    if not (path / RUN_CONFIG).exists():
        return
    if _read_json(path / RUN_CONFIG).get("config", {}).get("model") == "rssm":
        raise UnexportableError(
            f"{str(path)!r} is an mbrl run --model rssm directory: its actor (--policy "
            "imagine) reads the belief features the RSSM filters from the whole observation "
            "history, not observations, so it is no observation -> action policy; "
            "run_belief_policy / export_run(..., 'policy') export it with the filter"
        )


def is_latent_run(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` is an ``mbrl run --model rssm`` directory."""
    path = _run_path(run_dir)
    if not (path / RUN_CONFIG).exists():
        return False
    return _read_json(path / RUN_CONFIG).get("config", {}).get("model") == "rssm"


def run_belief_policy(
    run_dir: str | os.PathLike,
) -> tuple[torch.nn.Module, LearnedPolicy, int, dict[str, Any]]:
    """The RSSM and the actor of an ``mbrl run --model rssm --policy imagine`` directory, on
    CPU, weights loaded: ``(rssm, actor, action_repeat, source)``.

    Raises:
        ValueError: not an ``rssm`` run, or no ``model.pt`` / ``actor.pt`` (a PlaNet run
            without ``--policy imagine`` plans and has no actor).
    """
    from mbrl.agents.config import run_config_from_json
    from mbrl.agents.setup import build_run

    path = _run_path(run_dir)
    if not is_latent_run(path):
        raise ValueError(f"{str(path)!r} is not an mbrl run --model rssm directory")
    config = run_config_from_json(_read_json(path / RUN_CONFIG).get("config", {}))
    model_file = _require(path, MODEL_FILE, "the run saved no RSSM (did it finish an episode?)")
    actor_file = _require(
        path,
        ACTOR_FILE,
        "only a run with --policy imagine has an actor to export (a PlaNet run plans in "
        "latent space, and its planner cannot be exported)",
    )
    setup = build_run(dataclasses.replace(config, device="cpu"), dry=True, check_device=False)
    load_weights(setup.model, model_file)
    actor, meta = load_checkpoint(actor_file, expected_class=LearnedPolicy)
    assert setup.planet is not None  # an rssm set-up
    repeat = setup.planet.config.action_repeat
    source = {"run_dir": str(path), "env_id": config.env_id, "policy": "actor", "file": ACTOR_FILE}
    return setup.model.eval(), actor.eval(), repeat, {**source, "metadata": meta}


def _require(path: Path, name: str, what: str) -> Path:
    file = path / name
    if not file.exists():
        raise ValueError(f"run directory {str(path)!r} has no {name}: {what}")
    return file


def run_planner(
    run_dir: str | os.PathLike,
    overrides: dict[str, Any] | None = None,
    horizon: int | None = None,
) -> SamplingPlanner:
    """The CEM / iCEM planner an ``mbrl run`` directory planned with, on CPU, weights loaded.

    Args:
        run_dir: the run's ``--out`` directory.
        overrides: CEM settings replacing the run's (e.g. ``{"iterations": 3,
            "population": 200}``), checked by the config.
        horizon: planning horizon replacing the run's.

    Raises:
        ValueError: not a run directory, no ``model.pt``, weights that do not fit, bad
            overrides.
        UnexportableError: a planner other than CEM / iCEM, or the ``rssm`` model.
    """
    from mbrl.agents.config import run_config_from_json
    from mbrl.agents.setup import build_run
    from mbrl.export.programs import UnexportableError
    from mbrl.util.configs import config_from_options

    path = _run_path(run_dir)
    doc = _read_json(
        _require(path, RUN_CONFIG, "planner export needs an `mbrl run --out` directory")
    )
    model_file = _require(
        path, MODEL_FILE, "the run saved no dynamics model (did it finish an episode?)"
    )
    config = run_config_from_json(doc.get("config", {}))
    if config.model == "rssm":
        raise UnexportableError(
            "a run with --model rssm plans in a latent belief (the PlaNet loop); its planner "
            "cannot be exported, and neither can a policy: one needs the RSSM's belief filter "
            "with it (train an observation-space actor with mbrl dyna --algo imagine instead)"
        )
    # A deployed planner plans for the task: exploring is how the run gathered its data.
    deployed = dataclasses.replace(config, device="cpu", explore="off")
    setup = build_run(deployed, dry=True, check_device=False)
    load_weights(setup.model, model_file)
    parts = setup.state
    if parts is not None and parts.task_models is not None:
        for name, module in parts.task_models.checkpoints().items():
            load_weights(module, _require(path, name, "the run learned its reward"))
    planner = setup.planner
    if not isinstance(planner, SamplingPlanner) or not isinstance(planner.optimizer, CEMOptimizer):
        raise UnexportableError(
            f"planner {config.planner!r} of {str(path)!r} cannot be exported: only cem and "
            "icem (fixed iterations of sampling) can"
        )
    if not overrides and horizon is None:
        return planner
    opt = planner.optimizer
    cfg = config_from_options(type(opt.config), dict(overrides or {}), opt.config, "--planner-opt")
    if horizon is not None:
        check_positive_int(horizon, "horizon")
    return SamplingPlanner(
        planner.model,
        planner.reward_fn,
        planner.termination_fn,
        CEMOptimizer(cfg, opt.low, opt.high, opt.generator),
        horizon if horizon is not None else planner.horizon,
        n_particles=planner.n_particles,
        gamma=planner.gamma,
        generator=planner.generator,
    )


def mpc_transitions(run_dir: str | os.PathLike) -> TransitionBatch:
    """The transitions of the MPC episodes of an ``mbrl run`` directory (seed episodes of
    random actions left out), oldest first.

    Rows are matched to episodes from the end of ``buffer.pt`` by the step counts in
    ``metrics.jsonl`` (transitions loaded with ``--initial-buffer`` come before them).

    Raises:
        ValueError: no buffer or metrics, or a buffer that does not hold the episodes.
    """
    from mbrl.agents.writer import RunWriter

    path = _run_path(run_dir)
    buffer = TransitionBuffer.load(_require(path, BUFFER_FILE, "distillation needs the buffer"))
    records = RunWriter(path).read_records()
    if not records:
        raise ValueError(f"run directory {str(path)!r} has no episodes in metrics.jsonl")
    batch = buffer.all()
    n = len(buffer)
    keep = torch.zeros(n, dtype=torch.bool)
    end = n
    for record in reversed(records):
        steps = int(record.get("steps", 0))
        start = max(end - steps, 0)
        if record.get("kind") != "seed":
            keep[start:end] = True
        end = start
        if end == 0:
            break
    return batch.index(torch.nonzero(keep).flatten())


def distill_policy(
    data: TransitionBatch,
    codec: ActionCodec,
    config: DistillConfig | None = None,
) -> LearnedPolicy:
    """A :class:`LearnedPolicy` fitted by maximum likelihood to ``data``'s ``(obs (N, O),
    action (N, A))`` pairs: the agent's own actions, imitated.

    Raises:
        ValueError: fewer than ``config.min_rows`` rows.
    """
    cfg = config or DistillConfig()
    rows = int(data.obs.shape[0])
    if rows < cfg.min_rows:
        raise ValueError(
            f"distillation needs at least {cfg.min_rows} MPC transitions, got {rows} (run more "
            "MPC episodes, or lower DistillConfig.min_rows)"
        )
    policy = LearnedPolicy(
        int(data.obs.shape[1]),
        codec.dim,
        codec.discrete,
        None if codec.discrete else codec.low,
        None if codec.discrete else codec.high,
        cfg.hidden_size,
        cfg.num_layers,
    )
    fit_policy(policy, data, cfg.fit, torch.Generator().manual_seed(cfg.seed))
    return policy.eval()


def run_policy(
    run_dir: str | os.PathLike,
    source: str = "auto",
    distill: DistillConfig | None = None,
) -> tuple[LearnedPolicy, dict[str, Any]]:
    """A policy from a run directory, and where it came from (for the artefact's spec).

    Args:
        run_dir: an ``mbrl run`` or imagination directory.
        source: one of :data:`POLICY_SOURCES`.
        distill: settings when distilling.

    Raises:
        ValueError: unknown ``source``, or the file it names is missing.
        UnexportableError: an ``rssm`` run (its actor reads belief features, not
            observations).
    """
    if source not in POLICY_SOURCES:
        raise ValueError(f"source must be one of {POLICY_SOURCES}, got {source!r}")
    path = _run_path(run_dir)
    env_id = run_env_id(path)
    _refuse_latent_policy(path)
    files = {"actor": ACTOR_FILE, "policy_model": POLICY_FILE}
    if source == "auto":
        source = next((k for k, f in files.items() if (path / f).exists()), "distill")
    if source in files:
        file = _require(path, files[source], f"policy source {source!r} reads it")
        policy, meta = load_checkpoint(file, expected_class=LearnedPolicy)
        return policy, {
            "run_dir": str(path),
            "env_id": env_id,
            "policy": source,
            "file": files[source],
            "metadata": meta,
        }
    from mbrl.agents.env_factory import make_env

    env = make_env(env_id)
    try:
        codec = ActionCodec.from_space(env.action_space)
    finally:
        env.close()
    data = mpc_transitions(path)
    policy = distill_policy(data, codec, distill)
    return policy, {
        "run_dir": str(path),
        "env_id": env_id,
        "policy": "distill",
        "mpc_transitions": int(data.obs.shape[0]),
    }
