"""`python -m aetrain`: the training command. Importing this module runs nothing."""

if __name__ == "__main__":
    from aetrain.commands.scripts import aetrain

    aetrain()
