"""Creating gymnasium envs by id with errors that say what went wrong."""

from __future__ import annotations

import difflib

import gymnasium as gym


def make_env(env_id: str, **kwargs) -> gym.Env:
    """``gymnasium.make(env_id)`` with a clear ``ValueError`` for unknown or broken ids.

    ``env_id`` may be ``"module:EnvName-v0"``: gymnasium imports ``module`` first, which is how
    third-party envs register themselves.

    Raises:
        ValueError: unknown id (with close matches), a module that fails to import, or an env
            whose dependencies are missing (e.g. mujoco).
    """
    import mbrl.envs  # noqa: F401  (registers mbrl's own envs)

    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id must be a non-empty string, got {env_id!r}")
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
