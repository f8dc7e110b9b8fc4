"""The actor side of the sebulba loop: host rollouts, the params hand-over, actor threads."""

from __future__ import annotations

import queue
import threading
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from inject_rl.loops._rollout import Transition

# How often blocked threads look at the stop flag and the learner at the actors' errors.
POLL_S = 0.05


class HostRollout(NamedTuple):
    """`rollout_len` steps of a batch of host envs (numpy on the actor, arrays in `learn`)."""

    traj: Transition  # [T, B, ...]; `extras` are `act`'s outputs at `obs`
    # [B, *obs] float32: observation to act on after the rollout (bootstrap); like `traj.obs`,
    # the HostEnv's preprocessed network inputs (one-hot, flattened Dict/Tuple, images)
    last_obs: Any
    episode_return: Any  # [T, B] float32: return of the episode that ended at this step, else 0
    episode_length: Any  # [T, B] int32: its length (>= 1), else 0


def host_episode_summary(rollout: HostRollout) -> dict[str, jax.Array]:
    """The rollout's episode signals, as `EpisodeStats.summary` gives them.

    `episode_return` and `episode_length` are the means over the episodes that ended in the
    rollout (NaN when none did), `episode_count` their number (float32); pass the result
    through `inject_rl.signals.sync` to weight devices by their counts.
    """
    ended = rollout.episode_length > 0
    n = jnp.sum(ended).astype(jnp.float32)
    safe = jnp.maximum(n, 1.0)
    ret = jnp.sum(jnp.where(ended, rollout.episode_return, 0.0)) / safe
    length = jnp.sum(jnp.where(ended, rollout.episode_length, 0)).astype(jnp.float32) / safe
    return {
        "episode_return": jnp.where(n > 0, ret, jnp.nan),
        "episode_length": jnp.where(n > 0, length, jnp.nan),
        "episode_count": n,
    }


class Stopped(Exception):
    """Raised inside an actor thread when the run is being stopped."""


class ParamVersions:
    """Params by learner version; an actor blocks until the version it needs is published."""

    def __init__(self, keep: int):
        self._cond = threading.Condition()
        self._params: dict[int, Any] = {}
        self._keep = keep

    def publish(self, version: int, params: Any) -> None:
        with self._cond:
            self._params[version] = params
            for v in [v for v in self._params if v < version - self._keep]:
                del self._params[v]
            self._cond.notify_all()

    def get(self, version: int, stop: threading.Event) -> Any:
        with self._cond:
            while version not in self._params:
                if stop.is_set():
                    raise Stopped
                self._cond.wait(POLL_S)
            return self._params[version]


class Actor:
    """One actor thread: steps its envs with the params of a fixed lag, queues rollouts."""

    def __init__(
        self,
        index,
        env,
        act_step,
        versions,
        stop,
        *,
        key,
        seed,
        rollout_len,
        staleness,
        first,
        last,
        device,
        maxsize,
    ):
        self.index, self.env, self.act_step, self.versions = index, env, act_step, versions
        self.stop, self.key, self.seed, self.rollout_len = stop, key, seed, rollout_len
        self.staleness, self.first, self.last, self.device = staleness, first, last, device
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._main, name=f"sebulba-actor-{index}", daemon=True
        )

    def _main(self) -> None:
        try:
            self._run()
        except Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which re-raises
            self.error = e
            self.stop.set()

    def _run(self) -> None:
        obs = self.env.reset(seed=self.seed)
        for i in range(self.first, self.last):
            version = max(self.first, i - self.staleness)
            params = jax.device_put(self.versions.get(version, self.stop), self.device)
            key = jax.random.fold_in(self.key, i)
            steps = []
            for _ in range(self.rollout_len):
                action, extras, key = self.act_step(params, obs, key)
                action, extras = jax.device_get((action, extras))
                ts = self.env.step(action)
                steps.append((obs, action, ts, extras))
                obs = ts.obs
                if self.stop.is_set():
                    raise Stopped
            self._put(stack(steps, obs))

    def _put(self, item: HostRollout) -> None:
        while True:
            try:
                self.queue.put(item, timeout=POLL_S)
                return
            except queue.Full:
                if self.stop.is_set():
                    raise Stopped from None

    def take(self) -> HostRollout:
        """The next rollout; `Stopped` once the run is stopping (an actor failed) or this
        actor ended without one."""
        while True:
            try:
                return self.queue.get(timeout=POLL_S)
            except queue.Empty:
                if self.stop.is_set():
                    raise Stopped from None
                if not self.thread.is_alive():  # it may have put its last rollout meanwhile
                    try:
                        return self.queue.get_nowait()
                    except queue.Empty:
                        raise Stopped from None


def stack(steps, last_obs) -> HostRollout:
    obs, action, ts, extras = zip(*steps, strict=True)
    traj = Transition(
        obs=np.stack(obs),
        action=np.stack(action),
        reward=np.stack([t.reward for t in ts]),
        terminated=np.stack([t.terminated for t in ts]),
        truncated=np.stack([t.truncated for t in ts]),
        next_obs=np.stack([t.next_obs for t in ts]),
        extras=jax.tree.map(lambda *x: np.stack(x), *extras),
    )
    return HostRollout(
        traj,
        last_obs,
        np.stack([t.episode_return for t in ts]),
        np.stack([t.episode_length for t in ts]),
    )


def actor_error(actors: list[Actor]) -> BaseException:
    for a in actors:
        if a.error is not None:
            a.error.add_note(f"raised in sebulba actor thread {a.index}; the run was stopped")
            return a.error
    return RuntimeError("sebulba: an actor thread stopped without an error or a rollout")
