"""One process of test_distributed's 2-process run: IMPALA on CartPole-v1 host envs.

Run by `inject_rl.loops.launch_processes`; writes this process's local replicas of the final
params and optimizer state (schedule states included) to `<out_dir>/proc<i>.npz`.
"""

import faulthandler
import sys
from pathlib import Path


def main(out_dir: str) -> None:
    # A hang (e.g. in a collective) shows every thread's stack instead of a silent timeout.
    faulthandler.dump_traceback_later(75, exit=True)
    from inject_rl import loops

    if not loops.init_distributed_from_env():
        raise SystemExit("run me through inject_rl.loops.launch_processes")
    import jax
    import jax.numpy as jnp
    import numpy as np

    from inject_rl.agents import impala

    assert jax.device_count() == 4 and jax.local_device_count() == 2, jax.devices()
    # The plain cross-process check first: psum over 4 global devices.
    ids = jnp.arange(2) + 2 * jax.process_index()
    total = jax.pmap(lambda x: jax.lax.psum(x, "i"), axis_name="i", devices=jax.devices())(ids)
    assert np.asarray(total).tolist() == [6, 6], total

    cfg = impala.Config(
        num_envs=8, rollout_len=8, total_steps=8 * 8 * 200, iterations_per_call=50, seed=0
    )
    res = impala.train(cfg)
    state = (res.state.params, res.state.opt_state)
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    arrays = {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}
    arrays["metrics/episode_count"] = res.metrics["episode_count"]
    arrays["metrics/hp/learning_rate"] = res.metrics["hp/learning_rate"]
    np.savez(Path(out_dir) / f"proc{jax.process_index()}.npz", **arrays)
    print(f"process {jax.process_index()}: {len(res.metrics['step'])} learner steps", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
