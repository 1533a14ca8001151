"""Loss terms a layer computes and its model reports as metrics, the same on TensorFlow and JAX.

A layer that adds a loss term (a VAE's KL, a VQ-VAE's codebook loss) also reports the term as a
``keras.metrics.Mean`` of its own. Updating that metric inside ``call`` works on TensorFlow, but
Keras's stateless JAX step threads only the weights through ``call`` and drops metric updates made
there. So a :class:`TermLayer` keeps the batch's values from ``call`` (:meth:`TermLayer.report`), and
its model records them in ``compute_loss``, which both backends run inside the step with the
metrics' state (:class:`TermReportingModel`, :class:`TermReportingSequential`).
"""

from __future__ import annotations

import keras


class TermLayer(keras.layers.Layer):
    """A layer whose loss terms are reported by metrics it owns, named as the terms are."""

    def report(self, terms: dict, batch_size=None) -> None:
        """Keep this batch's ``terms`` (metric name -> scalar), weighed by ``batch_size`` images when
        given, for the model's ``compute_loss`` to record."""
        # object.__setattr__: tensors are step state, not something Keras should track or save
        object.__setattr__(self, "_reported_terms", (terms, batch_size))

    def record_reported(self) -> None:
        """Update each term's metric with the values :meth:`report` kept, once."""
        reported = getattr(self, "_reported_terms", None)
        if reported is None:
            return
        object.__setattr__(self, "_reported_terms", None)
        terms, batch_size = reported
        trackers = {metric.name: metric for metric in self.metrics}
        for name, value in terms.items():
            trackers[name].update_state(value, sample_weight=batch_size)


class _RecordsLayerTerms:
    """``compute_loss`` that first records the terms its :class:`TermLayer` layers reported."""

    def compute_loss(self, *args, **kwargs):
        for layer in self._flatten_layers(include_self=False):
            if isinstance(layer, TermLayer):
                layer.record_reported()
        return super().compute_loss(*args, **kwargs)


@keras.saving.register_keras_serializable(package="aetrain")
class TermReportingModel(_RecordsLayerTerms, keras.Model):
    """A functional model whose layers' loss terms are reported on every backend."""


@keras.saving.register_keras_serializable(package="aetrain")
class TermReportingSequential(_RecordsLayerTerms, keras.Sequential):
    """A sequential model whose layers' loss terms are reported on every backend."""
