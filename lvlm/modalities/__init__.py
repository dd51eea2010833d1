"""Modalities: each kind of media as one component (placeholder, tower, shard members, decoding, transform,
batching). Image and video are built in and written against the same interface as a plugin's; this layer sits
above ``lvlm.models`` and ``lvlm.data`` and below training, inference and the applications.
"""

from lvlm.modalities.base import Modality, TowerFacts
from lvlm.modalities.image import ImageModality
from lvlm.modalities.video import VideoModality

__all__ = ["ImageModality", "Modality", "TowerFacts", "VideoModality"]
