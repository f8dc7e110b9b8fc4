"""`load_policy` on a run directory of `inject-rl train` acts on a plain gymnasium env, as a user
of stable-baselines3's `predict` would (issue 11's figures; slow: they train to the task)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from inject_rl.agents import load_policy
from inject_rl.cli import main


def episodes_return(policy, env_id: str, episodes: int = 10, seed: int = 100) -> float:
    """Mean return of `episodes` greedy episodes of `policy` on `gym.make(env_id)`."""
    env = gym.make(env_id)
    total = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, ret = False, 0.0
        while not done:
            action = policy.act(obs)
            assert env.action_space.contains(action), action
            obs, reward, terminated, truncated, _ = env.step(action)
            ret, done = ret + float(reward), terminated or truncated
        total.append(ret)
    env.close()
    return float(np.mean(total))


@pytest.mark.slow
@pytest.mark.parametrize(
    "agent, train_env, act_env, threshold",
    [
        ("ppo", "CartPole-v1", "CartPole-v1", 475),
        ("ppo", "phys2d/CartPole-v1", "CartPole-v1", 475),  # trained on device, acts on host
        ("sac", "Pendulum-v1", "Pendulum-v1", -250),  # continuous actions
    ],
    ids=["ppo-host", "ppo-phys2d-on-host", "sac-pendulum"],
)
def test_a_loaded_policy_solves_the_plain_gymnasium_env(
    agent, train_env, act_env, threshold, tmp_path
):
    out = tmp_path / "run"
    args = ["train", "--agent", agent, "--env", train_env, "--out", str(out), "--quiet"]
    assert main(args) == 0
    policy = load_policy(out)
    assert policy.act(np.zeros(policy.observation_space.shape)) is not None
    assert episodes_return(policy, act_env) >= threshold
