"""inject-rl agents: one module per agent, all sharing the `Config` / `train` / `evaluate` contract."""
