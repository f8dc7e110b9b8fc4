"""inject-rl: optax hyperparameters as stateful schedules driven by training signals."""

__version__ = "0.1.0"
