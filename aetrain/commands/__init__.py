"""Every console script, and the only code that touches the process (exit codes, signals, logging).

``train`` is ``aetrain`` (the @hydra.main entry); ``evaluate``, ``generate``, ``look``, ``export`` and
``report`` are the companion commands (shared parts in ``companion``); each ends on an error through
aetrain.errors.failure (the codes: aetrain.exit_codes); ``extras`` refuses, before Hydra starts, options
whose package is missing or keys retired. ``scripts`` names them for pyproject.toml, each through
``process_exit``, which ends the process as soon as the command is done.
"""
