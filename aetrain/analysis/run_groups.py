"""Runs that differ only in their seed (or in the keys ``aetrain-report --over`` names), summarised as
one group each: how many completed, and for each figure the mean, the standard deviation and a 95%
interval for the mean. One run's number says little; a group's mean and interval say how far to trust
a difference between two settings.

Pure functions on aetrain-report's rows (plain dicts); nothing is read or written here.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Summary:
    """``n`` values: their mean, sample standard deviation and the half-width of a 95% interval for the
    mean (Student's t with n - 1 degrees of freedom); the last two None below two values."""

    n: int
    mean: float
    std: float | None
    ci95: float | None


def summarise(values: list[float]) -> Summary:
    """mean, std = sqrt(sum (x - mean)^2 / (n - 1)), ci95 = t(0.975, n - 1) * std / sqrt(n)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Summary(n, mean, None, None)
    from scipy.stats import t

    std = statistics.stdev(values)
    return Summary(n, mean, std, float(t.ppf(0.975, n - 1)) * std / math.sqrt(n))


@dataclass
class Group:
    """The runs sharing ``setting`` (their overrides but the ones grouped over)."""

    setting: dict[str, str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Summary] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.setting.items()) or "all runs"

    @property
    def completed(self) -> list[dict[str, Any]]:
        return [row for row in self.runs if row["status"] == "completed"]


def group_runs(
    rows: list[dict[str, Any]], varied: list[str], over: list[str], figures: list[str], sort_key: str
) -> list[Group]:
    """``rows`` (ranked, one per run) grouped by the ``varied`` overrides not in ``over``; each group's
    ``figures`` summarised over its completed runs; groups ranked by the mean of ``sort_key``, those
    without a completed run last."""
    kept = [key for key in varied if key not in over]
    groups: dict[tuple, Group] = {}
    for row in rows:
        setting = {key: str(row.get(key, "")) for key in kept}
        groups.setdefault(tuple(setting.values()), Group(setting)).runs.append(row)
    for group in groups.values():
        for figure in figures:
            values = [float(row[figure]) for row in group.completed if _is_number(row.get(figure))]
            if values:
                group.figures[figure] = summarise(values)
    return sorted(groups.values(), key=lambda group: _rank(group, sort_key))


def _rank(group: Group, sort_key: str) -> tuple:
    summary = group.figures.get(sort_key)
    return (summary is None, summary.mean if summary else 0.0)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
