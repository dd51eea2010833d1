"""Modalities: the built-in image and video components (shard members, decoding, transform, batching), written
against the one interface a plugin's are (:class:`Modality`, declared with the model in :mod:`lvlm.models.modality`
and re-exported here, where plugins import it); the catalog of installed ones; the modalities of a saved model.
This layer sits above ``lvlm.models`` and ``lvlm.data`` and below training, inference and the applications.
"""

from lvlm.modalities.image import ImageModality
from lvlm.modalities.video import VideoModality
from lvlm.models.modality import Modality, TowerFacts

__all__ = ["ImageModality", "Modality", "TowerFacts", "VideoModality"]
