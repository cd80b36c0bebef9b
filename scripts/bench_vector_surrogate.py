"""Transitions per second: the batched ``SurrogateVectorEnv`` vs the single ``SurrogateEnv`` in a loop.

Both use the same model (a 5-member Gaussian ensemble with PETS' 4 x 200 layers, or the
``--surrogate`` directory's model) and are timed with gymnasium's own benchmark helpers
(``gymnasium.utils.performance.benchmark_step`` / ``benchmark_vector_step``: random actions from
the action space, resets included).

    OMP_NUM_THREADS=1 python scripts/bench_vector_surrogate.py            # N = 1000
    python scripts/bench_vector_surrogate.py --surrogate DIR --num-envs 1000
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils.performance import benchmark_step, benchmark_vector_step

from mbrl.dyna import SurrogateEnv, SurrogateVectorEnv, load_surrogate
from mbrl.models import DeltaModelConfig, GaussianEnsemble
from mbrl.task_fns import get_task_fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--surrogate", default=None, help="saved surrogate directory (optional)")
    parser.add_argument("--num-envs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each timing")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.surrogate:
        single = load_surrogate(args.surrogate)
    else:
        real = gym.make("Pendulum-v1")
        torch.manual_seed(0)
        model = GaussianEnsemble(3, 1, DeltaModelConfig())
        starts = torch.as_tensor(
            np.random.default_rng(0).uniform(-1, 1, (1000, 3)), dtype=torch.float32
        )
        fns = get_task_fns("Pendulum-v1")
        single = SurrogateEnv(
            model,
            real.observation_space,
            real.action_space,
            fns.reward,
            None,
            starts,
            max_episode_steps=200,
        )
    vector = SurrogateVectorEnv.from_env(single, args.num_envs)
    cfg = single.model.config
    what = (
        f"{type(single.model).__name__} {cfg.ensemble_size} x {cfg.num_layers} x "
        f"{cfg.hidden_size}, obs {single.core.obs_dim}, action {single.core.codec.dim}"
    )
    single_sps = benchmark_step(single, target_duration=int(args.seconds), seed=0)
    vector_sps = benchmark_vector_step(vector, target_duration=int(args.seconds), seed=0)
    ratio = vector_sps / single_sps
    print(f"model: {what}")
    print(f"SurrogateEnv (Python loop)        : {single_sps:12,.0f} transitions/s")
    print(f"SurrogateVectorEnv (N = {args.num_envs:5d})   : {vector_sps:12,.0f} transitions/s")
    print(f"speed-up: {ratio:.1f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "model": what,
                    "single": single_sps,
                    "vector": vector_sps,
                    "ratio": ratio,
                    "num_envs": args.num_envs,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
