"""GPU check: JaxEnv.step_batch's resets under one lax.cond (current) vs vmap(step) (selects)."""

import statistics

import jax

from inject_rl.agents import ppo
from inject_rl.envs import _jax_env

cond = _jax_env.JaxEnv.step_batch


def select(self, state, action, keys):
    return jax.vmap(self.step)(state, action, keys)


print(jax.devices()[0].device_kind, jax.__version__, flush=True)
for envs, steps, reps in ((8, 100_352, 3), (2048, 20_185_088, 3)):
    cfg = ppo.Config(
        total_steps=steps,
        num_envs=envs,
        rollout_len=128,
        epochs=4,
        num_minibatches=4,
        hidden=(64, 64),
        gamma=0.99,
        gae_lambda=0.95,
        iterations_per_call=steps // (envs * 128),
    )
    res = {"cond": [], "select": []}
    for rep in range(reps):
        for name, fn in (("cond", cond), ("select", select)):
            _jax_env.JaxEnv.step_batch = fn
            r = ppo.train(cfg)
            res[name].append(r.train_s)
            print(
                f"{envs} envs {name} rep {rep}: train {r.train_s:.3f} s "
                f"compile {r.compile_s:.2f} s, {steps / r.train_s:,.0f} steps/s",
                flush=True,
            )
    m = {k: statistics.median(v) for k, v in res.items()}
    print(
        f"{envs} envs: median train s cond {m['cond']:.3f} select {m['select']:.3f}; "
        f"select/cond throughput {m['cond'] / m['select']:.3f}",
        flush=True,
    )
