"""Loading a checkpoint or a surrogate never runs code from the file; tampering is refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import mbrl
from mbrl.models import DeltaModelConfig, GaussianEnsemble, load_checkpoint, save_checkpoint


class _Payload:
    """Unpickling this creates a file: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious(path: Path, marker: Path) -> None:
    # A real torch file (zip container) whose pickle holds the payload next to a valid header.
    torch.save({"format": "mbrl-checkpoint", "version": 2, "evil": _Payload(marker)}, path)


def _model() -> GaussianEnsemble:
    torch.manual_seed(0)
    cfg = DeltaModelConfig(ensemble_size=2, hidden_size=8, num_layers=2, propagation="expectation")
    return GaussianEnsemble(3, 1, cfg)


def test_malicious_checkpoint_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    _malicious(path, marker)
    with pytest.raises(ValueError, match="evil.pt"):
        load_checkpoint(path)
    assert not marker.exists()


def test_plain_pickle_checkpoint_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError, match="evil.pt"):
        load_checkpoint(path)
    assert not marker.exists()


def test_malicious_surrogate_model_is_refused_without_running(tmp_path: Path) -> None:
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    out = tmp_path / "surrogate"
    mbrl.dyna.save_surrogate(
        out,
        _model(),
        env.observation_space,
        env.action_space,
        torch.zeros(4, 3),
        env_id="Pendulum-v1",
    )
    marker = tmp_path / "pwned"
    _malicious(out / "model.pt", marker)
    with pytest.raises(ValueError, match="model.pt"):
        mbrl.load_surrogate(out)
    assert not marker.exists()


def test_tampered_checkpoint_is_refused_by_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, _model())
    # Rewrite the file with one weight changed, keeping the stored hash: a valid torch file
    # whose content no longer matches what was saved.
    payload = torch.load(path, weights_only=True)
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.numel())
    payload["state_dict"][key] = payload["state_dict"][key] + 1.0
    torch.save(payload, path)
    with pytest.raises(ValueError, match="SHA-256"):
        load_checkpoint(path)


def test_flipped_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, _model())
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 2000):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.pt"):
        load_checkpoint(path)


def test_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    model = _model().eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, {"note": "x", "sizes": [1, 2]})
    loaded, meta = load_checkpoint(path)
    assert meta == {"note": "x", "sizes": [1, 2]}
    obs, act = torch.randn(7, 3), torch.randn(7, 1)
    assert torch.equal(model.step(obs, act), loaded.step(obs, act))
