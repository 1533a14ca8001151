"""Training: the loop (``loop.run``), its callbacks and loggers, optimizers, strategies, the runtime."""
