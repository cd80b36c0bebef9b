"""Agents and loops: MPC in any gymnasium env, and the model-based learning loop.

:func:`build_run` sets a run up from a :class:`RunConfig` (used by :func:`run`, the PlaNet
loop and the benchmark suite's validation); :class:`RunWriter` writes every run's files.
"""

from mbrl.agents.belief import BeliefAgent
from mbrl.agents.config import RunConfig
from mbrl.agents.env_factory import make_env
from mbrl.agents.episode import EpisodeStats, run_episode
from mbrl.agents.loop import EpisodeRecord, RunResult, resume, run, saved_run_config
from mbrl.agents.mpc import MPCAgent
from mbrl.agents.planet_loop import PlanetConfig, PlanetResult, run_planet
from mbrl.agents.setup import RunSetup, build_run, run_model_names
from mbrl.agents.writer import RunOutputError, RunWriter

__all__ = [
    "BeliefAgent",
    "EpisodeRecord",
    "EpisodeStats",
    "MPCAgent",
    "PlanetConfig",
    "PlanetResult",
    "RunConfig",
    "RunOutputError",
    "RunResult",
    "RunSetup",
    "RunWriter",
    "build_run",
    "make_env",
    "resume",
    "run",
    "run_episode",
    "run_model_names",
    "run_planet",
    "saved_run_config",
]
