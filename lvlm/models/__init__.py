"""Models: ``VideoLLaVA`` (towers, one shared projector, an LLM, fused by placeholder tokens), the ``Modality``
declaration, the LLM wrapper, losses, packed attention, the generation engine (``generation``), vision towers
(``vision``), checkpoint layouts (``checkpoints``) and weight files (``io``). Imports only ``lvlm.core``.
"""
