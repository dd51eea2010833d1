"""Pixel statistics of CLIP-family towers and the uint8 -> normalised float conversion they share.

Legend: ``h``/``w`` pixels. Lives with the towers that declare their statistics; the data side imports it.
"""

from __future__ import annotations

import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalize_pixels(chw_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., c, h, w]`` (any strides, any device) -> contiguous float32 ``(x / 255 - mean) / std``.

    ``mean`` and ``std`` hold ``c`` values (any channel count: 3 for RGB, 1 for a depth map).

    One pass converts (and makes contiguous), two in-place passes scale and shift: the float frames are never
    copied again. The data workers (``normalize=False``) and the towers (uint8 input) share this arithmetic,
    so both places give the same values.
    """
    mean, std = mean.to(chw_uint8.device, torch.float32), std.to(chw_uint8.device, torch.float32)
    out = torch.empty(chw_uint8.shape, dtype=torch.float32, device=chw_uint8.device)
    out.copy_(chw_uint8)
    return out.mul_((1.0 / (255.0 * std))[:, None, None]).sub_((mean / std)[:, None, None])
