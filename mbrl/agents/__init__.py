"""Agents and loops: MPC in any gymnasium env, and the model-based learning loop."""

from mbrl.agents.belief import BeliefAgent
from mbrl.agents.env_factory import make_env
from mbrl.agents.episode import EpisodeStats, run_episode
from mbrl.agents.loop import EpisodeRecord, RunConfig, RunResult, run
from mbrl.agents.mpc import MPCAgent
from mbrl.agents.planet_loop import PlanetConfig, PlanetResult, run_planet

__all__ = [
    "BeliefAgent",
    "EpisodeRecord",
    "EpisodeStats",
    "MPCAgent",
    "PlanetConfig",
    "PlanetResult",
    "RunConfig",
    "RunResult",
    "make_env",
    "run",
    "run_episode",
    "run_planet",
]
