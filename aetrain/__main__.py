from aetrain.cli import entry

entry()
