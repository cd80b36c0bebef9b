"""Prove and time the CUDA path in a few minutes: ``scripts/gpu_check.sh`` / ``python -m
mbrl.bench.gpu``.

Sections, each printed and written to ``--json`` as it finishes:

1. ``environment``: torch, the device, native bf16 (:func:`~mbrl.agents.backend.
   detect_native_bf16`).
2. ``rollout``: model-steps/s of the rollout engine next to a bare batched forward pass of
   the same ensemble at the PETS shape (:func:`mbrl.bench.speed.model_rollout_speed`), float32
   and, where bf16 is native, bfloat16.
3. ``graphs``: the same rollout replayed as a CUDA graph vs eager (interleaved medians), which
   backend really ran, and graph returns equal to eager ones on a deterministic model (the
   known Pendulum).
4. ``cem``: CEM latency per action at mbrl-lib's PETS shape (population 350, horizon 15,
   20 particles, 5 iterations, ensemble 5 x 4 x 200), eager and through CUDA graphs, and
   under a ``plan_budget_ms`` of half the eager latency (the deadline is honoured on the
   device: calls stop early; median / p99).
5. ``run``: a short ``mbrl run --device cuda`` (Pendulum-v1, one random and one MPC episode of
   50 steps) in a subprocess: exit code, wall time, the device and rollout backend of its
   ``summary.json``.

Every check is listed with ``ok`` and the script exits 1 if one fails (2 without CUDA).
``--dry`` runs the same code on the CPU at tiny shapes in seconds (CI): the graph checks
report the eager fallback instead of failing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from mbrl.agents.backend import detect_native_bf16
from mbrl.bench.speed import (
    MBRL_LIB_SHAPE,
    PETS_SHAPE,
    SpeedShape,
    make_model,
    model_rollout_speed,
    quadratic_reward,
)
from mbrl.bench.timing import interleaved_medians
from mbrl.models.known.pendulum import KnownPendulum
from mbrl.planners.cem import CEMConfig, CEMOptimizer
from mbrl.planners.sampling import SamplingPlanner
from mbrl.rollout import rollout
from mbrl.rollout.compiled import CompiledRollout, compile_planner
from mbrl.task_fns.classic import pendulum_reward


@dataclass(frozen=True)
class CheckPlan:
    """Shapes and sizes of one check.

    Attributes:
        rollout: the rollout-throughput and graph shape (PETS: 500 x 30, 20 particles).
        cem: the CEM latency shape (mbrl-lib's PETS: 350 x 15, 20 particles).
        cem_iterations: CEM iterations per plan (5).
        repeats: timed repeats per figure.
        run_args: the ``mbrl run`` flags (``--device`` and ``--out`` are added).
        run_timeout_s: the run is killed (and the check fails) after this long.
        threads: CPU threads for torch here and in the run (None: torch's default). The dry
            run uses 1: tiny ops on a shared CPU are many times slower with 2 threads than 1.
    """

    rollout: SpeedShape
    cem: SpeedShape
    cem_iterations: int = 5
    repeats: int = 5
    run_args: tuple[str, ...] = ()
    run_timeout_s: float = 200.0
    threads: int | None = None


FULL = CheckPlan(
    rollout=PETS_SHAPE,
    cem=MBRL_LIB_SHAPE,
    run_args=(
        "--env", "Pendulum-v1", "--seed-episodes", "1", "--episodes", "1",
        "--max-episode-steps", "50", "--fit-opt", "max_steps=300", "--quiet",
    ),
)  # fmt: skip
"""What a GPU run checks (well under 5 minutes on a datacentre GPU)."""

_TINY_NET = {"ensemble_size": 2, "hidden_size": 16, "num_layers": 2}
DRY = CheckPlan(
    rollout=SpeedShape("dry", candidates=16, horizon=4, particles=2, **_TINY_NET),
    cem=SpeedShape("dry cem", candidates=16, horizon=4, particles=2, **_TINY_NET),
    cem_iterations=5,
    repeats=2,
    run_args=(
        "--env", "Pendulum-v1", "--seed-episodes", "1", "--episodes", "1",
        "--max-episode-steps", "20", "--horizon", "3", "--particles", "1",
        "--planner-opt", "population=8", "--planner-opt", "iterations=1",
        "--model-opt", "ensemble_size=2", "--model-opt", "hidden_size=16",
        "--model-opt", "num_layers=2", "--fit-opt", "max_steps=5", "--fit-opt", "eval_every=5",
        "--no-preset", "--quiet",
    ),
    run_timeout_s=120.0,
    threads=1,
)  # fmt: skip
"""The CI dry run: the same code on the CPU, tiny shapes, seconds."""


@dataclass
class Report:
    """The sections so far and the checks; written to ``path`` after every section."""

    mode: str
    device: str
    path: Path | None = None
    sections: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)

    def check(self, name: str, ok: bool | None, detail: str) -> None:
        """Record a check: ``ok`` True / False, or None for one skipped in this mode."""
        self.checks.append({"check": name, "ok": ok, "detail": detail})
        mark = {True: "PASS", False: "FAIL", None: "skip"}[ok]
        print(f"  [{mark}] {name}: {detail}", flush=True)
        self.write()

    def add(self, name: str, data: Any) -> None:
        """Store section ``name`` and rewrite the JSON file."""
        self.sections[name] = data
        self.write()

    @property
    def failed(self) -> list[str]:
        """Names of the failed checks."""
        return [c["check"] for c in self.checks if c["ok"] is False]

    def to_json(self) -> dict[str, Any]:
        """The whole report as a JSON object."""
        return {
            "mode": self.mode,
            "device": self.device,
            "seconds": time.perf_counter() - self.start,
            **self.sections,
            "checks": self.checks,
            "ok": not self.failed,
        }

    def write(self) -> None:
        """Write :meth:`to_json` to ``path`` (if any)."""
        if self.path is not None:
            self.path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def check_environment(report: Report, device: torch.device) -> bool:
    """Section ``environment``; returns whether bf16 is native on ``device``."""
    support = detect_native_bf16(device)
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "native_bf16": support.native,
        "bf16_evidence": support.evidence,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env |= {
            "gpu": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
        }
    print(f"environment: {json.dumps(env)}", flush=True)
    report.add("environment", env)
    return support.native


@torch.no_grad()
def check_rollout(report: Report, plan: CheckPlan, device: torch.device, bf16: bool) -> None:
    """Section ``rollout``: engine vs bare forward, float32 (and bfloat16 where native)."""
    rows = []
    for dtype in [torch.float32] + ([torch.bfloat16] if bf16 else []):
        speed = model_rollout_speed("ensemble", plan.rollout, device, dtype, plan.repeats)
        row = {
            "shape": plan.rollout.name,
            "dtype": str(dtype).removeprefix("torch."),
            "engine_Msteps_s": speed.engine_steps_per_s / 1e6,
            "bare_Msteps_s": speed.forward_steps_per_s / 1e6,
            "ratio": speed.ratio,
        }
        rows.append(row)
        print(
            f"rollout {row['dtype']:8s} engine {row['engine_Msteps_s']:.4g} M steps/s, bare "
            f"forward {row['bare_Msteps_s']:.4g} M steps/s, ratio {row['ratio']:.2f}",
            flush=True,
        )
    report.add("rollout", rows)
    report.check(
        "rollout throughput measured",
        all(_finite(r["engine_Msteps_s"], r["bare_Msteps_s"]) for r in rows),
        ", ".join(f"{r['dtype']} ratio {r['ratio']:.2f}" for r in rows),
    )


def _candidates(shape: SpeedShape, device: torch.device, low: float, high: float) -> torch.Tensor:
    gen = torch.Generator(device=device).manual_seed(1)
    u = torch.rand(shape.candidates, shape.horizon, shape.action_dim, generator=gen, device=device)
    return low + (high - low) * u


@torch.no_grad()
def check_graphs(report: Report, plan: CheckPlan, device: torch.device) -> None:
    """Section ``graphs``: CUDA graph vs eager rollout speed, the backend used, and equality on
    a deterministic model."""
    shape = plan.rollout
    model = make_model(shape, device, torch.float32)
    gen = torch.Generator(device=device).manual_seed(0)
    obs = torch.randn(shape.obs_dim, generator=gen, device=device)
    actions = _candidates(shape, device, -1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CPU fallback warns; it is reported below
        fast = CompiledRollout(
            model, quadratic_reward, n_particles=shape.particles, generator=gen, mode="graph"
        )
        fast(obs, actions)  # capture outside the timed region

    def eager() -> object:
        return rollout(
            model,
            obs,
            actions,
            quadratic_reward,
            n_particles=shape.particles,
            generator=gen,
            validate=False,
        )

    med = interleaved_medians(
        {"eager": eager, "graph": lambda: fast(obs, actions)}, plan.repeats, device
    )
    steps = shape.rows * shape.horizon
    # A deterministic model: the replayed graph must give the eager numbers.
    pendulum = KnownPendulum().to(device)
    start = torch.tensor([-1.0, 0.0, 0.5], device=device)
    swing = _candidates(replace(shape, obs_dim=3, action_dim=1), device, -2.0, 2.0)
    exact = rollout(pendulum, start, swing, pendulum_reward).returns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        replay = CompiledRollout(pendulum, pendulum_reward, mode="graph")
        replay(start, swing)
        replayed = replay(start, swing)
    error = float((replayed - exact).abs().max() / exact.abs().max().clamp_min(1e-12))
    data = {
        "shape": shape.name,
        "backend": fast.backend,
        "fallback_reason": fast.fallback_reason,
        "eager_ms": 1e3 * med["eager"],
        "graph_ms": 1e3 * med["graph"],
        "speedup": med["eager"] / med["graph"],
        "eager_Msteps_s": steps / med["eager"] / 1e6,
        "graph_Msteps_s": steps / med["graph"] / 1e6,
        "captures": fast.captures,
        "deterministic_max_rel_error": error,
    }
    print(
        f"graphs: backend {fast.backend}, eager {data['eager_ms']:.2f} ms, graph "
        f"{data['graph_ms']:.2f} ms per rollout: {data['speedup']:.2f}x"
        + (f" ({fast.fallback_reason})" if fast.fallback_reason else ""),
        flush=True,
    )
    report.add("graphs", data)
    cuda = device.type == "cuda"
    report.check(
        "CUDA graph backend in use",
        (fast.backend == "graph" and replay.backend == "graph") if cuda else None,
        f"backend {fast.backend}" + (f": {fast.fallback_reason}" if fast.fallback_reason else ""),
    )
    report.check(
        "graph returns equal eager (known Pendulum)",
        error < 1e-4,
        f"max relative difference {error:.2e}",
    )


def _cem(shape: SpeedShape, device: torch.device, iterations: int, budget_ms: float | None = None):
    model = make_model(shape, device, torch.float32)
    gen = torch.Generator(device=device).manual_seed(0)
    low = -torch.ones(shape.action_dim, device=device)
    cfg = CEMConfig(population=shape.candidates, iterations=iterations, plan_budget_ms=budget_ms)
    return SamplingPlanner(
        model,
        quadratic_reward,
        None,
        CEMOptimizer(cfg, low, -low, gen),
        shape.horizon,
        n_particles=shape.particles,
        generator=gen,
    )


@torch.no_grad()
def check_cem(report: Report, plan: CheckPlan, device: torch.device) -> None:
    """Section ``cem``: ms per action eager, with CUDA graphs, and under a budget."""
    shape, iters = plan.cem, plan.cem_iterations
    eager = _cem(shape, device, iters)
    graphed = _cem(shape, device, iters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = compile_planner(graphed, mode="graph")
    obs = torch.randn(shape.obs_dim, device=device)
    med = interleaved_medians(
        {"eager": lambda: eager.plan(obs), "graph": lambda: graphed.plan(obs)}, plan.repeats, device
    )
    budget = 0.5 * 1e3 * med["eager"]
    budgeted = _cem(shape, device, iters, budget_ms=budget)
    budgeted.plan(obs)  # warm-up
    budgeted.plan_stats.clear()
    for _ in range(max(4, 2 * plan.repeats)):
        budgeted.plan(obs)
    stats = budgeted.plan_stats.summary()
    data = {
        "shape": f"{shape.name}: population {shape.candidates}, H {shape.horizon}, "
        f"{shape.particles} particles, {iters} iterations, ensemble "
        f"{shape.ensemble_size}x{shape.num_layers}x{shape.hidden_size}",
        "eager_ms_per_action": 1e3 * med["eager"],
        "graph_ms_per_action": 1e3 * med["graph"],
        "graph_backend": fast.backend,
        "budget_ms": budget,
        "budgeted": stats,
        "budgeted_iterations": [r.work for r in budgeted.plan_stats.records],
    }
    print(
        f"cem: eager {data['eager_ms_per_action']:.1f} ms/action, graph "
        f"{data['graph_ms_per_action']:.1f} ms/action (backend {fast.backend}); budget "
        f"{budget:.1f} ms: median {stats['plan_ms_median']:.1f}, p99 {stats['plan_ms_p99']:.1f} "
        f"ms, {stats['stopped_early']}/{stats['plan_calls']} stopped early",
        flush=True,
    )
    report.add("cem", data)
    report.check(
        "CEM latency measured",
        _finite(data["eager_ms_per_action"], data["graph_ms_per_action"]),
        f"{data['eager_ms_per_action']:.1f} ms eager, {data['graph_ms_per_action']:.1f} ms graph",
    )
    report.check(
        "plan budget stops CEM early on the device",
        stats["stopped_early"] >= 1,
        f"{stats['stopped_early']} of {stats['plan_calls']} calls under {budget:.1f} ms stopped "
        f"early, iterations {data['budgeted_iterations']}",
    )


Runner = Callable[..., subprocess.CompletedProcess]


def check_run(
    report: Report, plan: CheckPlan, device: torch.device, runner: Runner = subprocess.run
) -> None:
    """Section ``run``: a short ``mbrl run --device DEVICE`` in a subprocess."""
    with tempfile.TemporaryDirectory(prefix="mbrl-gpu-check-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "mbrl.cli", "run", *plan.run_args]
        cmd += ["--device", str(device), "--out", str(out)]
        env = dict(os.environ)
        if plan.threads is not None:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(plan.threads)
        start = time.perf_counter()
        try:
            proc = runner(cmd, capture_output=True, text=True, timeout=plan.run_timeout_s, env=env)
            rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
        except subprocess.TimeoutExpired:
            rc, tail = None, f"killed after {plan.run_timeout_s:.0f} s"
        wall = time.perf_counter() - start
        summary_path = out / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    episodes = summary.get("episodes", [])
    data = {
        "command": " ".join(cmd[1:]),
        "returncode": rc,
        "wall_s": wall,
        "device": summary.get("device"),
        "rollout_backend": summary.get("rollout_backend"),
        "episodes": episodes,
        "output_tail": tail if rc != 0 else "",
    }
    print(f"run: rc {rc} in {wall:.1f} s, device {data['device']}, backend "
          f"{(data['rollout_backend'] or {}).get('backend')}", flush=True)  # fmt: skip
    report.add("run", data)
    report.check(
        f"mbrl run --device {device}",
        rc == 0 and str(data["device"]).startswith(device.type),
        f"exit {rc}, {wall:.1f} s, {len(episodes)} episodes"
        + (f"; {tail.strip().splitlines()[-1] if tail.strip() else ''}" if rc != 0 else ""),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the checks; exit status 0 (all passed), 1 (a check failed), 2 (no CUDA device)."""
    parser = argparse.ArgumentParser(
        prog="python -m mbrl.bench.gpu",
        description="Prove and time the CUDA path (rollout vs bare forward, CUDA graphs vs "
        "eager, CEM latency at the PETS shape, a short mbrl run). --dry: tiny shapes on the "
        "CPU in seconds, for CI.",
    )
    parser.add_argument("--dry", action="store_true", help="tiny shapes on the CPU (CI)")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --dry")
    parser.add_argument("--json", default=None, help="write the report to this JSON file")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per figure")
    parser.add_argument(
        "--skip-run", action="store_true", help="skip the mbrl run subprocess section"
    )
    args = parser.parse_args(argv)
    plan = DRY if args.dry else FULL
    if args.repeats is not None:
        if args.repeats < 1:
            parser.error(f"--repeats must be >= 1, got {args.repeats}")
        plan = replace(plan, repeats=args.repeats)
    device = torch.device(args.device or ("cpu" if args.dry else "cuda"))
    if plan.threads is not None:
        torch.set_num_threads(plan.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); use --dry "
              "for the CPU dry run", file=sys.stderr)  # fmt: skip
        return 2
    report = Report(
        "dry" if args.dry else "gpu", str(device), Path(args.json) if args.json else None
    )
    print(f"gpu_check ({report.mode}) on {device}", flush=True)
    bf16 = check_environment(report, device)
    check_rollout(report, plan, device, bf16)
    check_graphs(report, plan, device)
    check_cem(report, plan, device)
    if not args.skip_run:
        check_run(report, plan, device)
    report.write()
    seconds = time.perf_counter() - report.start
    verdict = "all checks passed" if not report.failed else f"FAILED: {report.failed}"
    print(f"gpu_check: {verdict} in {seconds:.1f} s", flush=True)
    return 0 if not report.failed else 1


if __name__ == "__main__":
    sys.exit(main())
