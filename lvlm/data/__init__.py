"""Data: shards, decoding, transforms, templates, tokenization, collation and the ``LVLMDataModule``."""

import importlib

__all__ = ["LVLMDataModule"]


def __getattr__(name: str):
    # Lazy, so that `lvlm.data.decoding` and friends do not import Lightning.
    if name == "LVLMDataModule":
        return importlib.import_module("lvlm.data.datamodule").LVLMDataModule
    raise AttributeError(f"module 'lvlm.data' has no attribute {name!r}")
