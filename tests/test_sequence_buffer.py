"""SequenceBuffer: whole episodes in, chunks out, uint8 images, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.data.sequence_buffer import SequenceBuffer


def _episode(ep: int, steps: int, obs_dim: int = 2) -> tuple[np.ndarray, ...]:
    """Observations encode (episode, t); action t = 10 * ep + t; reward t = -t."""
    t = np.arange(steps + 1, dtype=np.float32)
    obs = np.stack([np.full_like(t, ep), t], -1)[:, :obs_dim]
    act = (10.0 * ep + np.arange(steps, dtype=np.float32))[:, None]
    rew = -np.arange(steps, dtype=np.float32)
    return obs, act, rew


def test_chunks_stay_inside_one_episode_and_follow_the_into_convention(gen):
    buf = SequenceBuffer((2,), 1)
    for ep, steps in enumerate([5, 12, 3]):
        buf.add_episode(*_episode(ep, steps))
    assert len(buf) == 6 + 13 + 4 and buf.num_episodes == 3
    batch = buf.sample(64, 6, gen)
    assert batch.obs.shape == (64, 6, 2) and batch.action.shape == (64, 6, 1)
    assert batch.reward.shape == batch.first.shape == (64, 6)
    # one episode per chunk, consecutive steps
    assert bool((batch.obs[:, :, 0] == batch.obs[:, :1, 0]).all())
    assert bool((batch.obs[:, 1:, 1] - batch.obs[:, :-1, 1] == 1).all())
    # the 4-step episode (index 2) is shorter than the chunk: never sampled
    assert not bool((batch.obs[:, 0, 0] == 2).any())
    # action/reward at step t led into obs t; zeros and first=True at t = 0
    t, ep = batch.obs[:, :, 1], batch.obs[:, :, 0]
    assert bool((batch.first == (t == 0)).all())
    expected_a = torch.where(t > 0, 10 * ep + t - 1, torch.zeros_like(t))
    assert torch.equal(batch.action[..., 0], expected_a)
    assert torch.equal(batch.reward, torch.where(t > 0, -(t - 1), torch.zeros_like(t)))


def test_images_are_stored_as_uint8_and_wrong_dtype_or_size_is_rejected(gen):
    buf = SequenceBuffer((8, 8, 3), 2, obs_dtype=torch.uint8)
    obs = np.random.default_rng(0).integers(0, 256, (11, 8, 8, 3), dtype=np.uint8)
    buf.add_episode(obs, np.zeros((10, 2)), np.zeros(10))
    batch = buf.sample(4, 10, gen)
    assert batch.obs.dtype == torch.uint8 and batch.obs.shape == (4, 10, 8, 8, 3)
    with pytest.raises(TypeError, match="uint8"):
        buf.add_episode(obs.astype(np.float32), np.zeros((10, 2)), np.zeros(10))
    with pytest.raises(ValueError, match=r"\(11, 8, 8, 3\)"):
        buf.add_episode(obs[:, :4], np.zeros((10, 2)), np.zeros(10))
    with pytest.raises(ValueError, match=r"action must have shape \(T, 2\)"):
        buf.add_episode(obs, np.zeros((10, 3)), np.zeros(10))
    assert buf.num_episodes == 1


def test_chunk_longer_than_every_episode_is_a_clear_error(gen):
    buf = SequenceBuffer((2,), 1)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(2, 3, gen)
    buf.add_episode(*_episode(0, 5))
    with pytest.raises(ValueError, match="chunk length 7 is longer than every stored episode"):
        buf.sample(2, 7, gen)


def test_capacity_drops_oldest_whole_episodes_and_save_load_round_trips(tmp_path, gen):
    buf = SequenceBuffer((2,), 1, capacity=20)
    for ep in range(4):
        buf.add_episode(*_episode(ep, 7))  # 8 steps each
    assert buf.episode_lengths == [8, 8] and len(buf) == 16
    assert float(buf.episode(0).obs[0, 0, 0]) == 2.0
    buf.save(tmp_path / "seq.pt")
    back = SequenceBuffer.load(tmp_path / "seq.pt")
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = buf.sample(5, 4, g1), back.sample(5, 4, g2)
    assert torch.equal(a.obs, b.obs) and torch.equal(a.action, b.action)
    with pytest.raises(ValueError, match="does not exist"):
        SequenceBuffer.load(tmp_path / "missing.pt")
