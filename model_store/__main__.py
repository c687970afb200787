from model_store.cli import models

models()
