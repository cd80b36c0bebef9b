"""Load and run an exported mbrl policy or planner with nothing but torch.

This file imports only torch and the standard library: copy it next to the artefact on the
control system's machine (``pip install torch``, no mbrl) and::

    import loader
    policy = loader.load("awake_policy.pt2")          # DeployedPolicy
    action = policy(obs)                              # obs (O,) -> action (A,)

    planner = loader.load("awake_planner.pt2")        # DeployedPlanner
    planner.reset()                                   # at the start of an episode
    action = planner.act(obs)                         # first planned action, warm start kept
    plan = planner.plan(obs_batch)                    # (B, O) -> (B, H, A), stateless

    belief = loader.load("pendulum_dreamer.pt2")      # DeployedBeliefPolicy (an RSSM filter
    belief.reset()                                    # and the actor on its belief)
    action = belief.act(obs)                          # hold for spec["belief"]["action_repeat"]

An artefact is a ``torch.export`` program (``.pt2`` archive) with two extra members: its spec
(``mbrl_spec.json``: inputs, outputs, shapes, units, action bounds, settings, provenance) and
a SHA-256 of every other member (``mbrl_sha256``). :func:`load` checks, before torch reads the
program, that the digest matches (a damaged or edited file is refused) and that no weight,
constant or sample input is a pickled object (``torch.export.load`` would unpickle those
with full, code-running unpickling); the program's graph is data, not code. Inputs are checked on
every call (shape, finite values) and raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

FORMAT = "mbrl-export"
VERSION = 1
SPEC_FILE = "mbrl_spec.json"
DIGEST_FILE = "mbrl_sha256"
_SAFE_PREFIXES = ("weight_", "tensor_")


def archive_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of every member of the archive at ``path`` but the digest itself:
    names and bytes, in name order."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            if name.rsplit("/", 1)[-1] == DIGEST_FILE:
                continue
            digest.update(name.encode() + b"\0")
            digest.update(archive.read(name))
    return digest.hexdigest()


def _check_archive(path: Path) -> None:
    """Digest and no-pickle checks (see the module docstring); raises ValueError."""
    if not path.is_file():
        raise ValueError(f"artefact {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{str(path)!r} is not an exported mbrl artefact (not a .pt2 archive)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        stored = [n for n in names if n.rsplit("/", 1)[-1] == DIGEST_FILE]
        if len(stored) != 1 or not any(n.endswith("/extra/" + SPEC_FILE) for n in names):
            raise ValueError(
                f"{str(path)!r} is not an exported mbrl artefact (no {SPEC_FILE} / {DIGEST_FILE})"
            )
        expected = archive.read(stored[0]).decode().strip()
        for name in names:
            if name.endswith("_config.json") and "/data/" in name:
                entries = json.loads(archive.read(name)).get("config", {})
                for key, meta in entries.items():
                    if meta.get("use_pickle") or not str(meta.get("path_name", "")).startswith(
                        _SAFE_PREFIXES
                    ):
                        raise ValueError(
                            f"artefact {str(path)!r} holds a pickled object ({key!r}); refused "
                            "without loading it (mbrl artefacts hold tensors only)"
                        )
            if "/data/sample_inputs/" in name:
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception as err:
                    raise ValueError(
                        f"artefact {str(path)!r}: sample inputs are not plain tensors; refused "
                        f"({err})"
                    ) from err
    if archive_digest(path) != expected:
        raise ValueError(
            f"artefact {str(path)!r} fails its SHA-256 check: it was modified or damaged after "
            "it was exported"
        )


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """The spec of the artefact at ``path`` (after the checks of :func:`load`), without
    loading the program."""
    path = Path(path)
    _check_archive(path)
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/extra/" + SPEC_FILE))
        spec = json.loads(archive.read(name))
    if spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise ValueError(
            f"{str(path)!r} has format {spec.get('format')!r} version {spec.get('version')!r}; "
            f"this loader reads {FORMAT!r} version {VERSION}"
        )
    return spec


class _Deployed:
    """What both artefact kinds share: the spec, the program, input checks."""

    def __init__(self, program: Any, spec: dict[str, Any], device: torch.device) -> None:
        self.program = program
        self.spec = spec
        self.device = device
        self.obs_dim = int(spec["obs_dim"])
        self.action_dim = int(spec["action_dim"])
        self.max_batch = int(spec["max_batch"])
        self.low = torch.tensor(spec["action_low"], dtype=torch.float32, device=device)
        self.high = torch.tensor(spec["action_high"], dtype=torch.float32, device=device)

    def _obs(self, obs: Any) -> tuple[torch.Tensor, bool]:
        """``obs (O,)`` or ``(B, O)`` as float32 ``(B, O)`` on the device, and whether it was
        one observation."""
        try:
            x = torch.as_tensor(obs, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"obs must be numbers of shape ({self.obs_dim},) or (B, {self.obs_dim}), got "
                f"{type(obs).__name__}"
            ) from err
        given = tuple(x.shape)
        single = x.ndim == 1
        x = x.unsqueeze(0) if single else x
        if x.ndim != 2 or x.shape[1] != self.obs_dim or not 1 <= x.shape[0] <= self.max_batch:
            raise ValueError(
                f"obs must have shape ({self.obs_dim},) or (B, {self.obs_dim}) with "
                f"1 <= B <= {self.max_batch}, got {given}"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError("obs contains NaN or inf")
        return x.to(self.device), single


class DeployedPolicy(_Deployed):
    """``policy(obs (O,) | (B, O)) -> action (A,) | (B, A)`` float32 in the action bounds
    (one-hot rows for a Discrete space; ``spec["discrete"]``)."""

    def __call__(self, obs: Any) -> torch.Tensor:
        """The policy's action for ``obs`` (see the class docstring)."""
        x, single = self._obs(obs)
        with torch.inference_mode():
            action = self.program(x)
        return action[0] if single else action


class DeployedPlanner(_Deployed):
    """A fixed-work CEM planner: ``plan(obs, initial=None)`` (stateless) and ``act(obs)``
    (an MPC step with the warm start kept: the last plan shifted by one step, padded with the
    middle of the action box, as the Python planner's ``advance(1)``)."""

    def __init__(self, program: Any, spec: dict[str, Any], device: torch.device) -> None:
        super().__init__(program, spec, device)
        self.horizon = int(spec["planner"]["horizon"])
        self.middle = (self.low + self.high) / 2
        self._previous: torch.Tensor | None = None

    def plan(self, obs: Any, initial: Any = None) -> torch.Tensor:
        """Plan from ``obs (O,) | (B, O)``: ``(H, A) | (B, H, A)`` encoded actions.

        Args:
            obs: observation(s).
            initial: warm start ``(H, A) | (B, H, A)`` (default: the middle of the box).
        """
        x, single = self._obs(obs)
        rows, shape = x.shape[0], (x.shape[0], self.horizon, self.action_dim)
        if initial is None:
            start = self.middle.expand(shape).clone()
        else:
            start = torch.as_tensor(initial, dtype=torch.float32, device=self.device)
            start = start.unsqueeze(0) if start.ndim == 2 else start
            if tuple(start.shape) != shape:
                raise ValueError(
                    f"initial must have shape {shape[1:]} or {shape} for {rows} observation(s), "
                    f"got {tuple(start.shape)}"
                )
            if not bool(torch.isfinite(start).all()):
                raise ValueError("initial contains NaN or inf")
        with torch.inference_mode():
            out = self.program(x, start)
        return out[0] if single else out

    def reset(self) -> None:
        """Forget the warm start (call at the start of an episode)."""
        self._previous = None

    def act(self, obs: Any) -> torch.Tensor:
        """Plan from one ``obs (O,)`` warm-started from the last plan; the first action ``(A,)``."""
        warm = None
        if self._previous is not None:
            tail = self.middle.expand(1, self.action_dim)
            warm = torch.cat([self._previous[1:], tail])
        plan = self.plan(obs, warm)
        if plan.ndim != 2:
            raise ValueError("act takes one observation (O,); use plan() for a batch")
        self._previous = plan
        return plan[0]


class DeployedBeliefPolicy(_Deployed):
    """A policy that acts on a filtered belief (an RSSM posterior and an actor): ``act(obs)``
    updates the belief it keeps with ``obs`` and the action it returned last, and returns the
    next action ``(A,)``, to be held for ``spec["belief"]["action_repeat"]`` env steps;
    ``reset()`` at every episode start. ``step(obs, h, z, last_action)`` is the stateless
    batched call ``(B, ...) -> (action, h, z)``."""

    def __init__(self, program: Any, spec: dict[str, Any], device: torch.device) -> None:
        super().__init__(program, spec, device)
        self.deter_size = int(spec["belief"]["deter_size"])
        self.stoch_size = int(spec["belief"]["stoch_size"])
        self.action_repeat = int(spec["belief"]["action_repeat"])
        self.reset()

    def reset(self) -> None:
        """Zero belief and last action: the start of an episode."""
        self.h = torch.zeros(1, self.deter_size, device=self.device)
        self.z = torch.zeros(1, self.stoch_size, device=self.device)
        self.last_action = torch.zeros(1, self.action_dim, device=self.device)

    def _state(self, value: Any, name: str, rows: int, size: int) -> torch.Tensor:
        x = torch.as_tensor(value, dtype=torch.float32, device=self.device)
        if tuple(x.shape) != (rows, size):
            raise ValueError(f"{name} must have shape ({rows}, {size}), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or inf")
        return x

    def step(
        self, obs: Any, h: Any, z: Any, last_action: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stateless: ``obs (B, O)``, ``h (B, D)``, ``z (B, S)``, ``last_action (B, A)`` ->
        ``(action (B, A), h (B, D), z (B, S))``."""
        x, single = self._obs(obs)
        if single:
            raise ValueError("step takes a batch: obs (B, O); act() takes one observation")
        rows = x.shape[0]
        h = self._state(h, "h", rows, self.deter_size)
        z = self._state(z, "z", rows, self.stoch_size)
        last = self._state(last_action, "last_action", rows, self.action_dim)
        with torch.inference_mode():
            return self.program(x, h, z, last)

    def act(self, obs: Any) -> torch.Tensor:
        """The action ``(A,)`` for one observation ``obs (O,)``, the belief kept."""
        x, single = self._obs(obs)
        if not single:
            raise ValueError("act takes one observation (O,); use step() for a batch")
        with torch.inference_mode():
            action, self.h, self.z = self.program(x, self.h, self.z, self.last_action)
        self.last_action = action
        return action[0]


def time_calls(
    call: Callable[[], Any],
    calls: int = 1000,
    warmup: int = 20,
    device: str | torch.device = "cpu",
    clock: str = "wall",
) -> dict[str, float]:
    """Time per call of ``call()`` over ``calls`` calls after ``warmup`` untimed ones: a dict
    of ``median_ms``, ``p99_ms``, ``mean_ms``, ``max_ms`` (quantiles linearly interpolated).

    ``clock="wall"`` (default) is the elapsed time, what a control loop waits; on a CUDA
    ``device`` every timed call ends with a synchronisation. ``clock="cpu"`` is this
    process's CPU time (all its threads): on a machine shared with other work it estimates
    the wall time of an idle machine for a one-thread call, where wall time mostly measures
    the other processes (CPU devices only).
    """
    if calls < 1 or warmup < 0:
        raise ValueError(f"calls must be >= 1 and warmup >= 0, got {calls} and {warmup}")
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    cuda = torch.device(device).type == "cuda"
    if cuda and clock == "cpu":
        raise ValueError("clock='cpu' times CPU work; use clock='wall' on a CUDA device")
    now = time.perf_counter if clock == "wall" else time.process_time
    for _ in range(warmup):
        call()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(calls):
        start = now()
        call()
        if cuda:
            torch.cuda.synchronize()
        times.append((now() - start) * 1e3)
    ms = torch.tensor(times, dtype=torch.float64)
    return {
        "median_ms": float(ms.quantile(0.5)),
        "p99_ms": float(ms.quantile(0.99)),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
    }


def load(
    path: str | os.PathLike, device: str | torch.device | None = None
) -> DeployedPolicy | DeployedPlanner | DeployedBeliefPolicy:
    """Load the artefact at ``path``: a :class:`DeployedPolicy`, :class:`DeployedPlanner` or
    :class:`DeployedBeliefPolicy`.

    Args:
        path: the ``.pt2`` file written by ``mbrl export``.
        device: where to run it (default: where it was exported, ``spec["device"]``); another
            device moves the program there (``torch.export.passes.move_to_device_pass``).

    Raises:
        ValueError: missing, foreign, damaged or edited file, or a pickled payload (see the
            module docstring).
    """
    path = Path(path)
    spec = read_spec(path)
    program = torch.export.load(path)
    target = torch.device(device if device is not None else spec["device"])
    if target != torch.device(spec["device"]):
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, target)
    module = program.module()
    if spec.get("kind") == "policy":
        return DeployedPolicy(module, spec, target)
    if spec.get("kind") == "planner":
        return DeployedPlanner(module, spec, target)
    if spec.get("kind") == "belief_policy":
        return DeployedBeliefPolicy(module, spec, target)
    raise ValueError(f"artefact {str(path)!r} has unknown kind {spec.get('kind')!r}")
