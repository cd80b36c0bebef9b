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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"obs_dtype": "save"}, r"obs_dtype must be one of \['float32', 'uint8'\], found 'save'"),
        (
            {"episode_lengths": [8, 9], "total_steps_added": 15},
            r"'obs' must be a torch.float32 tensor of shape \(17, 2\)",
        ),
        ({"episode_lengths": [1, 15]}, "episode_lengths must be a list of ints >= 2"),
        ({"episode_lengths": [4, 12]}, "'first' does not mark the starts of its episode_lengths"),
        ({"obs_shape": [0]}, "obs_shape must be a list of positive ints"),
        ({"reward": torch.full((16,), float("inf"))}, "hold NaN or inf"),
        ({"action_dim": 1.0}, "'action_dim' must be an integer >= 1, found 1.0"),
    ],
)
def test_tampered_sequence_buffer_files_are_refused(tmp_path, change, message):
    buf = SequenceBuffer((2,), 1)
    for ep in range(2):
        buf.add_episode(*_episode(ep, 7))
    path = tmp_path / "t.pt"
    torch.save({**buf.state_dict(), **change}, path)
    with pytest.raises(ValueError, match=message) as info:
        SequenceBuffer.load(path)
    assert str(path) in str(info.value)
    state = buf.state_dict()
    del state["first"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['first'\]"):
        SequenceBuffer.load(path)


def test_an_evicted_buffer_saves_only_what_it_keeps(tmp_path):
    buf = SequenceBuffer((2,), 1, capacity=20)
    for ep in range(40):
        buf.add_episode(*_episode(ep, 7))
    buf.save(tmp_path / "seq.pt")
    state = torch.load(tmp_path / "seq.pt", weights_only=True)
    assert state["obs"].untyped_storage().nbytes() == 16 * 2 * 4
