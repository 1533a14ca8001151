raise ImportError("the fault tests hide MLflow: as after a plain `pip install aetrain`")
