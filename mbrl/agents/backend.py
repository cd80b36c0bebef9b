"""How a run computes: the rollout backend (measured, not assumed) and the compute dtype
(bfloat16 only on hardware with native bf16).

On a CUDA device :func:`choose_rollout_backend` times every backend of
:mod:`mbrl.rollout.compiled` once at the planner's own shape (population x horizon x action
size, its particles) and switches the planner to the fastest with
:func:`~mbrl.rollout.compiled.compile_planner`; elsewhere, and for planners that are not
:class:`~mbrl.planners.sampling.SamplingPlanner`s, planning stays eager.

:func:`resolve_compute_dtype` keeps ``compute_dtype="bfloat16"`` only where bf16 arithmetic
is native (:func:`detect_native_bf16`: a CPU with AVX512-BF16 or AMX, an aarch64 CPU with the
BF16 extension, a CUDA GPU with bf16 tensor cores, compute capability >= 8.0). Elsewhere bf16
is emulated (about 4x slower than float32 on an AVX2 CPU) and buys nothing, so the run warns
and computes in float32; ``MBRL_FORCE_BF16=1`` in the environment keeps bfloat16 anyway.
"""

from __future__ import annotations

import os
import platform
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mbrl.planners.base import Planner
from mbrl.planners.sampling import SamplingPlanner
from mbrl.rollout.compiled import CompiledRollout, compile_planner, pick_fastest_backend

Measure = Callable[[CompiledRollout, Tensor, Tensor], Mapping[str, float]]
"""``measure(rollout_fn, obs (O,), candidates (N, H, A)) -> {backend: seconds per call}``
(:func:`~mbrl.rollout.compiled.pick_fastest_backend`)."""


@dataclass(frozen=True)
class BackendChoice:
    """The rollout backend in use and why.

    Attributes:
        backend: ``eager``, ``graph`` or ``compile``.
        reason: how it was chosen (measured, forced, or why eager).
        seconds: median seconds per objective call of each backend measured (empty when
            nothing was measured).
    """

    backend: str
    reason: str
    seconds: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON object for ``summary.json``."""
        return {"backend": self.backend, "reason": self.reason, "seconds": dict(self.seconds)}


def _population(planner: SamplingPlanner) -> int:
    """Candidates the planner scores per call (its optimiser's ``population``)."""
    config = getattr(planner.optimizer, "config", None)
    return int(getattr(config, "population", 500))


def choose_rollout_backend(
    planner: Planner,
    requested: str,
    device: torch.device,
    seed: int = 0,
    measure: Measure = pick_fastest_backend,
) -> BackendChoice:
    """Choose the backend ``planner`` scores with and switch it to that backend.

    Args:
        planner: the run's planner (only a :class:`SamplingPlanner` is switched).
        requested: ``auto`` (measure on CUDA, eager elsewhere) or a backend to force.
        device: the run's device.
        seed: seeds the measurement's own generator (the planner's is not drawn from, so a
            measured run plans with the same random numbers as an eager one).
        measure: the timing function (default :func:`pick_fastest_backend`).

    Returns:
        :class:`BackendChoice`.
    """
    if not isinstance(planner, SamplingPlanner):
        return BackendChoice("eager", f"{type(planner).__name__} has no rollout objective")
    if requested != "auto":
        if requested != "eager":
            fast = compile_planner(planner, mode=requested)
            return BackendChoice(fast.backend, fast.fallback_reason or f"forced ({requested})")
        return BackendChoice("eager", "forced (eager)")
    if device.type != "cuda":
        return BackendChoice("eager", f"{device.type} device: eager (nothing measured)")
    low, high = planner.optimizer.low, planner.optimizer.high
    gen = torch.Generator(device=low.device).manual_seed(seed)
    shape = (_population(planner), planner.horizon, low.shape[0])
    candidates = low + (high - low) * torch.rand(shape, generator=gen, device=low.device)
    obs = torch.zeros(planner.model.obs_dim, device=low.device)
    probe = CompiledRollout(
        planner.model,
        planner.reward_fn,
        planner.termination_fn,
        n_particles=planner.n_particles,
        gamma=planner.gamma,
        generator=gen,
        mode="eager",
    )
    try:
        with torch.no_grad():
            seconds = dict(measure(probe, obs, candidates))
    except Exception as err:  # a model that cannot roll out yet (e.g. a GP before any data)
        return BackendChoice("eager", f"measuring failed ({type(err).__name__}: {err}): eager")
    best = min(seconds, key=seconds.__getitem__)
    size = "x".join(map(str, shape))
    if best != "eager":
        fast = compile_planner(planner, mode=best)
        if fast.backend != best:
            return BackendChoice(
                fast.backend, f"{best} measured fastest but {fast.fallback_reason}", seconds
            )
    return BackendChoice(best, f"fastest measured at {size} candidates", seconds)


FORCE_BF16_ENV = "MBRL_FORCE_BF16"
"""Environment variable: ``1`` keeps ``compute_dtype="bfloat16"`` on hardware without native
bf16 (slow; for people measuring exactly that)."""

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
"""``/proc/cpuinfo`` flags of native bf16 arithmetic: x86 AVX512-BF16 and AMX-BF16, and the
aarch64 BF16 extension (its ``Features`` line)."""


@dataclass(frozen=True)
class Bf16Support:
    """Whether a device computes bfloat16 natively.

    Attributes:
        native: True with hardware bf16 arithmetic.
        evidence: what the answer rests on (the CPU flags or GPU found), for messages.
    """

    native: bool
    evidence: str


def _cpu_flags(cpuinfo: Path) -> set[str]:
    """Every flag / feature word of a Linux ``/proc/cpuinfo`` (empty if unreadable)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def detect_native_bf16(
    device: torch.device | str, cpuinfo: Path = Path("/proc/cpuinfo")
) -> Bf16Support:
    """Whether ``device`` has native bf16 arithmetic.

    CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)`` (tensor cores,
    compute capability >= 8.0). CPU: the flags of :data:`CPU_BF16_FLAGS` in ``cpuinfo``
    (Linux); where that file is missing, torch's own AVX512-BF16 / AMX probes (x86). Where
    nothing can tell (e.g. macOS on Apple silicon), bf16 is taken as not native: the safe
    answer is float32, and :data:`FORCE_BF16_ENV` overrides it.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return Bf16Support(False, "CUDA is not available")
        name = torch.cuda.get_device_name(device)
        try:
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.3 has no including_emulation (and does not emulate)
            native = torch.cuda.is_bf16_supported()
        major, minor = torch.cuda.get_device_capability(device)
        return Bf16Support(bool(native), f"{name}, compute capability {major}.{minor}")
    if device.type != "cpu":
        return Bf16Support(False, f"no bf16 probe for {device.type} devices")
    flags = _cpu_flags(cpuinfo)
    if flags:
        found = sorted(set(CPU_BF16_FLAGS) & flags)
        if found:
            return Bf16Support(True, f"CPU flags {', '.join(found)}")
        return Bf16Support(
            False, f"the CPU has none of the flags {', '.join(CPU_BF16_FLAGS)} ({cpuinfo})"
        )
    probes = [
        name
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        if getattr(torch.cpu, name, lambda: False)()
    ]
    if probes:
        return Bf16Support(True, f"torch.cpu.{probes[0]}()")
    return Bf16Support(False, f"no native bf16 found on this {platform.machine() or 'CPU'}")


@dataclass(frozen=True)
class DtypeChoice:
    """The compute dtype in use and why.

    Attributes:
        requested: the ``compute_dtype`` asked for.
        dtype: the one in use (``float32`` or ``bfloat16``).
        reason: why (the hardware evidence, the override, or that float32 was asked for).
    """

    requested: str
    dtype: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """JSON object for ``summary.json``."""
        return {"requested": self.requested, "dtype": self.dtype, "reason": self.reason}


def resolve_compute_dtype(
    requested: str,
    device: torch.device | str,
    detect: Callable[[torch.device], Bf16Support] | None = None,
    environ: Mapping[str, str] | None = None,
) -> DtypeChoice:
    """The compute dtype a run uses for ``requested`` on ``device``.

    ``float32`` stays. ``bfloat16`` stays where ``detect`` (default
    :func:`detect_native_bf16`) finds native bf16, or when
    :data:`FORCE_BF16_ENV` is ``1`` in ``environ`` (default ``os.environ``); otherwise a
    ``RuntimeWarning`` says why and the run computes in ``float32``.

    Raises:
        ValueError: ``requested`` is neither ``float32`` nor ``bfloat16``.
    """
    if requested not in ("float32", "bfloat16"):
        raise ValueError(f"compute_dtype must be 'float32' or 'bfloat16', got {requested!r}")
    if requested == "float32":
        return DtypeChoice(requested, "float32", "requested")
    device = torch.device(device)
    support = (detect or detect_native_bf16)(device)
    if support.native:
        return DtypeChoice(requested, "bfloat16", f"native bf16: {support.evidence}")
    env = os.environ if environ is None else environ
    if env.get(FORCE_BF16_ENV, "").strip() == "1":
        return DtypeChoice(
            requested,
            "bfloat16",
            f"no native bf16 ({support.evidence}); kept because {FORCE_BF16_ENV}=1",
        )
    warnings.warn(
        f"compute_dtype='bfloat16' (--dtype bfloat16) on {device}: no native bf16 "
        f"({support.evidence}), so bf16 would be emulated, several times slower than float32 "
        f"(about 4x on an AVX2 CPU). Computing in float32 instead; set {FORCE_BF16_ENV}=1 to "
        "use bfloat16 anyway.",
        RuntimeWarning,
        stacklevel=2,
    )
    return DtypeChoice(requested, "float32", f"no native bf16 ({support.evidence}): float32")
