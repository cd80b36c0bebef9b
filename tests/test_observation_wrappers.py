"""Observation wrappers: dropped velocities, rendered pixels, action repeat, registered ids,
flattened Dict / Tuple observations."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from mbrl.agents.env_factory import make_env, observation_layout
from mbrl.envs.observation_wrappers import (
    ActionRepeat,
    DropVelocity,
    FlattenDictObservation,
    PixelObservation,
    render_pendulum,
)
from mbrl.spaces import ObservationLayout


def test_drop_velocity_keeps_cos_sin_of_the_true_state():
    env = make_env("mbrl/PendulumNoVel-v0")
    obs, _ = env.reset(seed=1)
    theta = env.unwrapped.state[0]
    assert obs.shape == (2,) and env.observation_space.shape == (2,)
    np.testing.assert_allclose(obs, [np.cos(theta), np.sin(theta)], rtol=1e-6)
    with pytest.raises(ValueError, match="keep must be distinct indices"):
        DropVelocity(gym.make("Pendulum-v1"), keep=(0, 5))


def test_pixels_are_small_uint8_images_that_depend_on_the_angle():
    env = make_env("mbrl/PendulumPixels-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    env.unwrapped.state = np.array([0.0, 0.0])
    up = render_pendulum(env, 32)
    env.unwrapped.state = np.array([np.pi, 0.0])
    down = render_pendulum(env, 32)
    # upright: the rod is drawn in the top half; hanging: in the bottom half
    red = lambda img: (img[..., 0].astype(int) - img[..., 1]) > 60  # noqa: E731
    assert red(up)[:12].sum() > 20 and red(up)[20:].sum() == 0
    assert red(down)[20:].sum() > 20 and red(down)[:12].sum() == 0
    big = make_env("mbrl/PendulumPixels-v0", size=64)
    assert big.reset(seed=0)[0].shape == (64, 64, 3)


def test_channels_first_and_bad_renderer_output():
    env = PixelObservation(
        gym.make("Pendulum-v1"), 8, lambda e, s: np.zeros((s, s, 3), np.uint8), True
    )
    assert env.reset(seed=0)[0].shape == (3, 8, 8)
    bad = PixelObservation(gym.make("Pendulum-v1"), 8, lambda e, s: np.zeros((s, s, 3)))
    with pytest.raises(ValueError, match=r"\(8, 8, 3\) uint8"):
        bad.reset(seed=0)


def test_action_repeat_sums_rewards_and_counts_env_steps():
    plain, rep = gym.make("Pendulum-v1"), ActionRepeat(gym.make("Pendulum-v1"), 3)
    plain.reset(seed=4)
    rep.reset(seed=4)
    total = sum(plain.step(np.array([1.0]))[1] for _ in range(3))
    obs, reward, *_ = rep.step(np.array([1.0]))
    assert reward == pytest.approx(total) and rep.env_steps == 3
    np.testing.assert_allclose(obs, plain.unwrapped._get_obs())
    steps = 1
    while not any(rep.step(np.array([0.0]))[2:4]):
        steps += 1
    assert steps + 1 == 67 and rep.env_steps == 200  # 200-step limit: the last repeat is cut short


def _nested_space() -> gym.spaces.Dict:
    return gym.spaces.Dict(
        {
            "pos": gym.spaces.Box(-1.0, 1.0, (2,)),
            "mode": gym.spaces.Discrete(3, start=1),
            "cam": gym.spaces.Tuple((gym.spaces.Box(0.0, 2.0, (2, 2)), gym.spaces.MultiBinary(2))),
            "gears": gym.spaces.MultiDiscrete([2, 3]),
        }
    )


def test_layout_records_a_slice_per_entry_in_the_spaces_order():
    layout = ObservationLayout.from_space(_nested_space())
    # gymnasium sorts plain-dict keys: cam, gears, mode, pos
    assert layout.keys == ["cam/0", "cam/1", "gears", "mode", "pos"]
    assert [layout.slice(k) for k in layout.keys] == [
        slice(0, 4),
        slice(4, 6),
        slice(6, 11),
        slice(11, 14),
        slice(14, 16),
    ]
    assert layout.size == 16
    obs = {
        "pos": np.array([0.5, -0.5]),
        "mode": 2,
        "cam": (np.arange(4.0).reshape(2, 2), np.array([1, 0])),
        "gears": np.array([1, 0]),
    }
    flat = layout.flatten(obs)
    assert flat.dtype == np.float32 and flat.shape == (16,)
    np.testing.assert_array_equal(flat[layout.slice("cam/0")], [0, 1, 2, 3])
    np.testing.assert_array_equal(flat[layout.slice("mode")], [0, 1, 0])  # 2 of {1, 2, 3}
    np.testing.assert_array_equal(flat[layout.slice("gears")], [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(layout.split(flat)["pos"], [0.5, -0.5])
    # The same numbers gymnasium's own flatten gives (its order, its one-hot encoding).
    np.testing.assert_allclose(flat, gym.spaces.flatten(_nested_space(), obs))


def test_layout_round_trips_through_json():
    layout = ObservationLayout.from_space(_nested_space())
    text = json.dumps(layout.to_json())
    assert ObservationLayout.from_json(json.loads(text)) == layout
    broken = layout.to_json()
    broken["entries"][1]["start"] += 1
    with pytest.raises(ValueError, match="does not follow"):
        ObservationLayout.from_json(broken)
    with pytest.raises(ValueError, match="not an observation layout"):
        ObservationLayout.from_json({"entries": [{"key": "x"}]})


def test_flatten_wrapper_gives_a_flat_box_with_each_entrys_bounds():
    env = FlattenDictObservation(_DictEnv(_nested_space()))
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box) and space.shape == (16,) and space.dtype == np.float32
    np.testing.assert_array_equal(space.low[14:], [-1, -1])
    np.testing.assert_array_equal(space.high[:4], [2, 2, 2, 2])
    np.testing.assert_array_equal(space.high[6:14], np.ones(8))  # one-hot entries in [0, 1]
    obs, _ = env.reset(seed=0)
    assert space.contains(obs)
    assert env.get_wrapper_attr("observation_layout").size == 16


@pytest.mark.parametrize(
    ("sub", "name"),
    [
        (gym.spaces.Text(8), "Text"),
        (gym.spaces.Graph(gym.spaces.Box(0, 1, (2,)), None), "Graph"),
        (gym.spaces.Sequence(gym.spaces.Discrete(2)), "Sequence"),
    ],
    ids=["text", "graph", "sequence"],
)
def test_unflattenable_sub_spaces_are_named_by_their_path(sub, name):
    space = gym.spaces.Dict({"beam": gym.spaces.Dict({"ok": gym.spaces.Box(0, 1), "bad": sub})})
    with pytest.raises(TypeError, match=rf"observation_space\['beam'\]\['bad'\] is {name}"):
        ObservationLayout.from_space(space)
    with pytest.raises(TypeError, match=r"observation_space\['beam'\]\['bad'\]"):
        FlattenDictObservation(_DictEnv(space))


def test_bad_observations_name_the_entry():
    layout = ObservationLayout.from_space(_nested_space())
    good = {"pos": [0, 0], "mode": 1, "cam": (np.zeros((2, 2)), [0, 0]), "gears": [0, 0]}
    with pytest.raises(ValueError, match="no entry 'pos'"):
        layout.flatten({k: v for k, v in good.items() if k != "pos"})
    with pytest.raises(ValueError, match=r"'pos' must have shape \(2,\)"):
        layout.flatten({**good, "pos": [0, 0, 0]})
    with pytest.raises(ValueError, match=r"'mode': value 7 is outside \[1, 4\)"):
        layout.flatten({**good, "mode": 7})


def test_make_env_flattens_dict_envs_and_leaves_box_envs_alone():
    env = make_env("mbrl/DictSteering-v0")
    layout = observation_layout(env)
    assert env.observation_space.shape == (6,)
    assert layout.slice("bpm") == slice(0, 3) and layout.slice("setpoint") == slice(3, 6)
    assert isinstance(
        make_env("mbrl/DictSteering-v0", flatten=False).observation_space, gym.spaces.Dict
    )
    assert observation_layout(make_env("Pendulum-v1")) is None


class _DictEnv(gym.Env):
    """Samples its observation space; for wrapper tests."""

    def __init__(self, space: gym.Space) -> None:
        self.observation_space = space
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}
