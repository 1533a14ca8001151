"""What checking a config knows of a logger (the ``logger`` group): the base of its settings.

A logger is one class, named by the ``_target_`` of its YAML: a dataclass whose fields are its
settings, derived from aetrain.training.loggers.Logger (what it does during a run), which derives
from :class:`LoggerSettings` (what ``validate`` types and checks, aetrain.config.schema).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass
class LoggerSettings:
    """Base of every logger's settings: a dataclass whose fields are the settings in its YAML file."""

    #: (module, extra): a package the logger imports, and the aetrain extra that installs it.
    requires: ClassVar[tuple[str, str] | None] = None

    def check(self, key: str) -> None:
        """Refuse a bad setting with ConfigError naming ``key``.SETTING (its type is checked already)."""
