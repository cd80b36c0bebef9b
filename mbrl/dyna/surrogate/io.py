"""Saving and loading surrogates: a directory with ``surrogate.json`` and the model files;
spaces described as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from mbrl.data.buffer import TransitionBuffer
from mbrl.dyna.surrogate.env import SurrogateEnv
from mbrl.models.base import DynamicsModel
from mbrl.models.checkpoint import load_checkpoint, save_checkpoint
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.task_fns import RewardFn, TerminationFn, get_task_fns
from mbrl.util.paths import check_output_dir

SURROGATE_FORMAT = "mbrl-surrogate"
SURROGATE_VERSION = 1
_META_FILE = "surrogate.json"
_MODEL_FILE = "model.pt"
_REWARD_FILE = "reward_model.pt"
_TERMINATION_FILE = "termination_model.pt"
_STARTS_FILE = "start_states.pt"
_SPACE_KEYS = {"Box": ("low", "high", "shape", "dtype"), "Discrete": ("n",)}

_META_TYPES: dict[str, tuple[type, ...]] = {
    "env_id": (str,),
    "observation_space": (dict,),
    "action_space": (dict,),
    "max_episode_steps": (int, type(None)),
    "uncertainty_penalty": (int, float),
    "model_class": (str,),
}
_META_CHOICES: dict[str, tuple[str, ...]] = {
    "reward": ("known", "learned"),
    "termination": ("known", "none", "learned"),
}
"""What :func:`read_surrogate_metadata` requires of ``surrogate.json``: the JSON types, or the
string values, allowed for each key."""


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """A JSON-able description of a ``Box`` or ``Discrete`` space (see :func:`space_from_dict`).

    Raises:
        TypeError: for other spaces.
    """
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "low": space.low.astype(np.float64).tolist(),
            "high": space.high.astype(np.float64).tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    raise TypeError(f"only Box and Discrete spaces can be saved, got {space}")


def space_from_dict(data: dict[str, Any]) -> gym.Space:
    """Rebuild the space described by :func:`space_to_dict`.

    Raises:
        ValueError: for a description that is not a Box or Discrete space, or one with a
            missing or malformed entry (the message names it).
    """
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in _SPACE_KEYS:
        raise ValueError(f"space description must be a Box or Discrete dict, got {data!r}")
    missing = [k for k in _SPACE_KEYS[kind] if k not in data]
    if missing:
        raise ValueError(f"{kind} space description lacks {missing}")
    try:
        if kind == "Box":
            dtype = np.dtype(data["dtype"])
            shape = tuple(data["shape"])
            low = np.asarray(data["low"], dtype=np.float64).reshape(shape).astype(dtype)
            high = np.asarray(data["high"], dtype=np.float64).reshape(shape).astype(dtype)
            return gym.spaces.Box(low, high, shape, dtype)
        return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    except (TypeError, ValueError) as err:
        raise ValueError(f"malformed {kind} space description ({err}): {data!r}") from err


# --------------------------------------------------------------------------- save / load
def save_surrogate(
    directory: str | os.PathLike,
    model: DynamicsModel,
    observation_space: gym.Space,
    action_space: gym.Space,
    start_states: Tensor | np.ndarray | TransitionBuffer,
    *,
    env_id: str,
    reward: str | LearnedReward = "known",
    termination: str | LearnedTermination = "known",
    max_episode_steps: int | None = 1000,
    uncertainty_penalty: float = 0.0,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write a surrogate to ``directory`` so :func:`load_surrogate` (and
    ``gymnasium.make("mbrl/Surrogate-v0", path=directory)``) rebuilds it in any process.

    Files: ``surrogate.json`` (format, env id, spaces, episode length, reward/termination kind,
    penalty, ``info``), ``model.pt`` (model checkpoint, the same metadata inside),
    ``start_states.pt`` (tensor ``(N, O)``), and ``reward_model.pt`` /
    ``termination_model.pt`` for learned ones.

    Args:
        directory: created if missing.
        model: the dynamics model (must be checkpointable).
        observation_space / action_space: the real env's spaces (1-D Box / Box or Discrete).
        start_states: ``(N, O)`` start states, or a buffer (all its ``obs``).
        env_id: the gymnasium id the model was learned on; ``known`` task functions are looked
            up by it (:func:`mbrl.task_fns.get_task_fns`) when loading.
        reward: ``"known"`` or a fitted :class:`~mbrl.models.LearnedReward`.
        termination: ``"known"`` (the env's known termination, possibly none), ``"none"`` or a
            fitted :class:`~mbrl.models.LearnedTermination`.
        max_episode_steps / uncertainty_penalty: defaults of the loaded env.
        info: extra JSON-able metadata (e.g. how the data was collected).

    Returns:
        The directory path.

    Raises:
        ValueError / TypeError: as :class:`SurrogateCore`, or ``known`` task functions that
            are not registered for ``env_id``.
    """
    path = check_output_dir(directory, "save_surrogate: directory")
    known = get_task_fns(env_id)
    reward_fn, reward_kind = _resolve_reward(reward, known, env_id)
    term_fn, term_kind = _resolve_termination(termination, known, env_id)
    # Build once: validates sizes, start states and the penalty before anything is written.
    env = SurrogateEnv(
        model,
        observation_space,
        action_space,
        reward_fn,
        term_fn,
        start_states,
        max_episode_steps=max_episode_steps,
        uncertainty_penalty=uncertainty_penalty,
    )
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": SURROGATE_FORMAT,
        "version": SURROGATE_VERSION,
        "env_id": env_id,
        "observation_space": space_to_dict(observation_space),
        "action_space": space_to_dict(action_space),
        "max_episode_steps": None if max_episode_steps is None else int(max_episode_steps),
        "reward": reward_kind,
        "termination": term_kind,
        "uncertainty_penalty": float(uncertainty_penalty),
        "model_class": type(model).__name__,
        "n_start_states": int(env.core.start_states.shape[0]),
        "info": dict(info or {}),
    }
    save_checkpoint(path / _MODEL_FILE, model, meta)
    if isinstance(reward, LearnedReward):
        save_checkpoint(path / _REWARD_FILE, reward, {"env_id": env_id})
    if isinstance(termination, LearnedTermination):
        save_checkpoint(path / _TERMINATION_FILE, termination, {"env_id": env_id})
    starts = env.core.start_states.cpu()
    tmp = path / (_STARTS_FILE + ".tmp")
    torch.save(starts, tmp)
    os.replace(tmp, path / _STARTS_FILE)
    (path / _META_FILE).write_text(json.dumps(meta, indent=2))
    return path


def _resolve_reward(reward: Any, known: Any, env_id: str) -> tuple[RewardFn, str]:
    if isinstance(reward, LearnedReward):
        return reward, "learned"
    if reward == "known":
        if known is None:
            raise ValueError(
                f"reward='known' but no task functions are registered for {env_id!r}; "
                "pass a fitted LearnedReward"
            )
        return known.reward, "known"
    raise ValueError(f"reward must be 'known' or a LearnedReward, got {reward!r}")


def _resolve_termination(
    termination: Any, known: Any, env_id: str
) -> tuple[TerminationFn | None, str]:
    if isinstance(termination, LearnedTermination):
        return termination, "learned"
    if termination == "none":
        return None, "none"
    if termination == "known":
        if known is None:
            raise ValueError(
                f"termination='known' but no task functions are registered for {env_id!r}; "
                "pass a fitted LearnedTermination or 'none'"
            )
        return known.termination, "known"
    raise ValueError(
        f"termination must be 'known', 'none' or a LearnedTermination, got {termination!r}"
    )


def read_surrogate_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The ``surrogate.json`` of a saved surrogate.

    Raises:
        ValueError: missing directory/file, not an mbrl surrogate of a known version, or a
            required key missing or of the wrong type (the message names the file and key).
    """
    path = Path(directory)
    meta_path = path / _META_FILE
    if not meta_path.is_file():
        raise ValueError(
            f"{str(path)!r} is not a saved surrogate (no {_META_FILE}); create one with "
            "`mbrl surrogate --env ID --steps N --out DIR`"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(meta_path)!r} is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != SURROGATE_FORMAT:
        raise ValueError(f"{str(meta_path)!r} is not an mbrl surrogate description")
    if meta.get("version") != SURROGATE_VERSION:
        raise ValueError(
            f"{str(meta_path)!r} has version {meta.get('version')}, expected {SURROGATE_VERSION}"
        )
    for key in (*_META_TYPES, *_META_CHOICES):
        if key not in meta:
            raise ValueError(f"{str(meta_path)!r} lacks the key {key!r}")
        value = meta[key]
        if key in _META_CHOICES:
            ok, expected = value in _META_CHOICES[key], " or ".join(map(repr, _META_CHOICES[key]))
        else:
            types_ = _META_TYPES[key]
            ok = isinstance(value, types_) and not isinstance(value, bool)
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types_)
        if not ok:
            raise ValueError(f"{str(meta_path)!r}: {key!r} must be {expected}, got {value!r}")
    return meta


def _known_fns_for(env_id: str) -> Any:
    known = get_task_fns(env_id)
    if known is None and ":" in env_id:
        # Third-party ids ``module:Env-v0``: importing the module registers its task functions.
        import importlib

        importlib.import_module(env_id.split(":", 1)[0])
        known = get_task_fns(env_id.split(":", 1)[1]) or get_task_fns(env_id)
    if known is None:
        raise ValueError(
            f"the surrogate uses the known task functions of {env_id!r}, but none are registered "
            "in this process (import the package that registers them first)"
        )
    return known


def load_surrogate(
    directory: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    max_episode_steps: int | None | str = "saved",
    uncertainty_penalty: float | None = None,
    clip_observations: bool = True,
) -> SurrogateEnv:
    """Rebuild the :class:`SurrogateEnv` saved by :func:`save_surrogate`.

    Args:
        directory: the saved surrogate.
        device: where the model runs (default cpu).
        max_episode_steps: override the saved episode length (``"saved"``: keep it).
        uncertainty_penalty: override the saved penalty (``None``: keep it).
        clip_observations: clip observations to the space's bounds (default True).

    Raises:
        ValueError: a missing or malformed surrogate directory or file.
    """
    args, options = loaded_surrogate(
        directory, device, max_episode_steps, uncertainty_penalty, clip_observations
    )
    return SurrogateEnv(*args, **options)


def loaded_surrogate(
    directory: str | os.PathLike,
    device: str | torch.device,
    max_episode_steps: int | None | str,
    uncertainty_penalty: float | None,
    clip_observations: bool,
) -> tuple[
    tuple[DynamicsModel, gym.Space, gym.Space, RewardFn, TerminationFn | None, Tensor],
    dict[str, Any],
]:
    """The positional arguments (model, spaces, task functions, start states) and keyword
    options of a saved surrogate, with the caller's overrides applied: what both
    :func:`load_surrogate` and the vector loader pass to their env class."""
    parts = _load_parts(directory, device)
    meta = parts["meta"]
    args = (
        parts["model"],
        parts["observation_space"],
        parts["action_space"],
        parts["reward_fn"],
        parts["termination_fn"],
        parts["start_states"],
    )
    options = {
        "max_episode_steps": meta["max_episode_steps"]
        if max_episode_steps == "saved"
        else max_episode_steps,
        "uncertainty_penalty": meta["uncertainty_penalty"]
        if uncertainty_penalty is None
        else uncertainty_penalty,
        "clip_observations": clip_observations,
        "info": meta,
    }
    return args, options


def _load_parts(directory: str | os.PathLike, device: str | torch.device) -> dict[str, Any]:
    """Everything a surrogate env needs, read from ``directory``."""
    path = Path(directory)
    meta = read_surrogate_metadata(path)
    model, _ = load_checkpoint(path / _MODEL_FILE, device=device, expected_class=DynamicsModel)
    if type(model).__name__ != meta["model_class"]:
        raise ValueError(
            f"{str(path / _MODEL_FILE)!r} holds a {type(model).__name__}, but "
            f"{str(path / _META_FILE)!r} says 'model_class': {meta['model_class']!r}; the "
            "files come from different surrogates"
        )
    spaces = {}
    for key in ("observation_space", "action_space"):
        try:
            spaces[key] = space_from_dict(meta[key])
        except ValueError as err:
            raise ValueError(f"{str(path / _META_FILE)!r}: {key!r}: {err}") from err
    env_id = meta["env_id"]
    if meta["reward"] == "learned":
        reward_fn, _ = load_checkpoint(
            path / _REWARD_FILE, device=device, expected_class=LearnedReward
        )
    else:
        reward_fn = _known_fns_for(env_id).reward
    if meta["termination"] == "learned":
        term_fn, _ = load_checkpoint(
            path / _TERMINATION_FILE, device=device, expected_class=LearnedTermination
        )
    elif meta["termination"] == "known":
        term_fn = _known_fns_for(env_id).termination
    else:
        term_fn = None
    starts_path = path / _STARTS_FILE
    try:
        starts = torch.load(starts_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise ValueError(f"surrogate start states {str(starts_path)!r} are missing") from err
    except Exception as err:
        raise ValueError(
            f"surrogate start states {str(starts_path)!r} are corrupt ({err})"
        ) from err
    return {
        "meta": meta,
        "model": model,
        **spaces,
        "reward_fn": reward_fn,
        "termination_fn": term_fn,
        "start_states": starts,
    }


def make_surrogate_env(path: str | os.PathLike, **overrides: Any) -> SurrogateEnv:
    """Entry point of ``gymnasium.make("mbrl/Surrogate-v0", path=DIR, **overrides)``.

    ``overrides`` are the keyword arguments of :func:`load_surrogate` (``device``,
    ``max_episode_steps``, ``uncertainty_penalty``, ``clip_observations``).
    """
    return load_surrogate(path, **overrides)
