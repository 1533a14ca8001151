"""aetrain's benchmark: the seed's recipe against aetrain's defaults, in one session. Run `python -m bench`."""
