"""LanguageBind's video encoder block: temporal attention over frames, then the usual CLIP block.

Faithful to ``LanguageBind_Video_merge``: in every layer a temporal embedding ``[1, T, d]``
is added to each token track (CLS included) when ``T != 1``; then a pre-norm self-attention across the
``T`` frames at each spatial position (bidirectional, no mask); then CLIP's spatial block. Parameter
names match the released checkpoint: ``temporal_embedding``, ``temporal_attn.{q,k,v,out}_proj``,
``temporal_layer_norm1``.

Legend: ``b`` videos, ``t`` frames, ``k`` tokens per frame, ``d`` width.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig
from transformers.models.clip.modeling_clip import CLIPAttention, CLIPEncoderLayer


class TemporalCLIPEncoderLayer(CLIPEncoderLayer):
    """A CLIP encoder layer preceded by temporal attention (LanguageBind's ``add_time_attn``).

    Args:
        config: the tower's vision config.
        num_frames: frames the temporal embedding was trained with (8 for the released tower).
    """

    def __init__(self, config: CLIPVisionConfig, num_frames: int) -> None:
        super().__init__(config)
        self.trained_frames = num_frames
        self.temporal_embedding = nn.Parameter(torch.zeros(1, num_frames, config.hidden_size))
        nn.init.normal_(self.temporal_embedding, std=config.hidden_size**-0.5)
        self.temporal_attn = CLIPAttention(config)
        self.temporal_layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def temporal_embedding_for(self, t: int) -> torch.Tensor:
        """``[1, t, d]``: the trained embedding, linearly interpolated when ``t`` differs from it."""
        if t == self.trained_frames:
            return self.temporal_embedding
        emb = self.temporal_embedding.transpose(1, 2)  # [1, d, T]
        return F.interpolate(emb.float(), size=t, mode="linear", align_corners=True).to(emb.dtype).transpose(1, 2)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, num_frames: int = 1, **kwargs
    ) -> torch.Tensor:
        """``[(b t), k, d]`` → ``[(b t), k, d]`` with ``t = num_frames`` consecutive rows per video."""
        t = num_frames
        bt, k, d = hidden_states.shape
        tracks = hidden_states.reshape(bt // t, t, k, d).transpose(1, 2).reshape(-1, t, d)  # [(b k), t, d]
        if t != 1:
            tracks = tracks + self.temporal_embedding_for(t).to(tracks.dtype)
        attended, _ = self.temporal_attn(hidden_states=self.temporal_layer_norm1(tracks))
        tracks = tracks + attended
        hidden_states = tracks.reshape(bt // t, k, t, d).transpose(1, 2).reshape(bt, k, d)
        return super().forward(hidden_states, attention_mask, **kwargs)


def warn_frame_count(t: int, trained: int) -> None:
    """One clear warning when a video has a different frame count than the tower was trained on."""
    warnings.warn(
        f"LanguageBind video tower trained with {trained} frames got {t}: its temporal embedding is linearly "
        f"interpolated to {t} positions. Quality may drop; set num_frames={trained} in the data config to match.",
        stacklevel=3,
    )
