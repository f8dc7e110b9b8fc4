"""Does hypergradient descent pay on PPO? `scripts/robustness.py` with the study's extra rows.

Issue 14 item 4: hypergradient descent (Baydin et al. 2018, multiplicative form;
`inject_rl.schedules.hypergradient`, the optimizer wrapped in `inject_rl.optim.update_alignment`)
against a constant rate, on robustness.py's PPO grid for phys2d/CartPole-v1 (7 initial rates
1e-5..1e-2 x 5 seeds, 1e5 env steps per cell). `hypergradient` (the schedule's defaults: beta
0.01, bounds [init / 1000, 1000 x init]) is one of robustness.py's rules for every agent; this
wrapper adds the variants the first study compared, each keeping every other default:

- `hypergradient_cap10`: cap 10 x init (the schedule's first default cap; pre-registered);
- `hypergradient_beta0.03_cap10`: three times faster, cap 10 x init (pre-registered);
- `hypergradient_wide`: absolute bounds [1e-7, 0.1] (a follow-up, chosen after the first table).

    python scripts/hypergradient_study.py [--seeds 5] [--first-seed 0] [--steps 100000]
        [--variants constant,hypergradient,hypergradient_cap10,hypergradient_beta0.03_cap10,
        hypergradient_wide,kl_target]

Every robustness.py option applies (`--agent dqn`... too); prints its Markdown table and writes
docs/figures/robustness_<agent>_<env>_hypergradient.png. Member seeds are robustness.py's
(`seed * 1000`), so cells differ from the first study's tables (seeds `0..4`), not its design.
"""

from __future__ import annotations

import dataclasses

import robustness

from inject_rl import schedules as S

EXTRA_RULES = {
    "hypergradient_cap10": lambda c: dataclasses.replace(
        c, learning_rate=S.hypergradient(c.lr_init, max_value=10 * c.lr_init)
    ),
    "hypergradient_beta0.03_cap10": lambda c: dataclasses.replace(
        c, learning_rate=S.hypergradient(c.lr_init, beta=0.03, max_value=10 * c.lr_init)
    ),
    "hypergradient_wide": lambda c: dataclasses.replace(
        c, learning_rate=S.hypergradient(c.lr_init, min_value=1e-7, max_value=0.1)
    ),
}

DEFAULTS = {
    "agent": "ppo",
    "env": "phys2d/CartPole-v1",
    "steps": 100_000,
    "variants": "constant,hypergradient,hypergradient_cap10,hypergradient_beta0.03_cap10",
}


if __name__ == "__main__":
    robustness.main(extra_rules=EXTRA_RULES, defaults=DEFAULTS, figure_suffix="_hypergradient")
