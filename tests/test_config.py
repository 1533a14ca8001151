"""Every shipped config composes and validates; bad values are refused naming the key."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from aetrain.commands.train import config_dir
from aetrain.config import (
    ConfigError,
    ConvVariant,
    GaussianNoise,
    KLSparsity,
    RunConfig,
    VAEVariant,
    validate,
)

from conftest import compose_config

CONF = config_dir()


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def test_config_dir_has_every_group_of_the_contract():
    assert set(options("variant")) >= {"dense", "conv", "vae"}
    assert set(options("noise")) == {"none", "gaussian", "dropout"}
    assert set(options("sparsity")) == {"none", "l1", "kl"}
    assert set(options("trainer")) >= {"default", "smoke"}
    assert set(options("experiment")) >= {
        "seed_conv",
        "seed_dropout",
        "seed_gaussian",
        "seed_sparse_l1",
        "seed_sparse_kl",
        "seed_vae",
    }


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_validates(experiment):
    assert isinstance(validate(compose_config(f"experiment={experiment}")), RunConfig)


@pytest.mark.parametrize("group", ["variant", "noise", "sparsity", "trainer", "data"])
def test_every_group_option_validates(group):
    for option in options(group):
        overrides = [f"{group}={option}"]
        if group == "sparsity" and option != "none":
            overrides.append("variant=dense")
        if option == "image_folder":  # its one required key: the folder of the user's images
            overrides.append("data.dir=photos")
        assert isinstance(validate(compose_config(*overrides)), RunConfig), option


def test_the_issue_example_override_line():
    cfg = validate(
        compose_config(
            "variant=conv",
            "noise=gaussian",
            "noise.stddev=0.3",
            "sparsity=kl",
            "sparsity.target=0.05",
            "latent_size=64",
        )
    )
    assert isinstance(cfg.variant, ConvVariant)
    assert cfg.noise == GaussianNoise(stddev=0.3)
    assert cfg.sparsity == KLSparsity(target=0.05, weight=5e-3)
    assert cfg.latent_size == 64


def test_smoke_trainer_shrinks_data_and_epochs():
    cfg = validate(compose_config("trainer=smoke"))
    assert cfg.trainer.epochs == 1
    assert cfg.data.limit is not None and cfg.data.limit <= 1000


@pytest.mark.parametrize("preset", ["seed_vae", "seed_sparse_kl", "seed_conv"])
def test_smoke_stays_smoke_sized_under_a_preset_and_the_command_line_still_wins(preset):
    """seed_vae's batch of 256 on smoke's 512 training images gave two steps and a model worse than the
    mean image; smoke's sizes apply after the preset, and a command-line value after both."""
    plain = validate(compose_config("trainer=smoke"))
    under_preset = validate(compose_config("trainer=smoke", f"experiment={preset}"))
    steps = round(plain.data.limit * (1 - plain.data.val_size)) // plain.trainer.batch_size
    assert steps >= 16
    sizes = lambda cfg: (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.data.limit, cfg.data.val_size)  # noqa: E731
    assert sizes(under_preset) == sizes(plain)
    assert validate(compose_config(f"experiment={preset}")).trainer.epochs > 1  # the preset alone: full size
    chosen = validate(compose_config("trainer=smoke", f"experiment={preset}", "trainer.batch_size=8"))
    assert chosen.trainer.batch_size == 8


def test_seed_experiments_pin_the_seed_architectures():
    vae = validate(compose_config("experiment=seed_vae"))
    assert isinstance(vae.variant, VAEVariant)
    assert (vae.variant.hidden_units, vae.latent_size) == ([150, 100], 10)
    kl = validate(compose_config("experiment=seed_sparse_kl"))
    # twice the book's penalty per step (its 5e-3 at its batch of 32; Keras divides by the batch)
    assert kl.sparsity == KLSparsity(target=0.1, weight=2e-2, divide_by_batch_size=True)
    assert kl.sparsity.weight / kl.trainer.batch_size == 2 * 5e-3 / 32
    assert kl.latent_size == 300


BAD = [
    # (overrides, key the error must name)
    (["latent_size=0"], "latent_size"),
    (["latent_size=-3"], "latent_size"),
    (["seed=-1"], "seed"),
    (["sparsity=kl", "sparsity.target=1.5"], "sparsity.target"),
    (["sparsity=kl", "sparsity.target=0"], "sparsity.target"),
    (["sparsity=l1", "sparsity.weight=-0.1"], "sparsity.weight"),
    (["sparsity=kl", "variant=vae"], "sparsity"),
    (["sparsity=l1", "variant=vae"], "sparsity"),
    (["sparsity=kl", "variant=conv_vae"], "sparsity"),
    (["sparsity=l1", "variant=conv_vae"], "sparsity"),
    (["noise=dropout", "noise.rate=-0.2"], "noise.rate"),
    (["noise=dropout", "noise.rate=1.0"], "noise.rate"),
    (["noise=gaussian", "noise.stddev=-1"], "noise.stddev"),
    (["trainer.epochs=0"], "trainer.epochs"),
    (["trainer.epochs=ten"], "trainer.epochs"),
    (["trainer.learning_rate=0"], "trainer.learning_rate"),
    (["trainer.optimizer=adagrad"], "trainer.optimizer"),
    (["trainer.precision=float8"], "trainer.precision"),
    (["trainer.strategy=tpu"], "trainer.strategy"),
    (["+trainer.momentum=0.9"], "trainer.momentum"),
    (["+variant.depth=3"], "variant.depth"),
    (["variant.activation=relux"], "variant.activation"),
    (["variant=vae", "variant.latent_loss=kl"], "variant.latent_loss"),
    (["variant=vae", "variant.beta=-1"], "variant.beta"),
    (["variant=conv_vae", "variant.beta=-1"], "variant.beta"),
    (["variant=conv_vae", "variant.encoder_filters=[]"], "variant.encoder_filters"),
    (["+trainer.tensorboard=true"], "trainer.tensorboard"),  # logger=tensorboard now
    (["logger.csv._target_=aetrain.config.ConfigError"], "logger.csv._target_"),
    (["+logger.csv.delimiter=tab"], "logger.csv.delimiter"),
    (["variant=conv", "variant.encoder_filters=[16,32]"], "variant.decoder_filters"),
    (
        [
            "variant=conv",
            "data=digits",
            "variant.encoder_filters=[8,8,8,8]",
            "variant.decoder_filters=[8,8,8]",
        ],
        "variant.encoder_filters",
    ),
    (["data=image_folder"], "data.dir"),
    (["data=image_folder", "data.dir=x", "data.channels=2"], "data.channels"),
    (["data=image_folder", "data.dir=x", "data.image_size=[28]"], "data.image_size"),
    (["data=digits", "data.test_size=1.5"], "data.test_size"),
    (["variant.hidden_units=[0]"], "variant.hidden_units"),
    (["variant=vae", "variant.kl_warmup_epochs=-1"], "variant.kl_warmup_epochs"),
    (["data.val_size=0"], "data.val_size"),
    (["data.limit=100", "data.val_size=100"], "data.limit"),
    (["+lr=0.1"], "lr"),
]


@pytest.mark.parametrize(("overrides", "key"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as caught:
        validate(compose_config(*overrides))
    assert caught.value.key == key
    message = str(caught.value)
    assert f"`{key}`" in message and "Allowed:" in message
    assert "\n" not in message  # one paragraph


def test_config_module_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, aetrain.config, aetrain.commands.train; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_config_round_trips_through_a_plain_dict():
    cfg = validate(compose_config("experiment=seed_sparse_kl", "logger=[csv,tensorboard]"))
    # a checkpoint's config reads back without its loggers (evaluating it needs none)
    assert RunConfig.from_dict(cfg.to_dict()) == dataclasses.replace(cfg, logger={})


def test_a_config_from_before_loggers_reads_back():
    saved = validate(compose_config()).to_dict()
    del saved["logger"]
    saved["trainer"]["tensorboard"] = True  # what checkpoints of the earlier release store
    assert RunConfig.from_dict(saved) == dataclasses.replace(validate(compose_config()), logger={})


def test_conv_vae_is_a_variational_variant_with_the_conv_layers():
    from aetrain.config import ConvVAEVariant, VariationalVariant

    cfg = validate(compose_config("variant=conv_vae", "variant.beta=4", "latent_size=2"))
    assert isinstance(cfg.variant, ConvVAEVariant) and isinstance(cfg.variant, VariationalVariant)
    assert (cfg.variant.beta, cfg.variant.latent_loss, cfg.variant.encoder_filters) == (
        4.0,
        "log_var",
        [16, 32, 64],
    )
    assert set(cfg.logger) == {"csv"}  # the default logger
    # what a checkpoint stores reads back the same (less the loggers)
    assert RunConfig.from_dict(cfg.to_dict()) == dataclasses.replace(cfg, logger={})


def test_the_default_strategy_is_default():
    assert validate(compose_config()).trainer.strategy == "default"


@pytest.mark.parametrize("search", options("hparams_search"))
def test_every_search_composes_into_a_valid_first_trial(search):
    """Each searched key must exist in the composed config, or every trial would be refused."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"hparams_search={search}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params, search
    for key in params:
        assert OmegaConf.select(cfg, key) is not None, key
    assert isinstance(validate(cfg), RunConfig)
