"""Every agent on every observation and action space it takes (issue 13 item 1): small envs
written here, trained briefly on the host loop, then acted on with `result.policy()` /
`load_policy` on observations as the env returns them.

The envs are one-step bandits whose observation names the rewarded action (the `key`), shown
as a `Discrete` value, inside a `Dict` or a `Tuple`, or as an image channel; a policy that
learned anything acts `key` greedily.
"""

from __future__ import annotations

import sys

import gymnasium
import jax
import numpy as np
import pytest
from gymnasium import spaces

from inject_rl import loops, runs
from inject_rl.agents import get, load_policy
from inject_rl.agents._actor_critic_policy import ActorCritic

N = 3  # keys (and actions)


def observation(style: str, key: int, noise: np.ndarray) -> object:
    """How an env of `style` shows `key` (with distracting `noise` in [-1, 1]^2)."""
    if style == "discrete":
        return key
    if style == "dict":
        return {"key": key, "noise": noise.astype(np.float32)}
    if style == "tuple":
        return (noise.astype(np.float32), key)
    if style == "text":  # not supported: the env is refused before it shows any
        return str(key)
    if style == "image":  # 5x5 frames, channel `key` lit
        frame = np.zeros((5, 5, N), np.uint8)
        frame[..., key] = 255
        return frame
    raise ValueError(style)


OBSERVATION_SPACES = {
    # N + 2 values (keys use the first N): one-hot as wide as the Dict and Tuple inputs, so the
    # three PPO tests run one compiled program (the persistent compilation cache shares it).
    "discrete": spaces.Discrete(N + 2),
    "dict": spaces.Dict({"key": spaces.Discrete(N), "noise": spaces.Box(-1, 1, (2,), np.float32)}),
    "tuple": spaces.Tuple((spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(N))),
    "image": spaces.Box(0, 255, (5, 5, N), np.uint8),
    "text": spaces.Text(4),
}

ACTION_SPACES = {
    "discrete": spaces.Discrete(N),
    # Component 0 should be the key, component 1 its parity.
    "multi_discrete": spaces.MultiDiscrete([N, 2]),
    # Should be the key's target in [-1, 1] (continuous agents).
    "box": spaces.Box(-1.0, 1.0, (1,), np.float32),
    "unbounded": spaces.Box(-np.inf, np.inf, (1,), np.float32),
    # A rank-2 Box: its [0, 0] entry should be the target, the other any value.
    "matrix": spaces.Box(-1.0, 1.0, (1, 2), np.float32),
    "multi_binary": spaces.MultiBinary(2),
}


def target(key: int) -> float:
    return -0.5 + 0.5 * key


def best_action(actions: str, key: int):
    if actions == "discrete":
        return key
    if actions == "multi_discrete":
        return np.array([key, key % 2])
    return np.array([target(key)], np.float32)


class KeyedBandit(gymnasium.Env):
    """One step per episode: observe a random key, get reward 1 for the right action."""

    def __init__(self, obs: str = "discrete", actions: str = "discrete"):
        self.style, self.actions = obs, actions
        self.observation_space = OBSERVATION_SPACES[obs]
        self.action_space = ACTION_SPACES[actions]

    def _observe(self):
        self.key = int(self.np_random.integers(N))
        return observation(self.style, self.key, self.np_random.uniform(-1, 1, 2))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._observe(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, self.action_space.dtype)), action
        if self.actions == "discrete":
            reward = float(action == self.key)
        elif self.actions == "multi_discrete":
            reward = 0.5 * (action[0] == self.key) + 0.5 * (action[1] == self.key % 2)
        else:
            first = np.ravel(action)[0]
            reward = 1.0 - abs(float(np.clip(first, -1, 1)) - target(self.key))
        return self._observe(), float(reward), True, False, {}


def env_id(obs: str, actions: str = "discrete") -> str:
    """The registered id of a `KeyedBandit`."""
    name = f"InjectRLSpaces/Bandit-{obs}-{actions}-v0".replace("_", "")
    if name not in gymnasium.registry:
        gymnasium.register(
            name,
            entry_point=KeyedBandit,
            kwargs={"obs": obs, "actions": actions},
            max_episode_steps=2,
        )
    return name


def keyed_batch(style: str) -> tuple[object, np.ndarray]:
    """A batch of observations of every key (as a vector env batches them) and the keys."""
    keys = np.arange(N)
    obs = [observation(style, int(k), np.zeros(2)) for k in keys]
    if style == "dict":
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}, keys
    if style == "tuple":
        return (np.stack([o[0] for o in obs]), keys), keys
    return np.stack([np.asarray(o) for o in obs]), keys


# Small and fast: one 32-unit layer, 8 envs x 8 steps per iteration.
PPO = dict(num_envs=8, rollout_len=8, epochs=4, hidden=(32,), learning_rate=3e-3, ent_coef=0.0)
IMPALA = dict(num_envs=8, rollout_len=8, hidden=(32,), learning_rate=3e-3, staleness=0)
DQN = dict(
    num_envs=4, train_every=4, gradient_steps=4, batch_size=32, learning_starts=64,
    hidden=(32,), learning_rate=3e-3, epsilon=0.2, target_update_every=8, buffer_size=2048,
)  # fmt: skip
SAC = dict(
    num_envs=4, train_every=4, gradient_steps=4, batch_size=32, learning_starts=64,
    hidden=(32,), buffer_size=2048, iterations_per_call=25,
)  # fmt: skip


def train(agent: str, env: str, total_steps: int, **overrides):
    config = dict(PPO=PPO, IMPALA=IMPALA, DQN=DQN, SAC=SAC)[agent.upper()]
    iterations = {"iterations_per_call": 10, **config, **overrides}
    a = get(agent)
    cfg = a.config_for(env, total_steps=total_steps, **{**iterations, **overrides})
    return a.train(cfg)


def check_greedy(policy, style: str, actions: str, *, tol: float = 0.0) -> None:
    """Greedy actions of every key, in a batch and one by one, have the space's shapes and
    dtypes, and are the rewarded ones (within `tol` for Box actions)."""
    batch, keys = keyed_batch(style)
    acts = policy.act(batch)
    space = ACTION_SPACES[actions]
    assert acts.shape == (N, *space.shape), acts.shape
    for k in keys:
        one = policy.act(observation(style, int(k), np.zeros(2)))
        np.testing.assert_array_equal(one, acts[k])
        assert space.contains(np.asarray(one)), one
        np.testing.assert_allclose(one, best_action(actions, int(k)), atol=tol)


@pytest.mark.slow
@pytest.mark.parametrize("style", ["discrete", "dict", "tuple"])
def test_ppo_learns_a_bandit_keyed_by_discrete_dict_and_tuple_observations(style):
    result = train("ppo", env_id(style), 2560)
    assert result.params["actor/h0"]["w"].shape[0] == N + 2  # one-hot key (+ noise)
    check_greedy(result.policy(), style, "discrete")


@pytest.mark.slow
def test_ppo_on_images_uses_the_conv_torso_and_learns():
    result = train("ppo", env_id("image"), 2560)
    assert result.params["actor/c0"]["w"].shape == (3, 3, N, 16)
    check_greedy(result.policy(), "image", "discrete")


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["ppo", "impala"])
def test_multi_discrete_actions_factorise_and_learn(agent):
    result = train(agent, env_id("tuple", "multi_discrete"), 3200)
    assert result.params["actor_out"]["w"].shape[1] == N + 2  # one logit per choice
    check_greedy(result.policy(), "tuple", "multi_discrete")
    # Sampling draws every component inside its range.
    batch, _ = keyed_batch("tuple")
    policy = result.policy()
    for seed in range(3):
        sampled = policy.act(batch, deterministic=False, seed=seed)
        assert sampled.shape == (N, 2) and sampled.dtype == np.int64
        assert all(ACTION_SPACES["multi_discrete"].contains(a) for a in sampled)


def test_multi_discrete_log_prob_and_entropy_sum_over_components():
    import distrax
    import jax.numpy as jnp

    from inject_rl.agents._actor_critic_policy import Output
    from inject_rl.agents.networks import mlp
    from inject_rl.envs import host_spaces

    policy = ActorCritic(host_spaces(env_id("tuple", "multi_discrete")), mlp((8,)))
    logits = jax.random.normal(jax.random.key(0), (4, N + 2))
    out = Output(logits, jnp.zeros((0,)), jnp.zeros(4))
    action = jnp.array([[0, 1], [2, 0], [1, 1], [2, 1]])
    first, second = distrax.Categorical(logits[:, :N]), distrax.Categorical(logits[:, N:])
    dist = policy.dist(out)
    np.testing.assert_allclose(
        dist.log_prob(action), first.log_prob(action[:, 0]) + second.log_prob(action[:, 1]),
        rtol=1e-6,
    )  # fmt: skip
    np.testing.assert_allclose(dist.entropy(), first.entropy() + second.entropy(), rtol=1e-6)


@pytest.mark.slow
def test_dqn_learns_a_bandit_keyed_by_a_discrete_observation():
    result = train("dqn", env_id("discrete"), 1600)
    check_greedy(result.policy(), "discrete", "discrete")


@pytest.mark.slow
def test_sac_acts_on_dict_observations():
    result = train("sac", env_id("dict", "box"), 400)
    assert result.params["actor"]["actor/h0"]["w"].shape[0] == N + 2
    batch, _ = keyed_batch("dict")
    acts = result.policy().act(batch)
    assert acts.shape == (N, 1) and acts.dtype == np.float32
    assert np.all(np.abs(acts) <= 1.0)


def _no_loop(*args, **kwargs):
    raise AssertionError("the run started (and compiled) before the space was checked")


@pytest.mark.parametrize(
    "agent, obs, actions, match",
    [
        (
            "sac",
            "dict",
            "unbounded",
            r"sac needs a continuous \(bounded Box\) action space, but .*\(-inf",
        ),
        ("sac", "tuple", "multi_discrete", r"sac needs a continuous .*MultiDiscrete\(\[3 2\]\)"),
        ("dqn", "dict", "multi_discrete", r"dqn needs a discrete action space, but .*MultiDisc"),
        ("ppo", "dict", "multi_binary", r"action space MultiBinary\(2\) is not supported; "),
        ("dqn", "text", "discrete", r"observation space Text\(1, 4, .* is not supported; "),
    ],
    ids=["sac-unbounded-box", "sac-multi-discrete", "dqn-multi-discrete", "multi-binary", "text"],
)
def test_other_spaces_are_refused_before_any_compile(agent, obs, actions, match, monkeypatch):
    monkeypatch.setattr(loops, "run_sebulba", _no_loop)
    with pytest.raises(ValueError, match=match) as info:
        train(agent, env_id(obs, actions), 64)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("agent", ["ppo", "impala"])
def test_the_gaussian_policies_act_in_a_rank_2_box(agent):
    # The head is flat: its actions reached the env as [B, 2], not [B, 1, 2], and failed.
    from inject_rl.agents import Policy
    from inject_rl.envs import host_spaces

    a = get(agent)
    extra = PPO if agent == "ppo" else IMPALA
    cfg = a.config_for(env_id("discrete", "matrix"), total_steps=128, **extra)
    res = a.train(cfg)
    acts = Policy(a, cfg, res.params, host_spaces(cfg.env_id)).act(np.arange(N))
    assert acts.shape == (N, 1, 2) and np.all(np.isfinite(acts))


@pytest.mark.parametrize("agent", ["ppo", "impala"])
def test_the_gaussian_policies_take_unbounded_box_actions(agent):
    from inject_rl.agents import Policy
    from inject_rl.envs import host_spaces

    env = host_spaces(env_id("discrete", "unbounded"))
    a = get(agent)
    cfg = a.config_for(env.id, hidden=(8,))
    acting = a.policy(cfg, env, a.network(cfg, env.obs_shape))
    params = jax.jit(lambda: ActorCritic(env, a.network(cfg, env.obs_shape)).net.init(
        jax.random.key(0), np.zeros((1, *env.obs_shape), np.float32)))()  # fmt: skip
    assert acting.greedy(params, np.eye(N + 2, dtype=np.float32)).shape == (N + 2, 1)
    acts = Policy(a, cfg, params, env).act(np.arange(N))
    assert acts.shape == (N, 1) and np.all(np.isfinite(acts))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A not yet imported module that registers `InjectRLUser/Bandit-v0` when imported."""
    name = "inject_rl_user_bandit"
    (tmp_path / f"{name}.py").write_text(
        "import gymnasium\n"
        "gymnasium.register('InjectRLUser/Bandit-v0', max_episode_steps=2,\n"
        "    entry_point='tests.agents.test_spaces:KeyedBandit', kwargs={'obs': 'dict'})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    gymnasium.registry.pop("InjectRLUser/Bandit-v0", None)


@pytest.mark.slow
def test_a_module_env_id_trains_and_loads_as_in_gymnasium_make(user_module, tmp_path):
    env = f"{user_module}:InjectRLUser/Bandit-v0"
    result = train("ppo", env, 2560)
    assert result.config.env_id == env
    check_greedy(result.policy(), "dict", "discrete")
    # A run directory as `inject-rl train` writes it, loaded in a "fresh process": neither the
    # module nor the id is there until load_policy imports the module through the id.
    run = tmp_path / "run"
    run.mkdir()
    runs.write_json(
        run / runs.CONFIG, {"agent": "ppo", "config": get("ppo").config_to_json(result.config)}
    )
    runs.save_params(run / runs.PARAMS, result.params)
    sys.modules.pop(user_module)
    gymnasium.registry.pop("InjectRLUser/Bandit-v0")
    policy = load_policy(run)
    assert "InjectRLUser/Bandit-v0" in gymnasium.registry
    check_greedy(policy, "dict", "discrete")
    assert policy.evaluate(episodes=4) == 1.0
