"""A Dreamer controller in the env: the exported belief-policy artefact against the Python agent.

    python scripts/belief_policy_eval.py dreamer.pt2 --run results/dreamer/s0 --episodes 10

The artefact (``mbrl export RUN_DIR --what policy`` of an ``mbrl run --model rssm --policy
imagine`` directory) is loaded with the torch-only loader and acts with ``act`` (posterior
mean, the belief kept), each action held for ``action_repeat`` env steps. The Python agent is
the run's :class:`~mbrl.agents.belief.BeliefAgent` with the actor in the planner's place and
no exploration noise, its posterior sampled as in training. Both play the same episodes
(reset seeds ``--first-seed`` + i); prints one line per episode and the means.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable

import numpy as np
import torch

from mbrl.agents.belief import BeliefAgent
from mbrl.agents.env_factory import make_env
from mbrl.envs.observation_wrappers import ActionRepeat
from mbrl.export import load, run_belief_policy
from mbrl.planners.policy import PolicyPlanner
from mbrl.spaces import ActionCodec


def play(
    env: ActionRepeat, act: Callable[[np.ndarray], np.ndarray], reset: Callable[[], None], seed: int
) -> float:
    """One episode with ``act(obs) -> action``; the env return."""
    obs, _ = env.reset(seed=seed)
    reset()
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(np.asarray(act(obs), np.float32))
        total += float(reward)
        done = terminated or truncated
    return total


def main(argv: list[str] | None = None) -> int:
    """Play both controllers, print the returns."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artefact")
    p.add_argument("--run", required=True, help="the run directory it was exported from")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=60_000)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    deployed = load(args.artefact)
    rssm, actor, repeat, source = run_belief_policy(args.run)
    env = ActionRepeat(make_env(source["env_id"]), repeat)
    codec = ActionCodec.from_space(env.action_space)
    agent = BeliefAgent(rssm, PolicyPlanner(actor), codec, torch.Generator().manual_seed(0))
    results: dict[str, list[float]] = {"artefact": [], "python": []}
    for i in range(args.episodes):
        seed = args.first_seed + i
        results["artefact"].append(
            play(env, lambda o: deployed.act(o).numpy(), deployed.reset, seed)
        )
        results["python"].append(play(env, agent.act, agent.reset, seed))
        print(
            f"episode {i} (seed {seed}): artefact {results['artefact'][-1]:8.1f}  python "
            f"{results['python'][-1]:8.1f}",
            flush=True,
        )
    for name, values in results.items():
        print(f"{name}: mean return {statistics.fmean(values):.1f} over {len(values)} episodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
