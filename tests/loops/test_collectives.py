"""All-reduces of one full PPO iteration on 2 devices (issue 16 item 1): the learner step's one
packed all-reduce inside the minibatch scan, which carries the gradients, the loss's signals and
the iteration's episode statistics (`inject_rl.signals.sync_and_pmean`), and nothing else."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import pytest

from inject_rl import loops
from inject_rl.agents import ppo
from inject_rl.agents._train import learner as agent_learner
from inject_rl.loops import _programs

CFG = ppo.Config(total_steps=20480)  # the default layout: 10 epochs of one minibatch


@pytest.fixture(scope="module")
def lowered():
    """One PPO iteration lowered as the anakin loop runs it on 2 devices (its exported
    `shard_map` program over a 2-device mesh)."""
    opt = ppo.default_optimizer(CFG)
    init, iteration = agent_learner(ppo.AGENT, CFG, opt, 2)[1]
    programs = _programs.build(
        init, lambda s: iteration(s, loops.DEVICE_AXIS), loops.DEVICE_AXIS, jax.devices()[:2], None
    )
    return programs.step.lower(*programs.init(jnp.arange(2, dtype=jnp.int32)))


def test_one_ppo_iteration_lowers_to_one_all_reduce(lowered):
    """One all-reduce op in the lowered program, inside the gradient-step loop (executed once
    per gradient step). Before the packed `sync` the episode statistics alone took four; before
    they joined the gradients' all-reduce, one of their own per iteration."""
    text = lowered.as_text()
    ops = [line for line in text.splitlines() if "all_reduce" in line]
    assert len(ops) == 1, ops  # the gradient steps need one, so it is theirs


def test_compiled_program_has_one_all_reduce(lowered):
    """XLA may combine collectives; it must not split them."""
    hlo = lowered.compile().as_text()
    ops = re.findall(r"\sall-reduce(?:-start)?\(", hlo)
    assert len(ops) == 1, ops
