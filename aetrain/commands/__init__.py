"""Every console script, and the only code that touches the process (exit codes, signals, logging).

``train`` is ``aetrain`` (the @hydra.main entry); ``evaluate``, ``generate``, ``look``, ``export`` and
``report`` are the companion commands (shared parts in ``companion``); ``exit_codes`` is the one table of
exit codes; ``extras`` refuses, before Hydra starts, options whose package is missing or keys retired.
"""
