"""Surrogate environments: a learned dynamics model as a ``gymnasium.Env``.

A :class:`SurrogateEnv` steps a :class:`~mbrl.models.base.DynamicsModel` instead of a simulator:
``next_obs = model.step(obs, action)``, the reward and termination come from task functions with
the signature ``fn(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)`` (known ones from
:mod:`mbrl.task_fns`, or :class:`~mbrl.models.LearnedReward` /
:class:`~mbrl.models.LearnedTermination`), and episodes start from states drawn from a buffer.
It has the real env's observation and action spaces, so any model-free learner that trains on
the real env trains on the surrogate unchanged (the seeds' "Dyna-style" recipe).

Behaviour shared by :class:`SurrogateEnv` and
:class:`~mbrl.dyna.surrogate.vector_env.SurrogateVectorEnv` (both built on :class:`SurrogateCore`):

- **Ensembles:** every step uses a random ensemble member per row (MBPO). A single row through
  a :class:`~mbrl.models.delta_model.DeltaModel` gets a random member from the model itself;
  the vector env permutes its rows before each step so each copy gets a random member.
- **Observations** are clipped to the observation space's bounds (a model can drift outside
  them, e.g. ``|thdot| > 8`` on Pendulum) and cast to the space's dtype (float32 for nearly all
  envs). For observation-space models (the model state *is* the observation) the clipped
  observation is also the state the next step starts from.
- **Reward** is the reward function's value on the (clipped) transition minus
  ``uncertainty_penalty * model.member_disagreement(obs, action)`` (MOPO's penalty; needs an
  ensemble).
- **Termination** comes from the termination function (``None``: never); **truncation** after
  ``max_episode_steps`` steps (``None``: never). If the model produces NaN/inf, the episode
  terminates, the last finite observation is returned and ``info["model_diverged"]`` is True.
- **Actions** outside the action space raise ``ValueError`` naming the action and the bounds
  (a tolerance of ``ACTION_TOLERANCE`` absorbs float round-off; such actions are clipped).
- **Seeding:** ``reset(seed=s)`` seeds the env's own ``torch.Generator`` (start states, ensemble
  members, model noise) and ``np_random``; the same seed and actions give the same episode.

Saved surrogates (:func:`save_surrogate` / :func:`load_surrogate`) are directories that
``gymnasium.make("mbrl/Surrogate-v0", path=DIR)`` opens after ``import mbrl`` (or, without
importing mbrl first, ``gymnasium.make("mbrl.dyna:mbrl/Surrogate-v0", path=DIR)``).

Modules: :mod:`~mbrl.dyna.surrogate.core` (the batched transition),
:mod:`~mbrl.dyna.surrogate.env` (single env), :mod:`~mbrl.dyna.surrogate.vector_env` (``N``
copies as one tensor call), :mod:`~mbrl.dyna.surrogate.io` (save / load).
"""

from mbrl.dyna.surrogate.core import ACTION_TOLERANCE, SurrogateCore
from mbrl.dyna.surrogate.env import SurrogateEnv, SurrogateHandle
from mbrl.dyna.surrogate.io import (
    load_surrogate,
    make_surrogate_env,
    read_surrogate_metadata,
    save_surrogate,
    space_from_dict,
    space_to_dict,
)
from mbrl.dyna.surrogate.vector_env import (
    SurrogateVectorEnv,
    load_surrogate_vector,
    make_surrogate_vector_env,
)

__all__ = [
    "ACTION_TOLERANCE",
    "SurrogateCore",
    "SurrogateEnv",
    "SurrogateHandle",
    "SurrogateVectorEnv",
    "load_surrogate",
    "load_surrogate_vector",
    "make_surrogate_env",
    "make_surrogate_vector_env",
    "read_surrogate_metadata",
    "save_surrogate",
    "space_from_dict",
    "space_to_dict",
]
