"""aetrain's benchmark: the seed's recipe against aetrain's defaults (`python -m bench`)."""
