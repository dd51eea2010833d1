"""lvlm-depth: depth maps (16-bit PNG, millimetres) as an lvlm modality, encoded by a small ViT tower."""

from lvlm_depth.modality import DepthModality
from lvlm_depth.tower import DepthTower

__all__ = ["DepthModality", "DepthTower"]
