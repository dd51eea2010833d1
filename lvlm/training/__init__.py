"""Training: ``LVLMModule`` (the LightningModule) and its settings, optimisation, LoRA, FSDP sharding and meta-device
initialisation, callbacks (progress, alignment diagnostics, requeue), export of the trained model and projector, and
rebuilding a module or a model from a run checkpoint.
"""
