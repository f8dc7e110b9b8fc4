"""The member axis: a population of one agent's runs trained as one compiled program.

Sweeps and population-based training (PBT) are the same thing underneath: `M` members, each a
whole training state of the agent, `vmap`ped on every device (each member spans all the run's
devices, data-parallel as a single run is), stepped together. A member differs from another by
its seed and by any numeric Config fields given per member (`values`): those values are part of
the training state, not constants of the program, so the learner is rebuilt inside the traced
step from each member's Config. The same holds for the optimizer: `optimizer(cfg)` is built per
member, and since an injected hyperparameter's value and a schedule's constants live in the
optimizer state, members with other rates, KL targets or entropy coefficients share one
program. A field that shapes the program (a size, a count) cannot vary; that is refused with one
line before anything runs.

PBT (Jaderberg et al. 2017) runs inside the compiled step: every `interval` iterations members are
ranked by their mean training episode return since the last exploit step (synced over devices
like every episode statistic, so every device ranks alike; a member that finished no episode in
that window is not ranked), the bottom `fraction` copies a random top member's training state —
params, target networks, the whole optimizer state with every schedule's state, its Config
values — and multiplies the chosen hyperparameters by a random factor. The member keeps its own
envs, replay buffer, PRNG key, step count (fields named in `KEEP`) and seed. Everything is
deterministic given the seed, and every device makes the same choices (the PBT key is replicated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from inject_rl import loops
from inject_rl.agents._contract import Agent
from inject_rl.agents._members import member_config, member_learner, member_values, unread_values
from inject_rl.agents._pbt import PBT, PopulationState, _exploit
from inject_rl.agents._train import Diverged, _reported, check_optimizer, spaces


class PopulationResult(NamedTuple):
    """What `train_population` returns."""

    params: Any  # the best member's final params (the run's params)
    opt_state: Any  # the best member's optimizer state
    metrics: dict[str, np.ndarray]  # name -> [iterations, M]
    state: Any  # the final `PopulationState`, leading [num_devices] axis on every leaf
    config: Any  # the base Config (members differ by `values`)
    compile_s: float
    train_s: float
    agent: Any
    best: int  # index of the best member (highest final score among the finite ones)
    values: dict[str, np.ndarray]  # each member's final Config values (PBT copies them)

    @property
    def size(self) -> int:
        return int(np.asarray(self.state.score).shape[-1])

    def member_config(self, i: int) -> Any:
        """Member `i`'s Config (its values as they are at the end)."""
        return member_config(self.config, {k: v[i] for k, v in self.values.items()})

    def member_params(self, i: int) -> Any:
        """Member `i`'s final params (as the agent keeps them, e.g. DQN's best evaluated)."""
        one = jax.tree.map(lambda x: x[i], loops.first_replica(self.state).members)
        return self.agent.final_params(one)

    def policy(self, network: Any = None) -> Any:
        """The best member's policy (`inject_rl.agents.Policy`)."""
        from inject_rl.agents._policy import Policy

        return Policy.of(self.agent, self.member_config(self.best), self.params, network=network)


def population_learner(
    agent: Agent,
    cfg: Any,
    values: Mapping[str, np.ndarray],
    optimizer: Callable[[Any], optax.GradientTransformationExtraArgs],
    num_devices: int,
    network: Callable | None = None,
    pbt: PBT | None = None,
    env: Any = None,
) -> tuple[Callable, Callable]:
    """`(init, iteration)` of the population on the anakin loop (what `loops.run` takes)."""
    build = member_learner(agent, cfg, optimizer, num_devices, network, env)
    size = len(next(iter(values.values())))

    def init(device_index):
        consts = {k: jnp.asarray(v) for k, v in values.items()}
        # `lax.map`, not `vmap`: a batched QR (the orthogonal initialiser under `vmap`) runs
        # jaxlib's LAPACK kernel, which fans the batch out over XLA's CPU thread pool and waits
        # for it from a thread of that pool. With as many devices as pool threads (2 fake
        # devices on 2 cores) every thread waited, and the run hung in its init. One member at a
        # time, each QR is a single matrix, done in place.
        members = jax.lax.map(lambda m: build(m).init(device_index), consts)
        key = jax.random.fold_in(jax.random.key(cfg.seed), 0x5EED)
        score = jnp.full((size,), -jnp.inf, jnp.float32)
        window = jnp.zeros((size, 2), jnp.float32)
        return PopulationState(members, consts, score, window, key, jnp.zeros((), jnp.int32))

    def iteration(ps: PopulationState, axis_name: str | None):
        def one(state, member):
            return _reported(build(member).iteration)(state, axis_name)

        members, metrics = jax.vmap(one)(ps.members, ps.values)
        ret = metrics["episode_return"]
        smooth = pbt.smoothing if pbt is not None else 0.9
        score = jnp.where(
            jnp.isfinite(ret),
            jnp.where(jnp.isfinite(ps.score), smooth * ps.score + (1 - smooth) * ret, ret),
            ps.score,
        )
        diverged = metrics["diverged"] > 0
        score = jnp.where(diverged, -jnp.inf, score)
        finite = jnp.isfinite(ret)
        window = ps.window + jnp.stack([jnp.where(finite, ret, 0.0), finite], axis=1)
        window = jnp.where(diverged[:, None], jnp.array([-jnp.inf, 1.0]), window)
        ps = ps._replace(members=members, score=score, window=window, iteration=ps.iteration + 1)
        source = jnp.full((size,), -1, jnp.int32)
        if pbt is not None:
            ps, source = jax.lax.cond(
                ps.iteration % pbt.interval == 0,
                lambda p: _exploit(p, pbt, size),
                lambda p: (p, source),
                ps,
            )
        extra = {"score": ps.score, "pbt/source": source}
        extra.update({f"cfg/{k}": v for k, v in ps.values.items() if k != "seed"})
        return ps, {**metrics, **extra}

    return init, iteration


def best_member(score: np.ndarray) -> int:
    """The member with the highest finite score (the lowest index among ties; 0 if none)."""
    score = np.where(np.isfinite(score), score, -np.inf)
    return int(np.argmax(score))


def train_population(
    agent: Agent,
    cfg: Any = None,
    *,
    size: int | None = None,
    values: Mapping[str, Sequence[Any]] | None = None,
    pbt: PBT | None = None,
    optimizer: Callable[[Any], optax.GradientTransformationExtraArgs] | None = None,
    network: Callable | None = None,
    num_devices: int | None = None,
    callback: Callable[..., None] | None = None,
    resume: tuple[Any, int] | None = None,
    program_key: str | None = None,
) -> PopulationResult:
    """Trains a population of `agent` runs as one program (in-graph `phys2d/*` envs).

    Args:
      agent: the agent.
      cfg: the base Config (None: the defaults).
      size: number of members (may be left out when `values` are given).
      values: Config field name -> one number per member (`lr_init`, `ent_coef`, `seed`...).
        Seeds default to `cfg.seed + i`.
      pbt: population-based training's rule (None: members train independently, a sweep).
      optimizer: `cfg -> optimizer`, built per member from its Config (default: the agent's
        `default_optimizer`). Hyperparameters PBT perturbs must be injected by it.
      network, num_devices, callback, resume, program_key: as `inject_rl.agents.train`; the
        metrics the callback gets are `[iterations, M]`.

    Returns:
      A `PopulationResult`: the best member's params are the run's.

    Raises:
      ValueError: bad values, a field that shapes the program, an unknown PBT hyperparameter.
      Diverged: every member's loss or parameters turned non-finite (a single diverged member
        gets score -inf: PBT replaces it, a sweep reports it).
    """
    from inject_rl import envs

    cfg = (agent.config() if cfg is None else cfg).validate()
    if not envs.is_jax_env(cfg.env_id):
        raise ValueError(
            "a population trains as one program on in-graph envs "
            f"({', '.join(envs.jax_env_ids())}), got {cfg.env_id}; on host envs run its members "
            "in turn (inject_rl.sweep does)"
        )
    vals = member_values(agent, cfg, size, values)
    size = len(vals["seed"])
    if pbt is not None:
        pbt.validate(size)
    chosen = agent.default_optimizer if optimizer is None else optimizer
    if isinstance(chosen, optax.GradientTransformation):
        fixed = chosen
        chosen = lambda _cfg: fixed  # noqa: E731

    def make_opt(member_cfg):
        return check_optimizer(chosen(member_cfg))

    make_opt(cfg)
    devices = loops.devices_for(num_devices)
    env = spaces(cfg.env_id)
    unread = unread_values(agent, cfg, vals, make_opt, len(devices), network, env)
    if unread:
        raise ValueError(
            f"{agent.name}: {', '.join(unread)} differ(s) between members but this run never "
            "reads it (a default that another setting replaces, e.g. lr_init once learning_rate "
            "is given, or a field a custom optimizer ignores): the members would differ in name "
            "only"
        )
    init, iteration = population_learner(
        agent, cfg, vals, make_opt, len(devices), network, pbt, env
    )
    start = {} if resume is None else {"state": resume[0], "start_call": resume[1]}
    try:
        res = loops.run(
            init,
            iteration,
            num_calls=cfg.num_calls,
            iterations_per_call=cfg.iterations_per_call,
            num_devices=len(devices),
            callback=_checked(agent, callback),
            program_key=program_key,
            **start,
        )
    except jax.errors.JAXTypeError as e:
        varied = ", ".join(k for k in vals if k != "seed") or "seed"
        raise ValueError(
            f"{agent.name}: a per-member Config field ({varied}) shapes the compiled program "
            f"and cannot differ between members ({type(e).__name__}); vary it in separate runs"
        ) from e
    final = loops.first_replica(res.state)
    score = np.asarray(final.score)
    best = best_member(score)
    member = jax.tree.map(lambda x: x[best], final.members)
    return PopulationResult(
        agent.final_params(member),
        member.opt_state,
        res.metrics,
        res.state,
        cfg,
        res.compile_s,
        res.train_s,
        agent,
        best,
        {k: np.asarray(v) for k, v in final.values.items()},
    )


def _checked(agent: Agent, callback: Callable | None) -> Callable:
    """Raises `Diverged` once every member has diverged; passes the call to `callback`."""

    def check(call: int, metrics: dict[str, Any], state: Any = None) -> None:
        diverged = np.asarray(metrics["diverged"])  # [iterations, M]
        if diverged.size and (diverged[-1] > 0).all():
            step = int(np.asarray(metrics["step"])[-1].max())
            raise Diverged(
                f"{agent.name}: every member of the population diverged (non-finite loss or "
                f"parameters) by env step {step}, in host call {call}"
            )
        if callback is not None:
            callback(call, metrics, state)

    return check
