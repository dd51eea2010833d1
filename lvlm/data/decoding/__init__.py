"""Media decoding: images to RGB PIL images, videos to uint8 ``[t, h, w, 3]`` tensors of uniformly sampled
frames, through PyAV (default; skips disposable H.264 pictures) or decord. Encoding helpers (H.264 mp4 writing and
re-encoding) live in :mod:`lvlm.data.decoding.encoding`.
"""

from lvlm.data.decoding.errors import ImageDecodeError, MediaDecodeError, VideoDecodeError
from lvlm.data.decoding.image import decode_image
from lvlm.data.decoding.sampling import uniform_frame_indices
from lvlm.data.decoding.video import available_backends, decode_frames, decode_video, default_backend

__all__ = [
    "ImageDecodeError",
    "MediaDecodeError",
    "VideoDecodeError",
    "available_backends",
    "decode_frames",
    "decode_image",
    "decode_video",
    "default_backend",
    "uniform_frame_indices",
]
