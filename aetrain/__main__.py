from aetrain.commands.train import entry

entry()
