"""Any value of any key: validation accepts it or refuses it in one paragraph naming a key; nothing else.

Property-based (hypothesis), over every key of the schema in four composed configs that together
hold every option's keys. Both doors are tried: a composed DictConfig (the command line, where
interpolations resolve) and a plain dict (a checkpoint's stored config, where they are refused).
Derandomized and bounded so it is deterministic and takes seconds.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aetrain.config import MAX_COUNT, MAX_SEED, MAX_UNITS, TOP_LEVEL_KEYS, ConfigError, RunConfig, validate

from conftest import compose_config

BASES = [
    ("variant=dense", "noise=gaussian", "sparsity=l1"),
    ("variant=conv", "noise=dropout", "sparsity=kl"),
    ("variant=vae",),
    ("variant=conv_vae", "noise=gaussian"),
]


def flat_keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys += flat_keys(value, f"{path}.") if isinstance(value, dict) else [path]
    return keys


@pytest.fixture(scope="module")
def bases() -> list[dict[str, Any]]:
    return [OmegaConf.to_container(compose_config(*overrides)) for overrides in BASES]


def set_key(tree: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(tree)
    *parents, leaf = key.split(".")
    node = changed
    for part in parents:
        node = node[part]
    node[leaf] = value
    return changed


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, MAX_UNITS, MAX_UNITS + 1, MAX_SEED, MAX_SEED + 1, MAX_COUNT, MAX_COUNT + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 0.5, -0.0, 1e-300, 1e300, math.inf, -math.inf, math.nan]),
    st.text(max_size=12),
    st.sampled_from(
        ["auto", "none", "relu", "${oc.env:AETRAIN_SURELY_UNSET}", "${nope:x}", "${seed}", "${missing.key}"]
    ),
    st.lists(st.integers(min_value=-3, max_value=2**20), max_size=4),
    st.dictionaries(st.sampled_from(["name", "x"]), st.integers(), max_size=2),
)


def assert_accepted_or_named(check, tree: dict[str, Any], key: str) -> None:
    try:
        accepted = check(tree)
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message, message
        assert f"`{error.key}`" in message
        assert error.key.split(".")[0] in TOP_LEVEL_KEYS | {key.split(".")[0]}, message
        return
    assert isinstance(accepted, RunConfig)


def as_command_line(tree: dict[str, Any]) -> RunConfig:
    return validate(OmegaConf.create(tree))


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), value=VALUES)
def test_any_value_of_any_key_is_accepted_or_refused_by_name(bases, data, value):
    base = data.draw(st.sampled_from(bases))
    key = data.draw(st.sampled_from([*flat_keys(base), "trainer.no_such_key", "no_such_key"]))
    tree = set_key(base, key, value)
    assert_accepted_or_named(validate, tree, key)  # a stored config: plain values only
    try:
        OmegaConf.create(tree)
    except OmegaConfBaseException:  # not a value OmegaConf can hold (Hydra's parser refuses it first)
        assume(False)
    assert_accepted_or_named(as_command_line, tree, key)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("trainer.weight_decay", math.inf),
        ("trainer.weight_decay", math.nan),
        ("trainer.ema", 1.0),
        ("trainer.ema", math.nan),
        ("seed", MAX_SEED + 1),
        ("seed", -1),
        ("latent_size", 10**12),
        ("variant.hidden_units", [MAX_UNITS + 1]),
        ("trainer.batch_size", 2**40),
        ("data.dir", "${oc.env:AETRAIN_SURELY_UNSET}"),
    ],
)
def test_out_of_range_values_are_refused_by_name(bases, key, value):
    with pytest.raises(ConfigError) as caught:
        validate(set_key(bases[0], key, value))
    assert caught.value.key == key


def test_failed_interpolations_on_the_command_line_name_their_key(bases):
    for key, value in [("data.dir", "${oc.env:AETRAIN_SURELY_UNSET}"), ("latent_size", "${nope:x}")]:
        with pytest.raises(ConfigError) as caught:
            as_command_line(set_key(bases[0], key, value))
        assert caught.value.key == key, caught.value


def test_edge_values_at_the_bounds_are_accepted(bases):
    edges = [("seed", MAX_SEED), ("seed", 0), ("latent_size", MAX_UNITS), ("trainer.epochs", MAX_COUNT)]
    for key, value in edges:
        validate(set_key(bases[0], key, value))
