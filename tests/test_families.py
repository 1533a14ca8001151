"""A variant's family answers for it: what it trains with, reports, samples and exports. Nothing
outside aetrain/models/ tests a variant's class or a family's layer names."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from aetrain.config import registry, validate
from aetrain.config.variants import DenseVariant, Variant
from aetrain.models.family import CONVOLUTIONAL, PLAIN, Family, family_of
from aetrain.training.loop import loss_terms

from conftest import compose_config

AETRAIN = Path(__file__).resolve().parents[1] / "aetrain"
#: Where a family's own classes and layers may be named: the families themselves, and the schemas.
FAMILY_HOMES = (AETRAIN / "models", AETRAIN / "config" / "variants.py", AETRAIN / "config" / "__init__.py")


def _variant_schema_classes() -> set[str]:
    classes, found = {Variant}, True
    while found:
        found = {sub for cls in classes for sub in cls.__subclasses__()} - classes
        classes |= found
    # Variant itself is every variant's schema: typing a field with it names no family
    return {cls.__name__ for cls in classes - {Variant} if cls.__module__.startswith("aetrain.")}


def _family_layer_names() -> set[str]:
    """The ``name="..."`` literals of the layers the families build (aetrain/models/*.py), but for the
    parts every family has (its encoder and decoder)."""
    names = set()
    for module in (AETRAIN / "models").rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "name"
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                names.add(node.value.value)
    return names - {"encoder", "decoder"}


def _outside_families() -> list[Path]:
    return [
        path
        for path in AETRAIN.rglob("*.py")
        if not any(path == home or home in path.parents for home in FAMILY_HOMES)
    ]


def test_nothing_outside_the_families_tests_a_variant_class_or_a_family_layer_name():
    classes, layers = _variant_schema_classes(), _family_layer_names()
    assert {"VariationalVariant", "ConvVariant", "DenseVariant"} <= classes
    assert {"codings_mean", "codings_log_var", "latent_loss"} <= layers
    offences = []
    for path in _outside_families():
        source = path.read_text()
        for cls in classes:
            if re.search(rf"\b{cls}\b", source):
                offences.append(f"{path.relative_to(AETRAIN)} names {cls}")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get_layer":
                argument = node.args[0] if node.args else None
                if isinstance(argument, ast.Constant) and argument.value in layers:
                    offences.append(f"{path.relative_to(AETRAIN)}:{node.lineno} asks for {argument.value!r}")
            if isinstance(node, ast.Compare) and any(
                isinstance(part, ast.Constant) and part.value in layers - {"latent_loss"}
                for part in node.comparators
            ):
                offences.append(f"{path.relative_to(AETRAIN)}:{node.lineno} compares with a layer name")
    assert offences == []


@pytest.mark.parametrize(
    ("variant", "samples", "slices", "coding_kind"),
    [
        ("dense", False, False, "codings"),
        ("conv", False, True, "codings"),
        ("vae", True, False, "mean codings"),
        ("conv_vae", True, True, "mean codings"),
    ],
)
def test_each_built_in_variant_has_the_family_its_declaration_names(variant, samples, slices, coding_kind):
    family = family_of(validate(compose_config(f"variant={variant}")))
    assert (family.samples_from_prior, family.convolutional, family.coding_kind) == (
        samples,
        slices,
        coding_kind,
    )


def test_loss_terms_name_what_the_loss_adds_up_with_its_weights():
    assert loss_terms(validate(compose_config("variant=dense"))) == ["reconstruction"]
    assert loss_terms(validate(compose_config("variant=vae", "variant.beta=0.5"))) == [
        "reconstruction",
        "0.5 x latent loss",
    ]
    assert loss_terms(validate(compose_config("variant=vae", "variant.beta=0"))) == ["reconstruction"]
    assert loss_terms(validate(compose_config("sparsity=l1", "sparsity.weight=0.001"))) == [
        "reconstruction",
        "0.001 x l1 penalty",
    ]


@dataclass(frozen=True)
class _CountingFamily(Family):
    samples_from_prior: bool = True

    def loss_terms(self, cfg) -> list[str]:
        return ["2 x counting term"]


@dataclass
class _OutsideVariant(DenseVariant):
    name: str = "family_test_outside"


def test_an_outside_variant_brings_its_own_family_or_is_a_plain_autoencoder(monkeypatch):
    monkeypatch.setitem(registry._DECLARED, "variant", dict(registry._DECLARED["variant"]))
    cfg = validate(compose_config("variant=dense"))
    family = _CountingFamily()
    registry.declare("variant", "family_test_outside", _OutsideVariant, build="x:y", family=family)
    cfg.variant = _OutsideVariant()
    assert family_of(cfg) is family and loss_terms(cfg) == ["reconstruction", "2 x counting term"]
    registry.declare("variant", "family_test_outside", _OutsideVariant, build="x:y")  # no family
    assert family_of(cfg) is PLAIN
    registry.declare(
        "variant",
        "family_test_outside",
        _OutsideVariant,
        build="x:y",
        family="aetrain.models.family:CONVOLUTIONAL",
    )
    assert family_of(cfg) is CONVOLUTIONAL
    registry.declare("variant", "family_test_outside", _OutsideVariant, build="x:y", family="json:dumps")
    with pytest.raises(TypeError, match=r"not an aetrain\.models\.family\.Family"):
        family_of(cfg)
    with pytest.raises(ValueError, match="only a variant has a family"):
        registry.declare("optimizer", "family_test_optimizer", build="x:y", family=family)


def test_a_plain_family_draws_no_samples_and_serves_the_encoders_own_output():
    assert PLAIN.export_encoder_outputs(object()) is None
    assert PLAIN.test_figures(object(), None, None) == {} and PLAIN.test_warnings({}, None) == []
    with pytest.raises(NotImplementedError):
        PLAIN.sample(object(), 4, 2, seed=0)


def test_the_report_compares_runs_by_the_loss_terms_their_metrics_record(tmp_path):
    import io

    from rich.console import Console

    from aetrain.commands import report

    for name, terms, val in (
        ("0", ["reconstruction"], 0.02),
        ("1", ["reconstruction", "0.25 x commitment"], 0.01),
    ):
        folder = tmp_path / name
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text(f"- seed={name}\n")
        metrics = {"status": "completed", "best_val_loss": val, "epochs_completed": 1, "train_seconds": 1.0}
        (folder / "metrics.json").write_text(
            json.dumps({**metrics, "test": {"mse": val}, "loss_terms": terms})
        )
    buffer = io.StringIO()
    report.report(tmp_path, Console(file=buffer, width=160))
    flat = " ".join(buffer.getvalue().split())
    assert "run 1: reconstruction + 0.25 x commitment" in flat and "run 0: reconstruction;" in flat
