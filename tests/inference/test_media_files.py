"""Media files → tensors with the tower's deterministic preprocessing; clear errors for bad files."""

from __future__ import annotations

import pytest
import torch

from lvlm.data.decoding.errors import VideoDecodeError
from lvlm.inference.media_files import (
    MissingMediaFileError,
    UnsupportedMediaError,
    check_media_file,
    file_modality,
    load_media,
)


def test_modalities_and_shapes(session, media_dir):
    assert file_modality(media_dir / "red.png") == "image" and file_modality(media_dir / "right.mp4") == "video"
    image = load_media(session, "image", media_dir / "blue.jpg")
    video = load_media(session, "video", media_dir / "right.mp4")
    assert image.shape == (3, 28, 28) and video.shape == (4, 3, 28, 28)
    assert torch.equal(video, load_media(session, "video", media_dir / "right.mp4"))  # no random flip


def test_errors_name_the_file(session, media_dir):
    with pytest.raises(UnsupportedMediaError, match=r"notes\.txt.*jpg, jpeg, png.*mp4"):
        file_modality(media_dir / "notes.txt")
    with pytest.raises(MissingMediaFileError, match="nope.jpg"):
        check_media_file(media_dir / "nope.jpg")
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        load_media(session, "video", media_dir / "broken.mp4", key="k")
