"""MBPO-style Dyna vs plain SAC on Pendulum-v1 at the same number of real steps (one table).

Runs ``run_mbpo`` with ``algo="mbpo"`` and ``algo="sac"`` (identical SAC settings; MBPO adds the
model, the branched rollouts and ``--utd`` gradient steps per env step) for each seed, evaluating
the deterministic policy every ``--eval-every`` real steps (5 episodes; 10 at the end) on the
same evaluation episodes. Each finished run is stored in ``--out`` and skipped when the script is
run again, so an interrupted table resumes.

    OMP_NUM_THREADS=1 nohup python scripts/mbpo_vs_sac.py --out /tmp/dyna_mbpo > /tmp/dyna_mbpo.log &
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from mbrl.dyna import MBPOConfig, RolloutSchedule, run_mbpo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algos", nargs="+", default=["mbpo", "sac"], choices=["mbpo", "sac"])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--utd", type=int, default=None, help="MBPO gradient steps per env step")
    parser.add_argument("--sac-utd", type=int, default=1, help="plain SAC gradient steps per step")
    parser.add_argument("--net", type=int, nargs="+", default=None, help="SAC hidden layers")
    parser.add_argument("--lr", type=float, default=None, help="SAC learning rate")
    parser.add_argument("--real-ratio", type=float, default=None)
    parser.add_argument("--rollout-length", type=int, nargs=2, default=None, metavar=("MIN", "MAX"))
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--out", default="/tmp/dyna_mbpo", help="per-run results (resumable)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = MBPOConfig(env_id=args.env, total_steps=args.steps, eval_every=args.eval_every)
    changes = {}
    if args.net:
        changes["net_arch"] = tuple(args.net)
    if args.lr:
        changes["learning_rate"] = args.lr
    if args.real_ratio:
        changes["real_ratio"] = args.real_ratio
    if args.rollout_length:
        lo, hi = args.rollout_length
        changes["rollout_schedule"] = RolloutSchedule(lo, hi, base.init_steps, args.steps)
    base = dataclasses.replace(base, **changes)
    runs: dict[str, dict[int, dict]] = {a: {} for a in args.algos}
    for seed in args.seeds:
        for algo in args.algos:
            path = out / f"{algo}_seed{seed}.json"
            if path.exists():
                runs[algo][seed] = json.loads(path.read_text())
                print(f"{algo} seed {seed}: loaded from {path}", flush=True)
                continue
            utd = args.utd if algo == "mbpo" else args.sac_utd
            cfg = dataclasses.replace(base, algo=algo, seed=seed, utd=utd)
            result = run_mbpo(cfg)
            row = {
                "evals": result.evals,
                "final_return": result.final_return,
                "seconds": result.seconds,
                "gradient_steps_per_env_step": cfg.gradient_steps,
                "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
            }
            path.write_text(json.dumps(row, indent=2))
            runs[algo][seed] = row
            print(
                f"{algo} seed {seed}: final {result.final_return:.1f} ({result.seconds:.0f} s)",
                flush=True,
            )
    steps = sorted({e["env_steps"] for a in runs.values() for r in a.values() for e in r["evals"]})
    print(f"\n{args.env}: eval return (deterministic policy) vs real env steps, seeds {args.seeds}")
    header = f"{'real steps':>10} | " + " | ".join(
        f"{a + ' mean +- std':>18} {'per seed':>20}" for a in args.algos
    )
    print(header)
    print("-" * len(header))
    summary: dict[str, dict[int, tuple[float, float]]] = {a: {} for a in args.algos}
    for s in steps:
        cells = []
        for a in args.algos:
            vals = [
                next((e["mean_return"] for e in r["evals"] if e["env_steps"] == s), np.nan)
                for r in runs[a].values()
            ]
            m, sd = float(np.nanmean(vals)), float(np.nanstd(vals))
            summary[a][s] = (m, sd)
            per = ", ".join(f"{v:.0f}" for v in vals)
            cells.append(f"{m:9.1f} +- {sd:5.1f} {per:>20}")
        print(f"{s:>10} | " + " | ".join(cells))
    for a in args.algos:
        secs = [r["seconds"] for r in runs[a].values()]
        print(f"{a}: mean wall time per run {np.mean(secs):.0f} s")
    if "mbpo" in summary and "sac" in summary:
        m_mbpo, m_sac = summary["mbpo"][args.steps][0], summary["sac"][args.steps][0]
        print(
            f"at {args.steps} real steps: MBPO {m_mbpo:.1f} vs SAC {m_sac:.1f} (mean of "
            f"{len(args.seeds)} seeds, 10 episodes each); MBPO >= -250: "
            f"{'PASS' if m_mbpo >= -250 else 'FAIL'}; MBPO ahead of SAC: "
            f"{'PASS' if m_mbpo > m_sac else 'FAIL'}"
        )
    (out / "table.json").write_text(
        json.dumps({a: {str(k): v for k, v in d.items()} for a, d in summary.items()}, indent=2)
    )


if __name__ == "__main__":
    main()
