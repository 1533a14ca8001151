raise ImportError("the fault tests hide this Hydra plugin: as after a plain `pip install aetrain`")
