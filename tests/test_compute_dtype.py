"""bfloat16 only on hardware with native bf16: detection, fallback with a warning, override."""

from __future__ import annotations

import warnings

import pytest
import torch

import mbrl.agents.backend as backend
from mbrl.agents.backend import (
    FORCE_BF16_ENV,
    Bf16Support,
    detect_native_bf16,
    resolve_compute_dtype,
)
from mbrl.agents.config import RunConfig
from mbrl.agents.setup import build_run
from mbrl.models.training import FitConfig

EPYC_FLAGS = "flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma bmi2\n"
"""An AMD EPYC (Zen 2) without AVX-512: bf16 is emulated there (4x slower than float32)."""


def _cpuinfo(tmp_path, text: str):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\n" + text)
    return path


@pytest.mark.parametrize(
    ("text", "native", "evidence"),
    [
        (EPYC_FLAGS, False, "none of the flags"),
        ("flags\t\t: fpu avx2 avx512f avx512_bf16\n", True, "avx512_bf16"),
        ("flags\t\t: fpu avx2 amx_tile amx_bf16\n", True, "amx_bf16"),
        ("Features\t: fp asimd sve bf16 i8mm\n", True, "bf16"),  # aarch64 (Graviton 3)
        ("Features\t: fp asimd evtstrm aes\n", False, "none of the flags"),  # Graviton 2
    ],
    ids=["epyc-zen2", "avx512_bf16", "amx", "aarch64-bf16", "aarch64-none"],
)
def test_cpu_detection_reads_the_cpuinfo_flags(tmp_path, text, native, evidence):
    support = detect_native_bf16("cpu", _cpuinfo(tmp_path, text))
    assert support.native is native and evidence in support.evidence


def test_without_native_bf16_the_run_warns_and_computes_in_float32():
    with pytest.warns(
        RuntimeWarning, match=r"no native bf16 \(no AVX-512\).*float32.*MBRL_FORCE_BF16=1"
    ):
        choice = resolve_compute_dtype(
            "bfloat16", "cpu", detect=lambda _d: Bf16Support(False, "no AVX-512"), environ={}
        )
    assert (choice.requested, choice.dtype) == ("bfloat16", "float32")
    assert choice.to_json()["dtype"] == "float32" and "no AVX-512" in choice.reason


def test_the_override_keeps_bf16_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        choice = resolve_compute_dtype(
            "bfloat16",
            "cpu",
            detect=lambda _d: Bf16Support(False, "no AVX-512"),
            environ={FORCE_BF16_ENV: "1"},
        )
    assert choice.dtype == "bfloat16" and FORCE_BF16_ENV in choice.reason


def test_native_bf16_is_kept_and_float32_never_probes():
    native = resolve_compute_dtype("bfloat16", "cpu", detect=lambda _d: Bf16Support(True, "amx"))
    assert native.dtype == "bfloat16" and "amx" in native.reason

    def probe(_d):
        raise AssertionError("float32 needs no probe")

    assert resolve_compute_dtype("float32", "cpu", detect=probe).dtype == "float32"
    with pytest.raises(ValueError, match="compute_dtype"):
        resolve_compute_dtype("float16", "cpu")


TINY = dict(
    env_id="Pendulum-v1",
    seed_episodes=1,
    episodes=1,
    max_episode_steps=10,
    horizon=3,
    n_particles=1,
    model_options={"ensemble_size": 2, "hidden_size": 16, "num_layers": 2},
    planner_options={"population": 8, "iterations": 1},
    fit=FitConfig(max_steps=5, eval_every=5),
    compute_dtype="bfloat16",
    progress=False,
)


@pytest.mark.parametrize("native", [False, True], ids=["emulated", "native"])
def test_build_run_records_the_resolved_dtype(monkeypatch, native):
    monkeypatch.delenv(FORCE_BF16_ENV, raising=False)
    monkeypatch.setattr(backend, "detect_native_bf16", lambda _d: Bf16Support(native, "test"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        setup = build_run(RunConfig(**TINY))
    setup.env.close()
    expected = "bfloat16" if native else "float32"
    assert setup.dtype.dtype == expected and setup.config.compute_dtype == expected
    assert setup.model.compute_dtype == getattr(torch, expected)
    fell_back = [w for w in caught if "no native bf16" in str(w.message)]
    assert len(fell_back) == (0 if native else 1)
