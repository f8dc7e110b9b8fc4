"""Spaces -> network inputs and action kinds (issue 13 item 1), and "module:Env-v0" ids (item 3):
the preprocessing equals gymnasium's own `flatten` on every supported space, host envs return
it (final observations included), and anything else is a one-line ValueError."""

from __future__ import annotations

import sys
import textwrap

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from inject_rl import envs
from inject_rl.envs import HostEnv, ObsPreprocessor

FLAT_SPACES = {
    "box-vector": spaces.Box(-1.0, 1.0, (3,)),
    "box-scalar": spaces.Box(-1.0, 1.0, ()),
    "box-matrix": spaces.Box(-1.0, 1.0, (2, 3)),
    "box-rank4": spaces.Box(0, 9, (2, 2, 2, 2), np.int32),
    "box-thin-frames": spaces.Box(0, 255, (2, 5, 3), np.uint8),  # too thin for a 3x3 conv
    "discrete": spaces.Discrete(4),
    "discrete-start": spaces.Discrete(3, start=-1),
    "multi-discrete": spaces.MultiDiscrete([[2, 3], [4, 1]]),
    "multi-binary": spaces.MultiBinary(5),
    "dict": spaces.Dict({"b": spaces.Discrete(3), "a": spaces.Box(-1.0, 1.0, (2,))}),
    "tuple": spaces.Tuple((spaces.Discrete(2), spaces.MultiBinary(3))),
    "nested": spaces.Tuple(
        (
            spaces.Dict({"k": spaces.Discrete(5), "img": spaces.Box(0, 255, (4, 4, 1), np.uint8)}),
            spaces.MultiDiscrete([3, 3]),
        )
    ),
}


def _batch(space, samples):
    """A batch of samples as a vector env returns it: dicts/tuples of `[B, ...]` arrays."""
    if isinstance(space, spaces.Dict):
        return {k: _batch(s, [x[k] for x in samples]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_batch(s, [x[i] for x in samples]) for i, s in enumerate(space.spaces))
    return np.stack([np.asarray(x) for x in samples])


@pytest.mark.parametrize("space", list(FLAT_SPACES.values()), ids=list(FLAT_SPACES))
def test_the_preprocessing_is_gymnasiums_flatten_as_float32(space):
    space.seed(0)
    samples = [space.sample() for _ in range(5)]
    prep = ObsPreprocessor(space)
    expected = np.stack([gymnasium.spaces.flatten(space, x) for x in samples]).astype(np.float32)
    assert prep.shape == gymnasium.spaces.flatten_space(space).shape == expected.shape[1:]
    out = prep(_batch(space, samples))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(prep.single(samples[2]), expected[2])


def test_images_keep_their_shape_and_uint8_frames_scale_to_unit():
    frames = ObsPreprocessor(spaces.Box(0, 255, (6, 5, 3), np.uint8))
    assert frames.image and frames.shape == (6, 5, 3)
    x = np.full((2, 6, 5, 3), 255, np.uint8)
    x[1] = 51
    out = frames(x)
    assert out.dtype == np.float32 and out.shape == (2, 6, 5, 3)
    np.testing.assert_allclose(out[:, 0, 0, 0], [1.0, 0.2])
    # MinAtar-style boolean frames and float images are only cast.
    bools = ObsPreprocessor(spaces.Box(0, 1, (10, 10, 4), bool))
    assert bools.image and bools(np.ones((1, 10, 10, 4), bool)).max() == 1.0
    floats = ObsPreprocessor(spaces.Box(-5.0, 5.0, (4, 4, 2)))
    assert floats(np.full((1, 4, 4, 2), 3.0, np.float32)).max() == 3.0


def test_one_or_a_batch_is_told_apart_by_the_parts_shapes():
    prep = ObsPreprocessor(FLAT_SPACES["dict"])
    x, single = prep.one_or_batch({"a": np.zeros(2), "b": 1})
    assert single and x.shape == (1, 5)
    x, single = prep.one_or_batch({"a": np.zeros((3, 2)), "b": np.array([0, 1, 2])})
    assert not single and x.shape == (3, 5)
    # gymnasium's Dict sorts its keys: "a" (the Box) comes first, then "b" one-hot.
    np.testing.assert_array_equal(x, np.concatenate([np.zeros((3, 2)), np.eye(3)], axis=1))
    with pytest.raises(ValueError, match="a batch of them"):
        prep.one_or_batch({"a": np.zeros((3, 2)), "b": 1})  # parts disagree
    with pytest.raises(ValueError, match=r"keys \['a', 'b'\]"):
        prep.one_or_batch({"a": np.zeros(2)})
    with pytest.raises(ValueError, match="outside Discrete"):
        ObsPreprocessor(spaces.Discrete(3)).one_or_batch(np.array([0, 3]))


UNSUPPORTED_OBS = {
    "text": spaces.Text(5),
    "sequence": spaces.Sequence(spaces.Discrete(2)),
    "graph": spaces.Graph(spaces.Box(0, 1, (2,)), None),
    "text-in-dict": spaces.Dict({"ok": spaces.Discrete(2), "bad": spaces.Text(3)}),
}


@pytest.mark.parametrize("space", list(UNSUPPORTED_OBS.values()), ids=list(UNSUPPORTED_OBS))
def test_other_observation_spaces_are_one_line_errors(space):
    with pytest.raises(ValueError, match="is not supported; allowed: Box, Discrete") as info:
        ObsPreprocessor(space)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "space, kind",
    [
        (spaces.Discrete(3), "discrete"),
        (spaces.MultiDiscrete([3, 2]), "multi_discrete"),
        (spaces.Box(-1.0, 1.0, (2,)), "continuous"),
        (spaces.Box(-np.inf, np.inf, (2,)), "unbounded"),
        (spaces.Box(np.float32([-1, 0]), np.float32([1, np.inf])), "unbounded"),
    ],
    ids=["discrete", "multi-discrete", "box", "unbounded-box", "half-bounded-box"],
)
def test_action_kinds(space, kind):
    assert envs.action_kind(space) == kind


@pytest.mark.parametrize(
    "space",
    [
        spaces.MultiBinary(3),
        spaces.Discrete(3, start=1),
        spaces.MultiDiscrete([2, 2], start=[1, 0]),
        spaces.Box(0, 5, (2,), np.int64),
        spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2))),
    ],
    ids=["multi-binary", "discrete-start", "multi-discrete-start", "int-box", "tuple"],
)
def test_other_action_spaces_are_one_line_errors(space):
    with pytest.raises(ValueError, match="is not supported; allowed: Discrete or Multi") as info:
        envs.action_kind(space)
    assert "\n" not in str(info.value)


class _DictCounter(gymnasium.Env):
    """Dict observations {"t": Discrete(4), "x": Box}; MultiDiscrete actions; ends at t = 3."""

    observation_space = spaces.Dict(
        {"t": spaces.Discrete(4), "x": spaces.Box(-10.0, 10.0, (2,), np.float32)}
    )
    action_space = spaces.MultiDiscrete([2, 3])

    def _obs(self):
        return {"t": self.t, "x": np.array([self.t, -self.t], np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action)), action
        self.t += 1
        return self._obs(), float(action[1]), self.t == 3, False, {}


class _TextObs(_DictCounter):
    observation_space = spaces.Text(4)


class _BinaryActions(_DictCounter):
    action_space = spaces.MultiBinary(2)


for _name, _cls in [("DictCounter", _DictCounter), ("TextObs", _TextObs), ("Bits", _BinaryActions)]:
    if f"InjectRLSpaces/{_name}-v0" not in gymnasium.registry:
        gymnasium.register(f"InjectRLSpaces/{_name}-v0", entry_point=_cls, max_episode_steps=10)


def test_host_env_preprocesses_every_observation_it_returns():
    with HostEnv("InjectRLSpaces/DictCounter-v0", 2) as env:
        assert env.obs_shape == (6,) and env.action_kind == "multi_discrete"
        assert env.action_shape == (2,) and not env.discrete
        obs = env.reset(seed=0)
        np.testing.assert_array_equal(obs, [[1, 0, 0, 0, 0, 0]] * 2)
        for _ in range(3):
            ts = env.step(np.array([[0, 2], [1, 1]]))
    np.testing.assert_array_equal(ts.reward, [2.0, 1.0])
    assert ts.terminated.all()
    # The true final observation (t = 3), preprocessed; obs is the reset one.
    np.testing.assert_array_equal(ts.next_obs, [[0, 0, 0, 1, 3, -3]] * 2)
    np.testing.assert_array_equal(ts.obs, [[1, 0, 0, 0, 0, 0]] * 2)
    with pytest.raises(AttributeError, match="no Box"):
        env.action_low  # noqa: B018


def test_frozen_lake_is_accepted_with_one_hot_observations():
    with HostEnv("FrozenLake-v1", 2) as env:
        obs = env.reset(seed=0)
    assert env.obs_shape == (16,)
    np.testing.assert_array_equal(obs, np.eye(16, dtype=np.float32)[[0, 0]])


@pytest.mark.parametrize(
    "env_id, match",
    [
        ("InjectRLSpaces/TextObs-v0", r"TextObs-v0: observation space Text\(1, 4, "),
        ("InjectRLSpaces/Bits-v0", r"Bits-v0: action space MultiBinary\(2\) is not supported"),
    ],
    ids=["text-obs", "multi-binary-actions"],
)
def test_host_env_refuses_other_spaces_in_one_line(env_id, match):
    with pytest.raises(ValueError, match=match) as info:
        HostEnv(env_id, 1)
    assert "\n" not in str(info.value)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module on sys.path that registers `InjectRLUser/Corridor-v0` when imported (as a
    user's package would), not imported yet."""
    name = "inject_rl_user_corridor"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import gymnasium
            import numpy as np

            class Corridor(gymnasium.Env):
                observation_space = gymnasium.spaces.Discrete(5)
                action_space = gymnasium.spaces.Discrete(2)

                def reset(self, *, seed=None, options=None):
                    super().reset(seed=seed)
                    self.pos = 0
                    return self.pos, {}

                def step(self, action):
                    self.pos = max(0, min(4, self.pos + (1 if action else -1)))
                    return self.pos, float(self.pos == 4), self.pos == 4, False, {}

            gymnasium.register("InjectRLUser/Corridor-v0", entry_point=Corridor,
                               max_episode_steps=20)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    gymnasium.registry.pop("InjectRLUser/Corridor-v0", None)


def test_a_module_env_id_imports_the_module_as_gymnasium_make_does(user_module):
    env_id = f"{user_module}:InjectRLUser/Corridor-v0"
    assert not envs.is_jax_env(env_id)  # imports the module: the id is now registered
    assert envs.spec(env_id).id == "InjectRLUser/Corridor-v0"
    with HostEnv(env_id, 2) as env:
        obs = env.reset(seed=0)
        ts = env.step(np.ones(2, np.int32))
    assert env.id == "InjectRLUser/Corridor-v0" and env.max_episode_steps == 20
    np.testing.assert_array_equal(obs.argmax(1), [0, 0])
    np.testing.assert_array_equal(ts.obs.argmax(1), [1, 1])
    with pytest.raises(ValueError, match="no functional JAX form"):
        envs.make(env_id)


@pytest.mark.parametrize(
    "env_id, match",
    [
        ("no_such_module_xyz:Env-v0", "cannot import module 'no_such_module_xyz'"),
        ("gymnasium:Nope-v0", "unknown env id 'gymnasium:Nope-v0'"),
    ],
    ids=["missing-module", "module-without-the-id"],
)
def test_bad_module_env_ids_are_one_line_errors(env_id, match):
    assert not envs.is_jax_env(env_id)
    for fn in (envs.spec, envs.make, lambda i: HostEnv(i, 1)):
        with pytest.raises(ValueError, match=match) as info:
            fn(env_id)
        assert "\n" not in str(info.value)


def test_minatar_ids_register_on_demand():
    """MinAtar registers its gymnasium ids only when asked (importing it is not enough)."""
    assert envs.host_spaces("MinAtar/Breakout-v1").obs_shape == (10, 10, 4)
    with HostEnv("MinAtar/Breakout-v1", 2) as env:
        obs = env.reset(seed=0)
        ts = env.step(np.zeros(2, np.int32))
    assert obs.shape == ts.next_obs.shape == (2, 10, 10, 4) and obs.dtype == np.float32
    assert set(np.unique(obs)) <= {0.0, 1.0}  # MinAtar's boolean channels


def test_a_missing_on_demand_package_names_its_extra(monkeypatch):
    from inject_rl.envs import _spaces

    monkeypatch.setitem(
        _spaces._REGISTRARS, "NoSuchPkg", ("no_such_pkg_xyz.gym", "register", "nosuch")
    )
    with pytest.raises(ValueError, match=r"pip install 'inject-rl\[nosuch\]'$"):
        envs.host_spaces("NoSuchPkg/Game-v0")
