"""Creating gymnasium envs by id with errors that say what went wrong, and flat observations."""

from __future__ import annotations

import difflib

import gymnasium as gym

from mbrl.spaces import ObservationLayout


def make_env(env_id: str, *, flatten: bool = True, **kwargs) -> gym.Env:
    """``gymnasium.make(env_id)`` with a clear ``ValueError`` for unknown or broken ids.

    ``env_id`` may be ``"module:EnvName-v0"``: gymnasium imports ``module`` first, which is how
    third-party envs register themselves. A ``Dict`` / ``Tuple`` observation space is
    flattened (:class:`~mbrl.envs.observation_wrappers.FlattenDictObservation`; its layout:
    :func:`observation_layout`) unless ``flatten=False``.

    Raises:
        ValueError: unknown id (with close matches), a module that fails to import, or an env
            whose dependencies are missing (e.g. mujoco).
        TypeError: a ``Dict`` / ``Tuple`` observation space holding a sub-space that cannot
            be flattened (the message names it).
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id must be a non-empty string, got {env_id!r}")
    env = _make(env_id, **kwargs)
    from mbrl.envs.observation_wrappers import FlattenDictObservation, needs_flattening

    if flatten and needs_flattening(env.observation_space):
        try:
            return FlattenDictObservation(env)
        except BaseException:
            env.close()
            raise
    return env


def observation_layout(env: gym.Env) -> ObservationLayout | None:
    """The layout of a flattened ``Dict`` / ``Tuple`` observation of ``env`` (through any
    wrappers), or None when ``env`` was not flattened."""
    try:
        layout = env.get_wrapper_attr("observation_layout")
    except AttributeError:
        return None
    return layout if isinstance(layout, ObservationLayout) else None


def _make(env_id: str, **kwargs) -> gym.Env:
    import mbrl.envs  # noqa: F401  (registers mbrl's own envs)

    try:
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as err:
        raise ValueError(f"env {env_id!r} needs a package that is not installed: {err}") from err
    except (
        gym.error.NameNotFound,
        gym.error.VersionNotFound,
        gym.error.NamespaceNotFound,
        gym.error.UnregisteredEnv,
    ) as err:
        close = difflib.get_close_matches(env_id.split(":")[-1], list(gym.registry), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"unknown gymnasium env id {env_id!r}{hint}") from err
    except (ModuleNotFoundError, ImportError) as err:
        raise ValueError(f"env id {env_id!r}: could not import its module ({err})") from err
