"""On JAX, the ``steps_per_execution`` steps of one call as one compiled loop.

Why: Keras's JAX trainer runs ``steps_per_execution`` steps as that many calls of its compiled step,
from Python; each call hands JAX the whole training state (every weight, optimizer slot and metric).
Here the steps of one call are a ``jax.lax.scan`` over their batches stacked, one dispatch per call,
as TensorFlow's trainer runs them in one graph. An epoch's last call may find fewer batches: its
missing steps are skipped inside the loop (``lax.cond``), so one program serves every call, and a run
takes every step an unscanned run takes, on the same batches in the same order.

The model is untouched: Keras's ``fit`` calls ``model.train_function`` once per call and builds its
own only when that is unset, so the function is set on the instance after ``compile``. Keras's own
loop stays on TensorFlow, where one step is a call, where a distribution shards the state
(``trainer.strategy=mirrored``: its steps carry the state's layout), and for a dense model's batches
larger than SCANNED_BATCH_LIMIT: there a step's own work dwarfs its dispatch, and the scan, which
carries the state from step to step, was slower. On a CPU a model with convolutions is scanned at
any batch: each call of its step gets its patches' temporary memory (80 MB at batch 128) as fresh
pages from the system, 20,000 page faults a step, which a scan pays once per call
(docs/performance.md).
"""

from __future__ import annotations

import numpy as np

SCANNED_BATCH_LIMIT = 64


def scan_steps(model, batch_size: int) -> bool:
    """Give ``model`` (compiled) a train function that scans each call's steps, where it applies
    (JAX, more than one step per call, batches of at most SCANNED_BATCH_LIMIT images unless the
    model convolves on a CPU, no distribution); whether it did."""
    import keras

    if keras.config.backend() != "jax" or model.steps_per_execution <= 1 or model.run_eagerly:
        return False
    if batch_size > SCANNED_BATCH_LIMIT and not _convolves_on_a_cpu(model):
        return False
    if keras.distribution.distribution() is not None:
        return False
    model.train_function = _scanned_train_function(model, model.steps_per_execution)
    return True


def _convolves_on_a_cpu(model) -> bool:
    """Where the fresh temporaries were measured: the patch convolutions on JAX on a CPU."""
    from aetrain.models.xla_cpu_layers import PatchConv2D, PatchConv2DTranspose, jax_on_cpu

    convolutions = (PatchConv2D, PatchConv2DTranspose)
    return jax_on_cpu() and any(isinstance(layer, convolutions) for layer in model._flatten_layers())


def _scanned_train_function(model, steps: int):
    """``train_function(state, iterator) -> (logs, state)``: up to ``steps`` batches from the iterator,
    the first taken at once, the rest in a scan that skips the ones the epoch did not have."""
    import jax

    def run(state, first_batch, later_batches, taken):
        logs, state = model.train_step(state, first_batch)

        def one_more(logs_and_state, batch_and_taken):
            logs, state = logs_and_state
            batch, take = batch_and_taken
            taken_or_skipped = jax.lax.cond(
                take, lambda: model.train_step(state, batch), lambda: (logs, state)
            )
            return taken_or_skipped, None

        (logs, state), _ = jax.lax.scan(one_more, (logs, state), (later_batches, taken))
        return logs, state

    compiled = jax.jit(run, donate_argnums=0)

    def train_function(state, iterator):
        first_batch = next(iterator)
        later = []
        try:
            while len(later) < steps - 1:
                later.append(next(iterator))
        except StopIteration:  # the epoch's last call: Keras's epoch iterator ends the epoch after it
            pass
        taken = np.zeros(steps - 1, dtype=bool)
        taken[: len(later)] = True
        filler = [first_batch] * (steps - 1 - len(later))  # any batch of the right shape: skipped
        return compiled(state, first_batch, stack_batches(later + filler), taken)

    return train_function


def stack_batches(batches: list):
    """Batches of one structure stacked leaf by leaf along a new first axis. A leaf that is the same
    array in every batch's other slot (an autoencoder's (x, x)) is stacked once and shared."""
    first = batches[0]
    if isinstance(first, tuple | list):
        stacked = []
        for slot in range(len(first)):
            twin = next(
                (earlier for earlier in range(slot) if all(b[slot] is b[earlier] for b in batches)), None
            )
            stacked.append(stacked[twin] if twin is not None else _stack([b[slot] for b in batches]))
        return type(first)(stacked)
    return _stack(batches)


def _stack(leaves: list):
    if leaves[0] is None:
        return None
    if isinstance(leaves[0], np.ndarray):
        return np.stack(leaves)
    import jax.numpy as jnp

    return jnp.stack(leaves)
