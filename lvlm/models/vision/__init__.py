"""Vision towers: the ``VisionTower`` interface and its preprocessing, CLIP / LanguageBind towers (with the video
temporal layer), timm ViTs, and reading pretrained tower directories.
"""
