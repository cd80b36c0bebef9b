import numpy as np
import pytest
import torch

from mbrl.data import TransitionBuffer


def _fill(buf: TransitionBuffer, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        buf.add(
            np.full(3, i, np.float32),
            np.array([i * 0.5]),
            float(i),
            np.full(3, i + 1.0),
            i % 7 == 0,
            i % 5 == 0,
        )


def test_add_single_and_batch_keep_flags_apart():
    buf = TransitionBuffer(3, 1, capacity=100)
    _fill(buf, 10)
    buf.add(
        np.zeros((4, 3)),
        np.ones((4, 1)),
        np.arange(4.0),
        np.ones((4, 3)),
        [True, False, False, False],
        [False, True, False, False],
    )
    assert len(buf) == 14
    data = buf.all()
    assert data.obs.shape == (14, 3) and data.obs.dtype == torch.float32
    assert data.action.shape == (14, 1) and data.reward.shape == (14,)
    assert data.terminated.dtype == torch.bool and data.truncated.dtype == torch.bool
    assert data.terminated[:10].tolist() == [i % 7 == 0 for i in range(10)]
    assert data.truncated[:10].tolist() == [i % 5 == 0 for i in range(10)]
    assert data.terminated[10:].tolist() == [True, False, False, False]
    assert data.truncated[10:].tolist() == [False, True, False, False]


def test_ring_overwrites_oldest_and_all_is_chronological():
    buf = TransitionBuffer(3, 1, capacity=8)
    _fill(buf, 20)
    assert len(buf) == 8 and buf.total_added == 20
    assert buf.all().reward.tolist() == [float(i) for i in range(12, 20)]


def test_sampling_is_reproducible_with_generator():
    buf = TransitionBuffer(3, 1, capacity=50)
    _fill(buf, 30)
    a = buf.sample(16, torch.Generator().manual_seed(3)).reward
    b = buf.sample(16, torch.Generator().manual_seed(3)).reward
    c = buf.sample(16, torch.Generator().manual_seed(4)).reward
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_split_partitions_data():
    buf = TransitionBuffer(3, 1, capacity=50)
    _fill(buf, 40)
    train, val = buf.split(0.25, torch.Generator().manual_seed(0))
    assert len(train) == 30 and len(val) == 10
    assert sorted(train.reward.tolist() + val.reward.tolist()) == [float(i) for i in range(40)]


def test_save_load_round_trip_is_lossless(tmp_path):
    buf = TransitionBuffer(3, 1, capacity=8)
    _fill(buf, 13)
    buf.save(tmp_path / "b.pt")
    loaded = TransitionBuffer.load(tmp_path / "b.pt")
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        assert torch.equal(getattr(buf.all(), name), getattr(loaded.all(), name))
    assert loaded.total_added == 13
    _fill(buf, 3, 100)
    _fill(loaded, 3, 100)  # the ring pointer survived too
    assert torch.equal(buf.all().reward, loaded.all().reward)


def test_bad_input_is_rejected_before_writing():
    buf = TransitionBuffer(3, 1, capacity=8)
    with pytest.raises(ValueError, match=r"obs must have shape \(1, 3\)"):
        buf.add(np.zeros(4), np.zeros(1), 0.0, np.zeros(3), False, False)
    with pytest.raises(ValueError, match="next_obs contains NaN"):
        buf.add(np.zeros(3), np.zeros(1), 0.0, np.array([0, np.nan, 0]), False, False)
    assert len(buf) == 0
    with pytest.raises(ValueError, match="empty"):
        buf.sample(4, torch.Generator())


def test_load_rejects_corrupt_and_foreign_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="corrupt"):
        TransitionBuffer.load(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an mbrl transition buffer"):
        TransitionBuffer.load(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="does not exist"):
        TransitionBuffer.load(tmp_path / "missing.pt")


def _flag_only_batch(terminated: torch.Tensor, truncated: torch.Tensor):
    n = terminated.shape[0]
    buf = TransitionBuffer(1, 1, n)
    zeros = torch.zeros(n, 1)
    buf.add(zeros, zeros, torch.zeros(n), zeros, terminated, truncated)
    return buf.all()


def test_batch_episodes_split_at_terminated_and_truncated_rows():
    terminated = torch.zeros(7, dtype=torch.bool)
    truncated = torch.zeros(7, dtype=torch.bool)
    terminated[1] = True  # episode 0: rows 0-1 (terminated)
    truncated[4] = True  # episode 1: rows 2-4 (truncated); rows 5-6 still running
    expected = [slice(0, 2), slice(2, 5), slice(5, 7)]
    assert _flag_only_batch(terminated, truncated).episodes() == expected
    truncated[6] = True  # the last episode closed: same slices, none left open
    assert _flag_only_batch(terminated, truncated).episodes() == expected


def _v1_file(buf: TransitionBuffer, path) -> None:
    """A buffer file as version 1 wrote it: the whole preallocated capacity."""
    state = {k: v for k, v in buf.state_dict().items()}
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        state[name] = getattr(buf, "_" + name).clone()
    torch.save({**state, "version": 1}, path)


def test_saved_file_holds_the_filled_rows_only_and_v1_files_still_load(tmp_path):
    buf = TransitionBuffer(3, 1, capacity=1_000_000)
    _fill(buf, 60)
    buf.save(tmp_path / "b.pt")
    assert (tmp_path / "b.pt").stat().st_size < 20_000  # v1: 34 MB for these 60 rows
    _v1_file(buf, tmp_path / "v1.pt")
    assert (tmp_path / "v1.pt").stat().st_size > 30_000_000
    for name in ("b.pt", "v1.pt"):
        back = TransitionBuffer.load(tmp_path / name)
        assert back.capacity == 1_000_000 and back.total_added == 60
        assert torch.equal(back.all().next_obs, buf.all().next_obs)
    assert not list(tmp_path.glob("*.tmp"))


def test_a_wrapped_ring_loads_exactly_or_oldest_first_into_another_capacity(tmp_path):
    buf = TransitionBuffer(3, 1, capacity=8)
    _fill(buf, 13)  # wrapped: the oldest row sits at ptr 5
    buf.save(tmp_path / "b.pt")
    same = TransitionBuffer.load(tmp_path / "b.pt")
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert torch.equal(same.sample(5, gen()).reward, buf.sample(5, gen()).reward)
    bigger = TransitionBuffer.load(tmp_path / "b.pt", capacity=100)
    assert bigger.all().reward.tolist() == buf.all().reward.tolist() == list(range(5, 13))
    _fill(bigger, 1, 50)
    assert bigger.all().reward.tolist()[-2:] == [12.0, 50.0]
    with pytest.raises(ValueError, match="capacity must be >= the 8 transitions"):
        TransitionBuffer.load(tmp_path / "b.pt", capacity=4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": 1e9}, r"'size' must be an integer >= 0, found 1000000000.0"),
        ({"size": 50, "total_added": 50}, "size 50 exceeds its capacity 8"),
        ({"ptr": 2}, "write position ptr=2 does not fit size=5"),
        ({"obs_dim": 4}, r"'obs' must be a torch.float32 tensor of shape \(5, 4\), found"),
        ({"reward": torch.zeros(5, dtype=torch.float64)}, "'reward' must be a torch.float32"),
        ({"terminated": "yes"}, "'terminated' must be a tensor, found str"),
        ({"obs": torch.full((5, 3), float("nan"))}, "obs holds NaN or inf"),
        ({"version": 7}, "has version 7; this mbrl reads versions 1 and 2"),
        ({"capacity": 10**15, "size": 0, "ptr": 0, "obs": torch.zeros(0, 3),
          "action": torch.zeros(0, 1), "reward": torch.zeros(0), "next_obs": torch.zeros(0, 3),
          "terminated": torch.zeros(0, dtype=torch.bool),
          "truncated": torch.zeros(0, dtype=torch.bool)}, "cannot allocate capacity"),
    ],
)  # fmt: skip
def test_tampered_buffer_files_are_refused_with_the_file_and_what_was_expected(
    tmp_path, change, message
):
    buf = TransitionBuffer(3, 1, capacity=8)
    _fill(buf, 5)
    path = tmp_path / "t.pt"
    torch.save({**buf.state_dict(), **change}, path)
    with pytest.raises(ValueError, match=message) as info:
        TransitionBuffer.load(path)
    assert str(path) in str(info.value)


def test_a_buffer_file_missing_keys_or_holding_code_is_refused(tmp_path):
    buf = TransitionBuffer(3, 1, capacity=8)
    _fill(buf, 5)
    state = buf.state_dict()
    del state["next_obs"], state["ptr"]
    torch.save(state, tmp_path / "k.pt")
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['next_obs', 'ptr'\]"):
        TransitionBuffer.load(tmp_path / "k.pt")
    torch.save({**buf.state_dict(), "extra": TransitionBuffer}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="refused without running them"):
        TransitionBuffer.load(tmp_path / "code.pt")


def test_buffer_latest_returns_the_newest_rows_oldest_first_across_the_wrap():
    buf = TransitionBuffer(1, 1, capacity=5)
    for i in range(7):  # rows 2..6 remain, stored wrapped around
        buf.add(np.array([i]), np.array([0.0]), 0.0, np.array([i + 1]), False, False)
    assert buf.latest(3).obs.flatten().tolist() == [4.0, 5.0, 6.0]
    assert buf.latest(9).obs.flatten().tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert len(buf.latest(0)) == 0
    with pytest.raises(ValueError, match="k"):
        buf.latest(-1)
