"""Installed modalities: built-in and registered; which one a file belongs to; where markers go."""

from __future__ import annotations

import pytest

from lvlm.inference.media_files import UnsupportedMediaError, file_modality
from lvlm.modalities import ImageModality, VideoModality
from lvlm.modalities.catalog import in_marker_order, installed_modalities, installed_modality_classes


def test_built_in_modalities_come_first_and_tower_less():
    classes = installed_modality_classes()
    assert list(classes)[:2] == ["image", "video"]
    assert (classes["image"], classes["video"]) == (ImageModality, VideoModality)
    found = {m.name: m for m in installed_modalities()}
    assert found["image"].token == "<image>" and found["video"].input_name == "videos"


def test_markers_go_videos_first_then_images_then_others():
    assert in_marker_order(["image", "thermal", "video", "image"]) == ["video", "image", "image", "thermal"]


def test_a_file_belongs_to_the_modality_that_claims_its_extension(tmp_path):
    (tmp_path / "frames").mkdir()
    assert [file_modality(tmp_path / n) for n in ("a.PNG", "b.bmp", "c.webm", "frames")] == [
        "image", "image", "video", "video"
    ]  # fmt: skip
    with pytest.raises(UnsupportedMediaError, match=r"image: jpg, jpeg, png, webp, bmp; video: mp4"):
        file_modality(tmp_path / "notes.txt")
