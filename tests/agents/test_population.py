"""The member axis: sweeps and population-based training as one compiled program."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from inject_rl import schedules
from inject_rl.agents import Diverged, get
from inject_rl.agents._members import member_values
from inject_rl.agents._pbt import PBT, PopulationState, _exploit
from inject_rl.agents._population import best_member, train_population
from inject_rl.optim import hyperparams, injected, scale_hyperparam

PPO = get("ppo")


def _cfg(steps: int = 2_000, **kw: Any):
    return PPO.config_for("phys2d/CartPole-v1", total_steps=steps, **kw)


# --- scale_hyperparam ------------------------------------------------------------------------


def test_scale_hyperparam_scales_a_constant_per_member():
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
    state = jax.vmap(lambda _: opt.init(jnp.zeros(2)))(jnp.arange(3))
    out = scale_hyperparam(state, "learning_rate", jnp.array([1.0, 2.0, 0.5]))
    np.testing.assert_allclose(hyperparams(out)["learning_rate"], [0.1, 0.2, 0.05], rtol=1e-6)
    np.testing.assert_allclose(hyperparams(state)["learning_rate"], [0.1] * 3)  # not modified


def test_scale_hyperparam_complement_keeps_betas_below_one():
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=0.1, b1=0.9)
    out = scale_hyperparam(opt.init(jnp.zeros(2)), "b1", 2.0, complement=True)
    np.testing.assert_allclose(hyperparams(out)["b1"], 0.8, rtol=1e-6)  # 1 - 2 * 0.1
    out = scale_hyperparam(opt.init(jnp.zeros(2)), "b1", 0.5, complement=True)
    np.testing.assert_allclose(hyperparams(out)["b1"], 0.95, rtol=1e-6)


def test_scale_hyperparam_scales_a_schedules_value_and_bounds():
    lr = schedules.kl_target(1e-3, target=0.01, min_value=1e-4, max_value=2e-3)
    opt = injected(optax.adam, learning_rate=lr)
    state = opt.init(jnp.zeros(2))
    up = scale_hyperparam(state, "learning_rate", 10.0)
    down = scale_hyperparam(state, "learning_rate", 0.5)
    np.testing.assert_allclose(hyperparams(up)["learning_rate"], 1e-2, rtol=1e-6)
    np.testing.assert_allclose(hyperparams(down)["learning_rate"], 5e-4, rtol=1e-6)
    # The bounds move with the value: as if the rule had started at a scaled initial value.
    from inject_rl.optim import bounds

    np.testing.assert_allclose(bounds(up)["learning_rate"], (1e-3, 2e-2), rtol=1e-6)
    np.testing.assert_allclose(bounds(down)["learning_rate"], (5e-5, 1e-3), rtol=1e-6)
    # The rule carries on from the scaled value: the next update's rate derives from 5e-4.
    _, after = opt.update(jnp.ones(2), down, jnp.zeros(2), kl=0.01)
    np.testing.assert_allclose(hyperparams(after)["learning_rate"], 5e-4, rtol=1e-6)


def test_scale_hyperparam_refuses_a_schedule_without_a_value():
    lr = schedules.bandit((1e-4, 1e-3), signal="episode_return")
    state = injected(optax.adam, learning_rate=lr).init(jnp.zeros(2))
    with pytest.raises(ValueError, match="no current `value`"):
        scale_hyperparam(state, "learning_rate", 2.0)
    with pytest.raises(ValueError, match="unknown hyperparameter 'lr'"):
        scale_hyperparam(state, "lr", 2.0)


# --- PBT's exploit/explore step --------------------------------------------------------------


class _Member(NamedTuple):
    params: Any
    opt_state: Any
    actor: Any
    key: Any
    step: Any


def _population(scores):
    m = len(scores)
    opt = injected(optax.sgd, learning_rate=0.1, momentum=0.9)
    params = {"w": jnp.arange(m, dtype=jnp.float32)[:, None] * jnp.ones((m, 2))}
    opt_state = jax.vmap(opt.init)(params)
    members = _Member(
        params,
        opt_state,
        jnp.arange(m) * 10,  # "envs": must stay with the member
        jax.random.split(jax.random.key(0), m),
        jnp.full((m,), 7),
    )
    values = {
        "seed": jnp.arange(m, dtype=jnp.int32),
        "gamma": jnp.full((m,), 0.9),
        "learning_rate": jnp.full((m,), 0.1),  # a Config field that is injected too
    }
    scores = jnp.asarray(scores, jnp.float32)
    # Two episodes per member since the last exploit step; -inf: diverged (as the population's
    # iteration records it), NaN: no episode finished.
    window = jnp.stack(
        [
            jnp.where(
                jnp.isfinite(scores), scores * 2, jnp.where(jnp.isnan(scores), 0.0, -jnp.inf)
            ),
            jnp.where(jnp.isfinite(scores), 2.0, jnp.where(jnp.isnan(scores), 0.0, 1.0)),
        ],
        1,
    )
    return PopulationState(
        members, values, scores[::-1], window, jax.random.key(3), jnp.asarray(20)
    )


def test_exploit_copies_the_bottom_from_the_top_and_perturbs_only_copies():
    ps = _population([5.0, -jnp.inf, 9.0, 1.0])  # ranking: 2, 0, 3, 1
    pbt = PBT(("learning_rate", "momentum", "gamma"), fraction=0.25, perturb=(2.0,))
    out, source = jax.jit(lambda p: _exploit(p, pbt, 4))(ps)
    np.testing.assert_array_equal(source, [-1, 2, -1, -1])  # the worst copies the best
    np.testing.assert_array_equal(out.members.params["w"][:, 0], [0, 2, 2, 3])
    lr = hyperparams(out.members.opt_state)["learning_rate"]
    np.testing.assert_allclose(lr, [0.1, 0.2, 0.1, 0.1], rtol=1e-6)
    momentum = hyperparams(out.members.opt_state)["momentum"]
    np.testing.assert_allclose(momentum, [0.9, 0.8, 0.9, 0.9], rtol=1e-5)  # 1 - 2 * 0.1
    np.testing.assert_allclose(out.values["gamma"], [0.9, 0.8, 0.9, 0.9], rtol=1e-5)
    # An injected hyperparameter that is also a Config value: the value recorded is the one
    # used (it was copied but not perturbed: 0.1 recorded, 0.2 trained with).
    np.testing.assert_allclose(out.values["learning_rate"], lr, rtol=1e-6)
    np.testing.assert_array_equal(out.values["seed"], [0, 1, 2, 3])  # its own envs' and key's
    np.testing.assert_array_equal(out.members.actor, [0, 10, 20, 30])  # kept: its own envs
    assert np.array_equal(jax.random.key_data(out.members.key), jax.random.key_data(ps.members.key))
    assert out.score[1] == ps.score[2]  # inherits its source's smoothed score
    np.testing.assert_array_equal(out.window, 0.0)  # ranked on the window, which restarts


def test_exploit_ranks_only_members_that_finished_an_episode():
    # A member without a finished episode since the last exploit step ranked last (-inf, ties
    # by index), so with long episodes the last members copied member 0 at every step.
    pbt = PBT(("learning_rate",), fraction=0.25, perturb=(2.0,))
    nan = float("nan")
    out, source = _exploit(_population([nan, nan, nan, nan]), pbt, 4)
    np.testing.assert_array_equal(source, [-1, -1, -1, -1])  # nothing to rank: nobody copies
    np.testing.assert_array_equal(
        out.members.params["w"], _population([nan] * 4).members.params["w"]
    )
    out, source = _exploit(_population([5.0, nan, 9.0, nan]), pbt, 4)
    np.testing.assert_array_equal(source, [2, -1, -1, -1])  # the worse of the ranked two
    out, source = _exploit(_population([5.0, nan, nan, nan]), pbt, 4)
    np.testing.assert_array_equal(source, [-1, -1, -1, -1])  # one ranked member: no pair


def test_unread_values_names_the_fields_no_member_reads():
    from inject_rl.agents._members import unread_values

    def two(*fields):
        return {**{f: np.asarray([0.5, 0.25], np.float32) for f in fields}, "seed": np.arange(2)}

    fields = ("lr_init", "kl_target", "gamma", "ent_coef")
    cfg = _cfg()  # the default learning rate: kl_target(lr_init, target=kl_target)
    assert unread_values(PPO, cfg, two(*fields), PPO.default_optimizer, 1) == []
    given = _cfg(learning_rate=3e-4)  # replaces the default schedule: its two fields unread
    assert unread_values(PPO, given, two(*fields), PPO.default_optimizer, 1) == [
        "kl_target",
        "lr_init",
    ]
    with pytest.raises(ValueError, match="lr_init differ.* never reads it"):
        train_population(PPO, given, values={"lr_init": [1e-3, 2e-3]})


def test_pbt_refuses_to_perturb_the_seed():
    with pytest.raises(ValueError, match="pbt cannot perturb seed"):
        PBT(("learning_rate", "seed")).validate(4)


def test_exploit_stays_within_groups():
    ps = _population([5.0, 1.0, 2.0, 8.0, 3.0, 4.0])  # groups [0, 1, 2] and [3, 4, 5]
    pbt = PBT(("learning_rate",), fraction=0.34, perturb=(2.0,), groups=2)
    out, source = jax.jit(lambda p: _exploit(p, pbt, 6))(ps)
    np.testing.assert_array_equal(source, [-1, 0, -1, -1, 3, -1])
    np.testing.assert_array_equal(out.members.params["w"][:, 0], [0, 0, 2, 3, 3, 5])


def test_exploit_keeps_each_members_running_return_of_reward_scaling():
    from inject_rl.signals._normalize import RewardScaleState

    class _Scaled(NamedTuple):
        params: Any
        opt_state: Any
        reward_scale: Any

    ps = _population([5.0, -jnp.inf])
    scale = RewardScaleState(jnp.array([[10.0, 11.0], [20.0, 21.0]]), jnp.array([1.0, 2.0]))
    members = _Scaled(ps.members.params, ps.members.opt_state, scale)
    out, source = _exploit(ps._replace(members=members), PBT(("learning_rate",)), 2)
    np.testing.assert_array_equal(source, [-1, 0])
    np.testing.assert_array_equal(out.members.reward_scale.stats, [1.0, 1.0])  # copied
    np.testing.assert_array_equal(out.members.reward_scale.running_return, scale.running_return)


def test_exploit_refuses_an_unknown_hyperparameter():
    with pytest.raises(ValueError, match="'b3' is neither an injected"):
        _exploit(_population([1.0, 2.0]), PBT(("b3",)), 2)


def test_best_member_ignores_non_finite_scores():
    assert best_member(np.array([1.0, np.nan, 3.0, np.inf * -1])) == 2
    assert best_member(np.array([2.0, 2.0])) == 0


# --- checks before anything runs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(values={"lr_init": [1e-3, 2e-3]}, size=3), "2 values given for a population of 3"),
        (dict(values={"nope": [1, 2]}), "no Config field 'nope'"),
        (dict(values={"lr_init": [1e-3, -1.0]}), "member 1 .*lr_init"),
        (dict(values={"env_id": ["a", "b"]}), "env_id .* is not a number"),
        (dict(values={"seed": [1.5, 2]}), "seed: member 0's value must be an integer"),
        (dict(values={"num_minibatches": [2, 4]}), "num_minibatches cannot differ"),
        (dict(size=0), "size must be an integer >= 1"),
    ],
)
def test_bad_member_values_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        member_values(PPO, _cfg(), kwargs.pop("size", None), kwargs.get("values"))


@pytest.mark.parametrize(
    ("pbt", "message"),
    [
        (PBT(()), "hyperparams must be non-empty"),
        (PBT(("learning_rate",), interval=0), "interval must be an integer >= 1"),
        (PBT(("learning_rate",), fraction=0.9), r"fraction must be in \(0, 0.5\]"),
        (PBT(("learning_rate",), perturb=(0.0,)), "perturb factors must be positive"),
        (PBT(("learning_rate",), groups=2), "groups of at least 2 members: 2 members in 2"),
    ],
)
def test_bad_pbt_settings_are_one_line(pbt, message):
    with pytest.raises(ValueError, match=message):
        train_population(PPO, _cfg(), size=2, pbt=pbt)


def test_a_float_field_that_shapes_the_program_cannot_vary(monkeypatch):
    import inject_rl.agents._population as population

    def shaping(cfg, *args):  # a learner that reads a float field in Python control flow
        if cfg.gamma > 0.5:
            raise AssertionError("unreachable with a traced gamma")
        return PPO.anakin(cfg, *args)

    agent = dataclasses.replace(PPO, anakin=shaping)
    monkeypatch.setattr(population, "spaces", population.spaces)
    with pytest.raises(ValueError, match=r"\(gamma\) shapes the compiled program"):
        train_population(agent, _cfg(), values={"gamma": [0.9, 0.99]})


def test_populations_need_an_in_graph_env():
    cfg = PPO.config_for("CartPole-v1", total_steps=1_000)
    with pytest.raises(ValueError, match="on host envs run its members in turn"):
        train_population(PPO, cfg, size=2)


# --- training --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep_result():
    cfg = _cfg(steps=2_048, learning_rate=1e-3)
    return train_population(PPO, cfg, values={"learning_rate": [1e-4, 1e-3, 1e-2]})


@pytest.mark.slow
def test_members_train_with_their_own_values_and_seeds(sweep_result):
    r = sweep_result
    assert r.metrics["loss"].shape[1] == 3
    np.testing.assert_allclose(r.metrics["hp/learning_rate"][-1], [1e-4, 1e-3, 1e-2], rtol=1e-6)
    np.testing.assert_array_equal(r.values["seed"], [0, 1, 2])
    # Different seeds and rates: different runs.
    assert not np.array_equal(r.metrics["loss"][:, 0], r.metrics["loss"][:, 1])
    assert (r.metrics["pbt/source"] == -1).all()  # a sweep copies nothing


@pytest.mark.slow
def test_a_member_starts_as_the_single_run_with_its_values(sweep_result):
    single = PPO.train(_cfg(steps=2_048, learning_rate=1e-2, seed=2))
    # Same seed, same rate: the same run, up to float rounding (vmap changes XLA's fusions, so
    # the last bits drift and, over many iterations, the trajectories; the population itself is
    # deterministic: see the PBT test). Another seed starts elsewhere.
    loss = sweep_result.metrics["loss"]
    assert loss[0, 2] == single.metrics["loss"][0]
    np.testing.assert_allclose(loss[:3, 2], single.metrics["loss"][:3], rtol=1e-5)
    assert abs(loss[0, 1] - single.metrics["loss"][0]) > 1e-3


@pytest.mark.slow
def test_the_best_member_is_the_runs_policy(sweep_result):
    r = sweep_result
    assert r.best == best_member(np.asarray(r.state.score)[0])
    for a, b in zip(
        jax.tree.leaves(r.params), jax.tree.leaves(r.member_params(r.best)), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert r.member_config(r.best).learning_rate == pytest.approx([1e-4, 1e-3, 1e-2][r.best])
    action = r.policy().act(np.zeros(4, np.float32))
    assert action in (0, 1)


def _pbt_run(num_devices=None):
    cfg = _cfg(steps=3_072, learning_rate=1e-3)
    pbt = PBT(("learning_rate", "ent_coef"), interval=2, perturb=(0.5, 2.0))
    return train_population(PPO, cfg, size=4, pbt=pbt, num_devices=num_devices)


@pytest.mark.slow
def test_pbt_is_deterministic_and_records_its_lineage():
    a, b = _pbt_run(), _pbt_run()
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
    source = a.metrics["pbt/source"]
    events = np.flatnonzero((source >= 0).any(1))
    assert events.size and ((events + 1) % 2 == 0).all()  # every 2nd iteration
    it, member = np.argwhere(source >= 0)[0]
    lr = a.metrics["hp/learning_rate"]
    # The copy's rate is its source's, halved or doubled, from the next iteration on (an
    # iteration's metrics are taken before its exploit step).
    ratio = lr[it + 1, member] / lr[it, source[it, member]]
    assert ratio == pytest.approx(0.5, rel=1e-5) or ratio == pytest.approx(2.0, rel=1e-5)


@pytest.mark.slow
def test_pbt_replicas_of_a_member_are_bitwise_equal_on_two_devices():
    if jax.local_device_count() < 2:
        pytest.skip("needs 2 devices (conftest sets 4 fake CPU devices)")
    from inject_rl import loops

    r = _pbt_run(num_devices=2)
    s = r.state  # envs and the members' own keys differ per device by design
    assert loops.replicas_equal((s.members.params, s.members.opt_state, s.values, s.score, s.key))
    assert (r.metrics["pbt/source"] >= 0).any()


@pytest.mark.slow
def test_every_member_diverging_raises_diverged():
    cfg = _cfg(steps=4_000, learning_rate=1e30)
    with pytest.raises(Diverged, match="every member of the population diverged"):
        train_population(PPO, cfg, size=2)


@pytest.mark.slow
def test_one_diverged_member_is_scored_out_not_fatal():
    cfg = _cfg(steps=4_000, learning_rate=1e-3)
    r = train_population(PPO, cfg, values={"learning_rate": [1e-3, 1e30]})
    assert r.metrics["diverged"][-1, 1] == 1 and r.metrics["diverged"][-1, 0] == 0
    assert r.best == 0 and np.asarray(r.state.score)[0, 1] == -np.inf


def _replay_population(name: str, **kw: Any):
    agent = get(name)
    env = "phys2d/Pendulum-v0" if name == "sac" else "phys2d/CartPole-v1"
    return agent, agent.config(env_id=env, **kw)


def test_a_populations_init_runs_no_batched_qr():
    # The orthogonal initialiser under `vmap` over members lowered to one batched QR, which
    # jaxlib's CPU kernel fans out over XLA's thread pool and waits for from a thread of that
    # pool: with as many devices as pool threads (2 fake devices on 2 cores) every thread
    # waited, and a population on 2 devices hung in its init (a DQN population ran 827 s on 18 s
    # of CPU). The members are initialised one at a time: every QR is of a single matrix.
    import re

    from inject_rl.agents._population import population_learner

    agent, cfg = _replay_population("dqn")
    vals = member_values(agent, cfg, 3, None)
    init, _ = population_learner(agent, cfg, vals, agent.default_optimizer, 2)
    text = jax.jit(init).lower(jnp.int32(0)).as_text()
    qr = [line for line in text.splitlines() if "geqrf" in line and "custom_call" in line]
    assert qr, "no QR in the init (the orthogonal initialiser): this test checks nothing"
    operands = [re.search(r": \((tensor<[^>]*>)", line).group(1) for line in qr]
    batched = [t for t in operands if t.count("x") != 2]  # tensor<128x128xf32>: one matrix
    assert not batched, f"batched QR in a population's init: {batched}"


@pytest.mark.parametrize("name", ["dqn", "sac"])
def test_a_replay_agents_population_trains_on_two_devices(name):
    if jax.local_device_count() < 2:
        pytest.skip("needs 2 devices (conftest sets 4 fake CPU devices)")
    from inject_rl import loops

    agent, cfg = _replay_population(
        name, total_steps=2_000, learning_starts=400, gradient_steps=4,
        **({"eval_every": 2, "eval_episodes": 2} if name == "dqn" else {}),
    )  # fmt: skip
    r = train_population(agent, cfg, size=2, num_devices=2)
    s = r.state
    assert loops.replicas_equal((s.members.params, s.members.opt_state, s.score))
    assert np.isfinite(r.metrics["loss"][-1]).all()  # learning started and stayed finite
    # The members are two runs (seeds 0 and 1), not one run twice.
    p = jax.tree.leaves(loops.first_replica(s.members.params))[0]
    assert not np.array_equal(p[0], p[1])
