"""stable-baselines3's PPO on CartPole-v1 for the side-by-side scripts (the `peers` extra)."""

from __future__ import annotations

from typing import Any


def rl_zoo_ppo(seed: int, **changes: Any):
    """SB3 PPO on 8 CartPole-v1 envs with rl-baselines3-zoo's tuned hyperparameters (n_steps
    32, batch 256, 20 epochs, gamma 0.98, gae_lambda 0.8, no entropy bonus, lr and clip linearly
    decayed from 1e-3 and 0.2), with `changes` to any of them (`net_arch`: the policy's layers).

    Raises:
      ImportError: stable-baselines3 is not installed (pip install -e ".[peers]").
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    def linear(v):
        return lambda progress_remaining: progress_remaining * v

    settings: dict[str, Any] = dict(
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
    )
    net_arch = changes.pop("net_arch", None)
    settings.update(changes)
    return PPO(
        "MlpPolicy",
        make_vec_env("CartPole-v1", n_envs=8, seed=seed),
        seed=seed,
        device="cpu",
        verbose=0,
        policy_kwargs=None if net_arch is None else {"net_arch": net_arch},
        **settings,
    )
