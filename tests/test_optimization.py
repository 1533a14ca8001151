"""Learning-rate schedules against their formulas, step by step."""

from __future__ import annotations

import math

import pytest

from aetrain.training.optimization import ONE_CYCLE_START_DIVISOR, learning_rate_schedule


def rate_at(schedule, step: int) -> float:
    return float(schedule(step)) if callable(schedule) else float(schedule)


@pytest.fixture
def trainer(make_config):
    def make(*overrides):
        return make_config("trainer.epochs=10", "trainer.learning_rate=0.01", *overrides).trainer

    return make


def test_one_cycle_rises_from_a_25th_of_the_peak_for_30_percent_then_anneals_to_zero(trainer):
    schedule = learning_rate_schedule(trainer("trainer.schedule=one_cycle"), steps_per_epoch=10)
    assert rate_at(schedule, 0) == pytest.approx(0.01 / ONE_CYCLE_START_DIVISOR)
    assert rate_at(schedule, 15) == pytest.approx((0.01 / 25 + 0.01) / 2)  # halfway up the ramp
    assert rate_at(schedule, 30) == pytest.approx(0.01)  # the peak after 30 of 100 steps
    halfway_down = 30 + 35
    assert rate_at(schedule, halfway_down) == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert rate_at(schedule, 100) == pytest.approx(0.0, abs=1e-9)


def test_one_cycle_warmup_follows_warmup_epochs_when_set(trainer):
    schedule = learning_rate_schedule(
        trainer("trainer.schedule=one_cycle", "trainer.warmup_epochs=1"), steps_per_epoch=10
    )
    assert rate_at(schedule, 10) == pytest.approx(0.01)
    assert rate_at(schedule, 5) < 0.01


def test_cosine_warms_up_from_zero_and_constant_stays(trainer):
    cosine = learning_rate_schedule(
        trainer("trainer.schedule=cosine", "trainer.warmup_epochs=2"), steps_per_epoch=10
    )
    assert rate_at(cosine, 0) == pytest.approx(0.0)
    assert rate_at(cosine, 20) == pytest.approx(0.01)
    assert rate_at(cosine, 60) == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi / 2)))
    constant = learning_rate_schedule(trainer("trainer.schedule=constant"), steps_per_epoch=10)
    assert rate_at(constant, 0) == rate_at(constant, 99) == 0.01
