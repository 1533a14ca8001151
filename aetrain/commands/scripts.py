"""The console scripts of pyproject.toml: each command, run as a process of its own
(aetrain.commands.process_exit ends it as soon as the command is done)."""

from aetrain.commands.process_exit import console_script

aetrain = console_script("aetrain.commands.train:entry")
evaluate = console_script("aetrain.commands.evaluate:main")
generate = console_script("aetrain.commands.generate:main")
look = console_script("aetrain.commands.look:main")
report = console_script("aetrain.commands.report:main")
export = console_script("aetrain.commands.export:main")
