"""``python -m bench --scaling``: conv training throughput by slice count and thread count on this
machine, so that ``trainer.batch_splits=auto`` can be checked wherever a bigger machine is available.

Each row is a real ``aetrain`` run (threads are fixed when TensorFlow starts, so one process each);
its figure is the steady-epoch images/s from metrics.json. The rule to check: the ``auto`` row is
never slower than the ``batch_splits=1`` row.
"""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.aetrain_runs import run_aetrain


def scaling_configs(cores: int, quick: bool) -> list[tuple[str, list[str]]]:
    """(label, aetrain overrides) for each row, the slice and thread counts this machine can hold."""
    conv, one_slice = ["variant=conv"], ["variant=conv", "trainer.batch_splits=1"]
    rows = [("conv, batch_splits=auto", conv), ("conv, batch_splits=1", one_slice)]
    if quick:
        return rows
    rows += [
        (f"conv, batch_splits={n}", [*conv, f"trainer.batch_splits={n}"])
        for n in (2, 4, 8)
        if n <= max(cores, 2)
    ]
    rows += [
        (
            f"conv, 1 slice, intra {n} / inter 2",
            [*one_slice, f"trainer.intra_op_threads={n}", "trainer.inter_op_threads=2"],
        )
        for n in (1, 2, 4, 8, 16)
        if n < cores or n == 1
    ]
    rows += [
        ("conv, batch 512, 1 slice", [*one_slice, "trainer.batch_size=512"]),
        ("dense (defaults)", ["variant=dense"]),
        ("vae (defaults)", ["variant=vae"]),
    ]
    return rows


def measure(
    configs: list[tuple[str, list[str]]], common: list[str], epochs: int, work: Path, say
) -> list[tuple[str, int, str, float | None]]:
    """One aetrain run per row: (config, slices, intra / inter threads, images/s)."""
    rows = []
    for index, (label, overrides) in enumerate(configs):
        say(f"scaling {index + 1}/{len(configs)}: {label}")
        run = run_aetrain([*overrides, f"trainer.epochs={epochs}", *common], work / f"scaling-{index}")
        pools = run.metrics.get("thread_pools") or {}
        threads = "/".join(str(pools.get(key) or "TF's") for key in ("intra_op", "inter_op"))
        rows.append((label, run.metrics.get("batch_splits", 1), threads, run.metrics["images_per_second"]))
    return rows


def render(rows: list[tuple[str, int, str, float | None]], machine: dict[str, str], heading: str) -> str:
    table = report.markdown_table(
        ["config", "slices", "intra/inter threads", "images/s"],
        [[label, str(slices), threads, report.rate(rate)] for label, slices, threads, rate in rows],
    )
    rates = {label: rate for label, _, _, rate in rows}
    auto, one = rates.get("conv, batch_splits=auto"), rates.get("conv, batch_splits=1")
    verdict = ""
    if auto and one:
        word = "not slower" if auto >= one else "**slower**"
        figures = f"{report.rate(auto)} vs {report.rate(one)} images/s"
        verdict = f"`batch_splits=auto` against one slice: {figures} ({word})."
    lines = [
        heading,
        "",
        *[f"- {key}: {value}" for key, value in machine.items()],
        "",
        table,
        "",
        verdict,
        "",
    ]
    return "\n".join(lines)
