"""The presets `config_for(env_id)` chooses (issue 13 items 2 and 5): continuous-control presets
turn the normalisation on, and PPO's reach the issue's figures on host envs, 3 seeds each,
scored by 20 greedy episodes of the final policy (the slow suite; about a minute a seed on 2
CPU cores)."""

import dataclasses

import pytest

from inject_rl.agents import impala, ppo, sac


@pytest.mark.parametrize(
    "env_id, normalize_obs, normalize_reward",
    [
        ("Pendulum-v1", False, True),
        ("MountainCarContinuous-v0", True, True),
        ("CartPole-v1", False, False),
        ("phys2d/CartPole-v1", False, False),
    ],
    ids=["pendulum", "mountain-car-continuous", "cartpole", "phys2d-cartpole"],
)
def test_ppo_presets_choose_the_normalisation(env_id, normalize_obs, normalize_reward):
    cfg = ppo.config_for(env_id).validate()
    assert (cfg.normalize_obs, cfg.normalize_reward) == (normalize_obs, normalize_reward)


def test_envpool_ids_take_the_gymnasium_ids_preset():
    from inject_rl.agents import dqn

    cfg = ppo.config_for("envpool/Pendulum-v1", seed=3)
    want = ppo.config_for("Pendulum-v1", seed=3)
    assert cfg.env_id == "envpool/Pendulum-v1"
    assert cfg == dataclasses.replace(want, env_id="envpool/Pendulum-v1")
    assert dqn.config_for("envpool/CartPole-v1").n_step == dqn.config_for("CartPole-v1").n_step
    assert ppo.config_for("envpool/Pong-v5") == ppo.Config(env_id="envpool/Pong-v5")


def test_normalisation_is_off_by_default():
    for agent in (ppo, impala, sac):
        cfg = agent.Config()
        assert not cfg.normalize_obs and not cfg.normalize_reward, agent.AGENT.name


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_ppo_pendulum_v1_preset_reaches_minus_250(seed):
    cfg = ppo.config_for("Pendulum-v1", seed=seed)
    res = ppo.train(cfg)
    assert int(res.metrics["step"][-1]) <= 210_000
    assert ppo.evaluate(res, episodes=20) >= -250


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_ppo_mountain_car_continuous_preset_reaches_the_flag(seed):
    cfg = ppo.config_for("MountainCarContinuous-v0", seed=seed)
    res = ppo.train(cfg)
    assert int(res.metrics["step"][-1]) <= 110_000
    assert ppo.evaluate(res, episodes=20) > 0  # a policy that never reaches the flag scores < 0
