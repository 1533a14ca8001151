"""Bad command lines through the real ``aetrain``: a clear paragraph, the right exit code, no traceback,
and (for aetrain's own checks) no TensorFlow import: a fake ``tensorflow`` that fails on import is on
the path of every run here."""

from __future__ import annotations

import pytest

from cli_runs import commands_in_one_process, plain_text

# (overrides, exit code, words the message must contain). Exit 2: aetrain's checks, naming the key
# and the value; exit 1: Hydra's own composition errors.
BAD_COMMAND_LINES = [
    (["latent_size=0"], 2, ["`latent_size`", "= 0", "an integer from 1 to 65536"]),
    (["latent_size=1000000000000"], 2, ["`latent_size`", "1000000000000", "an integer from 1 to 65536"]),
    (["latent_size=abc"], 2, ["`latent_size`", "'abc'", "an integer"]),
    (["seed=-1"], 2, ["`seed`", "-1", "an integer from 0 to 4294967295"]),
    (["seed=4294967296"], 2, ["`seed`", "4294967296", "an integer from 0 to 4294967295"]),
    (["trainer.weight_decay=inf"], 2, ["`trainer.weight_decay`", "inf", "a finite number >= 0"]),
    (["trainer.ema=1"], 2, ["`trainer.ema`", "1", "a number between 0 and 1"]),
    (["data.dir=${oc.env:AETRAIN_SURELY_UNSET}"], 2, ["`data.dir`", "AETRAIN_SURELY_UNSET", "not found"]),
    (["trainer.epochs=0"], 2, ["`trainer.epochs`", "0", "an integer from 1 to"]),
    (["trainer.epochs=null"], 2, ["`trainer.epochs`", "None"]),
    (["trainer.batch_size=1.5"], 2, ["`trainer.batch_size`", "1.5", "int"]),
    (["trainer.learning_rate=-1"], 2, ["`trainer.learning_rate`", "-1", "a number > 0"]),
    (["trainer.optimizer=adamx"], 2, ["`trainer.optimizer`", "'adamx'", "'adam'"]),
    (["trainer.deterministic=maybe"], 2, ["`trainer.deterministic`", "'maybe'", "bool"]),
    (["trainer.precision=float16"], 2, ["`trainer.precision`", "'float16'", "mixed_float16"]),
    (["trainer.warmup_epochs=20"], 2, ["`trainer.warmup_epochs`", "20", "below trainer.epochs"]),
    (["trainer.batch_splits=0"], 2, ["`trainer.batch_splits`", "0", "auto (one slice per CPU core)"]),
    (["sparsity=kl", "trainer.batch_splits=2"], 2, ["`trainer.batch_splits`", "auto or 1 with sparsity=kl"]),
    (["trainer.batch_size=64", "trainer.batch_splits=1000"], 2, ["`trainer.batch_splits`", "from 1 to 64"]),
    (["trainer.batch_size=512", "trainer.batch_splits=65"], 2, ["`trainer.batch_splits`", "most 64 slices"]),
    (
        ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=-1"],
        2,
        ["`hydra.sweeper.n_trials`", "-1", "an integer >= 0"],
    ),
    (["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=0"], 2, ["`hydra.launcher.n_jobs`", "= 0"]),
    (["noise=dropout", "noise.rate=1.5"], 2, ["`noise.rate`", "1.5", "strictly between 0 and 1"]),
    (["noise=gaussian", "noise.stddev=0"], 2, ["`noise.stddev`", "0", "a number > 0"]),
    (["sparsity=kl", "sparsity.target=1.5"], 2, ["`sparsity.target`", "1.5", "between 0 and 1"]),
    (["variant=vae", "sparsity=l1"], 2, ["`sparsity`", "'l1'", "sparsity=none with variant=vae"]),
    (
        ["variant=conv", "variant.encoder_filters=[16,32]"],
        2,
        ["`variant.decoder_filters`", "[32, 16]", "1 integers"],
    ),
    (
        [
            "variant=conv_vae",
            "data=digits",
            "variant.encoder_filters=[8,8,8,8]",
            "variant.decoder_filters=[8,8,8]",
        ],
        2,
        ["`variant.encoder_filters`", "4 stages shrink 8x8 (digits) below 1x1", "at most 3 stages"],
    ),
    (["data=image_folder"], 2, ["`data.dir`", "the folder of your PNG/JPEG images"]),
    (["data=cifar10", "data.channels=1"], 1, ["Could not override 'data.channels'"]),
    (["data=digits", "data.dir=/somewhere"], 1, ["Could not override 'data.dir'"]),
    (["variant.activation=relux"], 2, ["`variant.activation`", "'relux'", "'relu'"]),
    (["data.limit=100", "data.val_size=200"], 2, ["`data.limit`", "100", "data.val_size (200)"]),
    (["+trainer.momentum=0.9"], 2, ["`trainer.momentum`", "0.9", "no setting called 'momentum'"]),
    (["+lr=0.1"], 2, ["`lr`", "0.1", "aetrain has no such setting"]),
    (["trainer.resume=/no/such/run"], 2, ["`trainer.resume`", "/no/such/run", "There is no folder"]),
    (["foo=1"], 1, ["Could not override 'foo'", "aetrain --cfg job"]),
    (["variant=nope"], 1, ["Could not find 'variant/nope'", "conv", "dense", "vae", "aetrain --help"]),
    (["latent_size=${oops"], 1, ["latent_size=${oops", "aetrain --help"]),
]


@pytest.fixture(scope="module")
def refused_runs(once_per_session, tmp_path_factory) -> dict[str, tuple[int, str]]:
    """Every bad command line, one after another in one process that cannot import TensorFlow (each
    in its own folder), once for all test workers."""

    def refuse_all() -> dict[str, tuple[int, str]]:
        jobs = [(overrides, tmp_path_factory.mktemp("refused")) for overrides, _, _ in BAD_COMMAND_LINES]
        done = commands_in_one_process("aetrain", jobs, without_tensorflow=True)
        return {
            " ".join(overrides): (result.returncode, result.stdout + result.stderr)
            for (overrides, _), result in zip(jobs, done, strict=True)
        }

    return once_per_session("refused_runs", refuse_all)


@pytest.mark.parametrize(
    ("overrides", "exit_code", "words"), BAD_COMMAND_LINES, ids=[" ".join(o) for o, _, _ in BAD_COMMAND_LINES]
)
def test_bad_command_line_is_refused_clearly(refused_runs, overrides, exit_code, words):
    returncode, output = refused_runs[" ".join(overrides)]
    text = plain_text(output)
    assert returncode == exit_code, output
    for word in words:
        assert word in text, f"{word!r} missing from: {text}"
    assert "Traceback" not in output
    assert "forbid importing TensorFlow" not in output  # refused before TensorFlow was imported
    if exit_code == 2:
        assert "Allowed:" in text and "Fix it on the command line" in text


def test_there_are_at_least_15_distinct_bad_inputs():
    keys = {overrides[-1].split("=")[0].lstrip("+") for overrides, _, _ in BAD_COMMAND_LINES}
    assert len(keys) >= 15
