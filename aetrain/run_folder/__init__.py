"""The run folder: its layout (``layout``), claim and lock, atomic writes, checkpoints, resume, manifest."""
