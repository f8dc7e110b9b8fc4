"""Throughput ceiling: our PPO beside a minimal one-function PPO (purejaxrl style), same layout.

The minimal PPO is written here in one function: Haiku MLPs 64x64 (tanh, separate actor and
critic), rlax `truncated_generalized_advantage_estimation`, a plain
`optax.chain(clip_by_global_norm(0.5), adam(lr, eps=1e-5))`, gymnasium's phys2d
`CartPoleFunctional` stepped in-graph with autoreset and CartPole-v1's 500-step time limit, and
nested `lax.scan`s over iterations, epochs and minibatches, all in ONE jitted function. It does
the same maths as ours (advantages normalised per minibatch, a critic pass over the final
observations to bootstrap truncated episodes) but none of our machinery: no injected optimizer,
no signals, no episode-statistics windows, no device mapping.

Both run the layout 8 envs x 128 steps, 4 epochs x 4 minibatches, hidden (64, 64), gamma 0.99,
lambda 0.95, for the same number of env steps. Ours keeps its default kl_target optimizer and
reports `train_s` (compiled calls, compile excluded); the minimal one is compiled ahead of time,
called once to warm up, then each repetition times one call. Repetitions alternate the variants.

    python scripts/bench_ceiling.py [--envs 8] [--steps 100000] [--reps 3] [--calls 1] [--packed]

`--packed` adds a third variant, ours with its optimizer state packed (`optim.packed`, one integer
vector for the state's scalars: fewer kernels per gradient step, which a GPU pays per launch),
and a `packed/minimal throughput ratio` line. The packed state's updates match the unpacked ones
to the last bits of float rounding (XLA fuses them differently), which a run then amplifies:
the two learning curves part after a few iterations, as two seeds' would.

Ends with `ours/minimal throughput ratio: X.XX` (env steps/s, medians).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rlax
from gymnasium.envs.phys2d.cartpole import CartPoleFunctional

from inject_rl import optim
from inject_rl.agents import ppo

ROLLOUT_LEN = 128
EPOCHS = 4
NUM_MINIBATCHES = 4
HIDDEN = (64, 64)
GAMMA = 0.99
GAE_LAMBDA = 0.95
MAX_EPISODE_STEPS = 500  # CartPole-v1's time limit


class EnvState(NamedTuple):
    physics: jax.Array  # [4] cart position/velocity, pole angle/velocity
    t: jax.Array  # shape=(), dtype=int32; steps in the current episode
    ret: jax.Array  # shape=(), dtype=float32; return so far in the current episode


class Transition(NamedTuple):
    obs: jax.Array  # [T, B, 4]
    action: jax.Array  # [T, B]
    log_prob: jax.Array  # [T, B]
    value: jax.Array  # [T, B]
    reward: jax.Array  # [T, B]
    done: jax.Array  # [T, B] terminated or truncated
    truncated: jax.Array  # [T, B]
    next_obs: jax.Array  # [T, B, 4] observation before any reset
    ended_return: jax.Array  # [T, B] the episode's return where it ended, else 0


def make_minimal(num_envs: int, num_iterations: int, lr: float):
    """`train(key) -> metrics` of the minimal PPO; metrics hold one value per iteration."""
    env = CartPoleFunctional()
    env_params = env.get_default_params()
    num_actions = int(env.action_space.n)
    batch = num_envs * ROLLOUT_LEN
    mb_size = batch // NUM_MINIBATCHES
    clip_eps, ent_coef, vf_coef = 0.2, 0.0, 0.5  # ours' defaults

    def forward(obs):
        logits = hk.nets.MLP([*HIDDEN, num_actions], activation=jnp.tanh, name="actor")(obs)
        value = hk.nets.MLP([*HIDDEN, 1], activation=jnp.tanh, name="critic")(obs)[..., 0]
        return logits, value

    net = hk.without_apply_rng(hk.transform(forward))
    opt = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(lr, eps=1e-5))

    def env_reset(key):
        physics = env.initial(key, env_params)
        return EnvState(physics, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))

    def env_step(state: EnvState, action, key):
        k_step, k_reset = jax.random.split(key)
        nxt = env.transition(state.physics, action, k_step, env_params)
        reward = jnp.asarray(
            env.reward(state.physics, action, nxt, k_step, env_params), jnp.float32
        )
        terminated = env.terminal(nxt, k_step, env_params)
        t = state.t + 1
        truncated = (t >= MAX_EPISODE_STEPS) & ~terminated
        done = terminated | truncated
        ret = state.ret + reward
        fresh = env_reset(k_reset)
        stepped = EnvState(nxt, t, ret)
        new = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, stepped)
        next_obs = env.observation(nxt, k_step, env_params)
        return new, (reward, done, truncated, next_obs, jnp.where(done, ret, 0.0))

    def loss_fn(params, mb):
        obs, action, old_log_prob, adv, target = mb
        logits, value = net.apply(params, obs)
        log_probs = jax.nn.log_softmax(logits)
        log_prob = jnp.take_along_axis(log_probs, action[:, None], axis=-1)[:, 0]
        ratio = jnp.exp(log_prob - old_log_prob)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg_loss = rlax.clipped_surrogate_pg_loss(ratio, adv, clip_eps)
        value_loss = 0.5 * jnp.mean(jnp.square(value - target))
        entropy = -jnp.mean(jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1))
        return pg_loss + vf_coef * value_loss - ent_coef * entropy

    def iteration(carry, _):
        params, opt_state, env_state, key = carry

        def act(c, _):
            env_state, key = c
            key, k_act, k_env = jax.random.split(key, 3)
            obs = jax.vmap(env.observation, in_axes=(0, None, None))(
                env_state.physics, k_env, env_params
            )
            logits, value = net.apply(params, obs)
            action = jax.random.categorical(k_act, logits)
            log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
            env_state, (reward, done, trunc, next_obs, ended) = jax.vmap(env_step)(
                env_state, action, jax.random.split(k_env, num_envs)
            )
            tr = Transition(obs, action, log_prob, value, reward, done, trunc, next_obs, ended)
            return (env_state, key), tr

        (env_state, key), traj = jax.lax.scan(act, (env_state, key), None, length=ROLLOUT_LEN)

        # Bootstrap from the last observation, and from next_obs where time ran out.
        _, last_value = net.apply(params, env_state.physics)
        _, next_value = net.apply(params, traj.next_obs)
        r_t = traj.reward + GAMMA * next_value * traj.truncated
        discount_t = GAMMA * (1.0 - traj.done.astype(jnp.float32))
        values = jnp.concatenate([traj.value, last_value[None]], axis=0)
        gae = jax.vmap(
            rlax.truncated_generalized_advantage_estimation, in_axes=(1, 1, None, 1), out_axes=1
        )
        adv = gae(r_t, discount_t, GAE_LAMBDA, values)
        flat = jax.tree.map(
            lambda x: x.reshape((batch, *x.shape[2:])),
            (traj.obs, traj.action, traj.log_prob, adv, adv + traj.value),
        )

        def minibatch(c, mb):
            params, opt_state = c
            grads = jax.grad(loss_fn)(params, mb)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        def epoch(c, k):
            perm = jax.random.permutation(k, batch)
            mbs = jax.tree.map(
                lambda x: x[perm].reshape((NUM_MINIBATCHES, mb_size, *x.shape[1:])), flat
            )
            return jax.lax.scan(minibatch, c, mbs)[0], None

        key, k_epochs = jax.random.split(key)
        (params, opt_state), _ = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(k_epochs, EPOCHS)
        )
        count = jnp.sum(traj.done)
        metrics = {"return_sum": jnp.sum(traj.ended_return), "episode_count": count}
        return (params, opt_state, env_state, key), metrics

    def train(key):
        k_params, k_env, k_run = jax.random.split(key, 3)
        params = net.init(k_params, jnp.zeros((1, 4), jnp.float32))
        env_state = jax.vmap(env_reset)(jax.random.split(k_env, num_envs))
        carry = (params, opt.init(params), env_state, k_run)
        _, metrics = jax.lax.scan(iteration, carry, None, length=num_iterations)
        return metrics

    return train


def ours_config(num_envs: int, num_iterations: int, per_call: int) -> ppo.Config:
    """Our PPO in this layout: `num_iterations` iterations of `num_envs` x ROLLOUT_LEN env
    steps, `per_call` of them per host call; the rest of the Config is our default."""
    return ppo.Config(
        total_steps=num_iterations * num_envs * ROLLOUT_LEN,
        num_envs=num_envs,
        rollout_len=ROLLOUT_LEN,
        epochs=EPOCHS,
        num_minibatches=NUM_MINIBATCHES,
        hidden=HIDDEN,
        gamma=GAMMA,
        gae_lambda=GAE_LAMBDA,
        iterations_per_call=per_call,
    )


def final_return(returns: np.ndarray, counts: np.ndarray) -> float:
    """Count-weighted mean episode return over the last tenth of the iterations."""
    n = max(1, len(counts) // 10)
    counts = np.asarray(counts[-n:], np.float64)
    total = np.nansum(np.where(counts > 0, np.asarray(returns[-n:], np.float64), 0.0) * counts)
    return float(total / counts.sum()) if counts.sum() > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=8, help="num_envs of both (default 8)")
    parser.add_argument("--steps", type=float, default=1e5, help="env steps (rounded up)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1, help="host calls of ours (default 1)")
    parser.add_argument("--lr", type=float, default=2.5e-4, help="minimal PPO's Adam lr")
    parser.add_argument(
        "--packed", action="store_true", help="also ours with optim.packed(default optimizer)"
    )
    args = parser.parse_args()
    if args.envs < 1 or args.steps < 1 or args.reps < 1 or args.calls < 1:
        parser.error(f"--envs, --steps, --reps and --calls must be >= 1, got {vars(args)}")
    if (args.envs * ROLLOUT_LEN) % NUM_MINIBATCHES:
        parser.error(f"--envs * {ROLLOUT_LEN} must be divisible by {NUM_MINIBATCHES}")

    per_iteration = args.envs * ROLLOUT_LEN
    per_call = math.ceil(math.ceil(args.steps / per_iteration) / args.calls)
    num_iterations = per_call * args.calls
    steps = num_iterations * per_iteration
    cfg = ours_config(args.envs, num_iterations, per_call)
    dev = jax.devices()[0]
    print(f"# jax {jax.__version__}, backend {jax.default_backend()}, device {dev.device_kind}")
    print(
        f"# {args.envs} envs x {ROLLOUT_LEN} steps, {EPOCHS} epochs x {NUM_MINIBATCHES} "
        f"minibatches, hidden {HIDDEN}; {num_iterations} iterations = {steps} env steps "
        f"(ours: {args.calls} call(s) of {per_call}); median of {args.reps}"
    )

    key = jax.random.key(0)
    t0 = time.perf_counter()
    minimal = jax.jit(make_minimal(args.envs, num_iterations, args.lr)).lower(key).compile()
    minimal_compile = time.perf_counter() - t0
    jax.block_until_ready(minimal(key))  # the warm-up call; the timed calls come after it

    ours = {"ours": None}
    if args.packed:
        ours["packed"] = optim.packed(ppo.default_optimizer(cfg))
    rows: dict[str, list[tuple[float, ...]]] = {name: [] for name in (*ours, "minimal")}
    for _ in range(args.reps):  # alternate the variants so noise hits all alike
        for name, optimizer in ours.items():
            res = ppo.train(cfg, optimizer=optimizer)
            m = res.metrics
            ret = final_return(m["episode_return"], m["episode_count"])
            rows[name].append((int(m["step"][-1]) / res.train_s, res.train_s, res.compile_s, ret))

        t = time.perf_counter()
        out: dict[str, Any] = jax.device_get(minimal(key))
        train_s = time.perf_counter() - t
        counts = out["episode_count"]
        returns = out["return_sum"] / np.maximum(counts, 1)
        ret = final_return(returns, counts)
        rows["minimal"].append((steps / train_s, train_s, minimal_compile, ret))

    print(f"{'variant':>8s} {'steps/s':>12s} {'train s':>8s} {'compile s':>9s} {'return':>7s}")
    med = {}
    for name, runs in rows.items():
        med[name] = [statistics.median(col) for col in zip(*runs, strict=True)]
        sps, train_s, compile_s, ret = med[name]
        print(f"{name:>8s} {sps:12.0f} {train_s:8.3f} {compile_s:9.2f} {ret:7.1f}")
    returns = ", ".join(f"{name} {m[3]:.1f}" for name, m in med.items())
    print(f"final mean episode return (last tenth of training): {returns}")
    if args.packed:
        print(f"packed/minimal throughput ratio: {med['packed'][0] / med['minimal'][0]:.2f}")
    print(f"ours/minimal throughput ratio: {med['ours'][0] / med['minimal'][0]:.2f}")


if __name__ == "__main__":
    main()
