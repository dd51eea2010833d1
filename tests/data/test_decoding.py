"""Decoding of real images and H.264 videos written by PyAV/PIL: backend parity, sampling, typed errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from media_fixtures import (
    encode_h264,
    encode_video,
    image_bytes,
    make_image,
    moving_square_frames,
    write_image,
    write_mp4,
)
from PIL import Image

from lvlm.data.decoding import (
    ImageDecodeError,
    VideoDecodeError,
    available_backends,
    decode_frames,
    decode_image,
    decode_video,
    default_backend,
    uniform_frame_indices,
)
from lvlm.data.decoding.encoding import encode_mp4, reencode_video

needs_decord = pytest.mark.skipif("decord" not in available_backends(), reason="decord has x86_64 wheels only")


def test_uniform_indices_match_the_original_linspace_and_include_both_ends():
    assert uniform_frame_indices(300, 8) == [0, 42, 85, 128, 170, 213, 256, 299]
    assert uniform_frame_indices(300, 8) == np.linspace(0, 299, 8, dtype=int).tolist()
    assert uniform_frame_indices(8, 8) == list(range(8))
    assert uniform_frame_indices(5, 1) == [0]


def test_short_videos_repeat_frames():
    assert uniform_frame_indices(3, 8) == [0, 0, 0, 0, 1, 1, 1, 2]
    assert uniform_frame_indices(1, 4) == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="0 frames"):
        uniform_frame_indices(0, 8)


def test_backends_listed_and_pyav_always_available():
    assert "pyav" in available_backends()
    assert default_backend() == available_backends()[0]


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize(("num_stored", "size"), [(1, (64, 48)), (3, (48, 64)), (8, (96, 64)), (300, (160, 120))])
def test_decoded_frames_are_the_sampled_frames(backend, num_stored, size):
    frames = moving_square_frames(num_stored, size)
    data = encode_h264(frames, gop=12)
    video = decode_video(data, 8, key="k", backend=backend)
    assert video.dtype == torch.uint8 and video.shape == (8, size[1], size[0], 3)
    expected = frames[uniform_frame_indices(num_stored, 8)].astype(np.float32)
    # x264 drops most of the +-6 noise (mean |noise| 3.2); measured mean error 4.4-4.6. A frame off by one
    # changes the blue channel by 28 levels at 8 frames, so this also checks the indices.
    assert np.abs(video.numpy().astype(np.float32) - expected).mean() < 5.5


@needs_decord
@pytest.mark.parametrize(
    ("num_stored", "size", "gop"),
    [(1, (64, 48), 12), (3, (40, 64), 12), (8, (96, 64), 4), (300, (160, 120), 30), (300, (64, 48), 250)],
)
def test_pyav_seeking_returns_exactly_decords_frames(num_stored, size, gop):
    data = encode_h264(moving_square_frames(num_stored, size, seed=num_stored), gop=gop)
    for num_frames in (1, 3, 8, num_stored):
        from_decord = decode_video(data, num_frames, backend="decord")
        from_pyav = decode_video(data, num_frames, backend="pyav")
        # both decode the same H.264 with libavcodec and convert with swscale: bit-identical
        assert torch.equal(from_decord, from_pyav)


@pytest.mark.parametrize(
    ("container_format", "codec"),
    [("matroska", "libx264"), ("webm", "libvpx-vp9"), ("avi", "mpeg4"), ("avi", "libx264"), ("mov", "libx264")],
)
def test_other_containers_decode_to_the_same_frames(container_format, codec):
    # AVI with x264 B-frames has packet timestamps that do not identify frames: PyAV falls back to counting
    frames = moving_square_frames(20, (64, 48))
    data = encode_video(frames, container_format, codec, gop=6)
    from_pyav = decode_video(data, 20, backend="pyav").numpy().astype(np.float32)
    # lossy codecs differ in quality, so check the order instead:
    # each decoded frame is closest to the source frame with its own index
    errors = np.abs(from_pyav[:, None] - frames[None].astype(np.float32)).mean(axis=(2, 3, 4))
    assert errors.argmin(axis=1).tolist() == list(range(20))
    from_pyav = torch.from_numpy(from_pyav.astype(np.uint8))
    if "decord" in available_backends():
        assert torch.equal(decode_video(data, 20, backend="decord"), from_pyav)


@needs_decord
def test_decord_buffer_bug_falls_back_to_pyav():
    data = encode_h264(moving_square_frames(3, (48, 64)))  # decord 0.6.0 cannot copy 48-px-wide frames
    assert torch.equal(decode_video(data, 3, backend="decord"), decode_video(data, 3, backend="pyav"))


@needs_decord
def test_reduced_size_decode_keeps_aspect_and_agrees_across_backends():
    data = encode_h264(moving_square_frames(8, (160, 120)))
    from_decord = decode_video(data, 8, short_side=48, backend="decord")
    from_pyav = decode_video(data, 8, short_side=48, backend="pyav")
    assert from_decord.shape == from_pyav.shape == (8, 48, 64, 3)
    # swscale bilinear (PyAV) vs torch antialiased bilinear (decord path): two filters, measured mean 1.2 and
    # max 35 (at the hard edges of the white square) on this clip
    diff = (from_decord.int() - from_pyav.int()).abs().float()
    assert diff.mean() < 2.0 and diff.max() < 64
    assert decode_video(data, 2, short_side=500, backend="pyav").shape == (2, 120, 160, 3)  # never upscales


@pytest.mark.parametrize("gop", [12, 250])
def test_disposable_pictures_are_skipped_without_changing_a_frame(gop):
    import av

    from lvlm.data.decoding.disposable import disposable_checker, is_disposable
    from lvlm.data.decoding.pyav_backend import decode_sequentially, open_container

    data = encode_h264(moving_square_frames(300, (96, 64), seed=gop), gop=gop)
    with open_container(data) as container:
        stream = container.streams.video[0]
        checker = disposable_checker(stream.codec_context)
        flags = [checker(packet) for packet in container.demux(stream) if packet.size]
    # x264 with 2 B-frames: the non-pyramid B-frames are non-reference, I and P frames never are
    assert checker is not None and 0.2 < sum(flags) / len(flags) < 0.7 and not flags[0]
    with open_container(data) as container:  # every packet decoded, frames counted: the reference
        everything = decode_sequentially(container, container.streams.video[0], list(range(300)), (96, 64))
    for num_frames in (8, 33, 300):
        wanted = uniform_frame_indices(300, num_frames)
        expected = torch.from_numpy(np.stack([everything[i] for i in wanted]))
        assert torch.equal(decode_video(data, num_frames, backend="pyav"), expected)
    # no checker for other codecs or Annex-B streams; malformed NAL lengths are never "disposable"
    vp9 = encode_video(moving_square_frames(4, (64, 48)), "webm", "libvpx-vp9")
    with av.open(io.BytesIO(vp9)) as container:
        assert disposable_checker(container.streams.video[0].codec_context) is None
    assert not is_disposable(b"\x00\x00\x00\x09\x01\x02")  # length runs past the end
    assert is_disposable(b"\x00\x00\x00\x02\x01\xaa") and not is_disposable(b"\x00\x00\x00\x02\x21\xaa")


@pytest.mark.parametrize("backend", available_backends())
def test_decode_from_path_equals_decode_from_bytes(tmp_path, backend):
    path = write_mp4(tmp_path / "clip.mp4", 8, (64, 48))
    assert torch.equal(decode_video(path, 4, backend=backend), decode_video(path.read_bytes(), 4, backend=backend))
    assert torch.equal(decode_video(str(path), 4, backend=backend), decode_video(path, 4, backend=backend))


def _truncated_mp4() -> bytes:
    data = encode_h264(moving_square_frames(8, (64, 48)))
    return data[: len(data) // 2]


def _truncated_faststart_mp4() -> bytes:
    # moov first: the index survives the cut, the frames at the end do not
    data = encode_video(moving_square_frames(60, (128, 96)), "mp4", options={"movflags": "faststart"})
    assert data.find(b"moov") < data.find(b"mdat")
    return data[: int(len(data) * 0.9)]


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_truncated_mp4, None),
        (_truncated_faststart_mp4, None),
        (lambda: b"", "zero bytes"),
        (lambda: b"this is not a video\n" * 50, None),
        (lambda: image_bytes(fmt="jpeg"), None),
    ],
    ids=["truncated", "truncated-faststart", "empty", "text", "jpeg"],
)
def test_bad_video_bytes_raise_with_the_key(backend, make, reason):
    with pytest.raises(VideoDecodeError, match=reason) as info:
        decode_video(make(), 8, key="sample_0042", backend=backend)
    assert info.value.key == "sample_0042" and "sample_0042" in str(info.value) and info.value.reason


@pytest.mark.parametrize("backend", available_backends())
def test_bad_video_files_name_the_file(tmp_path, backend):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"GIF89a not really a video")
    with pytest.raises(VideoDecodeError) as info:
        decode_video(fake, 8, key="k1", backend=backend)
    assert str(fake) in str(info.value) and info.value.source == str(fake)
    with pytest.raises(VideoDecodeError, match="no such file"):
        decode_video(tmp_path / "missing.mp4", 8, key="k2", backend=backend)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown video backend 'opencv'"):
        decode_video(b"x", 8, backend="opencv")


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_images_decode_to_rgb(tmp_path, fmt):
    path = write_image(tmp_path / f"x.{fmt}", (40, 30), fmt=fmt)
    image = decode_image(path, key="k")
    assert image.mode == "RGB" and image.size == (40, 30)
    reference = np.asarray(make_image((40, 30)), dtype=np.float32)
    tolerance = 0.0 if fmt == "png" else 6.0  # lossy codecs
    assert np.abs(np.asarray(image, dtype=np.float32) - reference).mean() <= tolerance
    assert np.array_equal(np.asarray(decode_image(path.read_bytes())), np.asarray(image))


@pytest.mark.parametrize(
    ("mode", "fmt"), [("L", "png"), ("L", "jpeg"), ("CMYK", "jpeg"), ("P", "png"), ("1", "png"), ("I;16", "png")]
)
def test_other_modes_convert_to_rgb(mode, fmt):
    image = decode_image(image_bytes((20, 10), fmt=fmt, mode=mode))
    assert image.mode == "RGB" and image.size == (20, 10)
    if mode in {"L", "1", "I;16"}:
        pixels = np.asarray(image)
        assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])


def test_16_bit_grayscale_is_rescaled_not_saturated():
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(buffer, format="PNG")
    assert np.asarray(decode_image(buffer.getvalue()))[0, 0].tolist() == [128, 128, 128]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(mode):
    image = decode_image(image_bytes((20, 10), fmt="png", mode=mode))
    pixels = np.asarray(image)
    assert pixels[:, 0].tolist() == [[255, 255, 255]] * 10  # alpha 0 in the first column: pure background
    opaque = np.asarray(make_image((20, 10), mode).convert("RGB"))[:, -1]
    assert np.abs(pixels[:, -1].astype(int) - opaque).max() <= 1  # alpha 255 in the last column: the colour


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff\xe0 corrupt jpeg", image_bytes(fmt="jpeg")[:60]])
def test_corrupt_images_raise_with_the_key(data):
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, key="img_7")
    assert info.value.key == "img_7" and "img_7" in str(info.value)


def test_frames_from_bytes_and_from_a_directory(tmp_path):
    frames = moving_square_frames(12, (32, 24))
    jpegs = []
    for i, frame in enumerate(frames):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
        jpegs.append(buffer.getvalue())
        (tmp_path / f"frame_{i}.jpg").write_bytes(buffer.getvalue())  # frame_10 must sort after frame_9
    video = decode_frames(jpegs, 4, key="f")
    assert video.shape == (4, 24, 32, 3)
    assert np.abs(video.numpy().astype(float) - frames[[0, 3, 7, 11]]).mean() < 4.0
    assert torch.equal(decode_frames(tmp_path, 4), video)
    assert decode_frames(jpegs[:2], 3, short_side=12).shape == (3, 12, 16, 3)


def test_bad_frames_raise_video_errors(tmp_path):
    with pytest.raises(VideoDecodeError, match="no frames"):
        decode_frames([], 8, key="empty")
    with pytest.raises(VideoDecodeError, match="frame 1") as info:
        decode_frames([image_bytes(), b"junk"], 2, key="bad_frame")
    assert "bad_frame" in str(info.value)
    with pytest.raises(VideoDecodeError, match="differ in size"):
        decode_frames([image_bytes((8, 8)), image_bytes((10, 8))], 2)


def test_encoder_gives_the_same_picture_and_reencode_shrinks(tmp_path: Path):
    frames = moving_square_frames(16, (96, 64))
    data = encode_mp4(frames, gop=4)
    assert encode_mp4(frames, gop=4) == data  # the same bytes (see test_encoding_determinism)
    decoded = decode_video(data, 16, backend="pyav")
    assert (decoded.int() - torch.from_numpy(frames).int()).abs().float().mean() < 4  # close to the input at crf 18
    small = reencode_video(encode_h264(frames), short_side=32, gop=4)
    video = decode_video(small, 16, backend="pyav")
    assert video.shape == (16, 32, 48, 3)
    with pytest.raises(VideoDecodeError):
        reencode_video(b"nope", short_side=32, key="r")


def coded_frames(data: bytes) -> np.ndarray:
    """Every frame as stored (no display rotation applied), decoded with plain PyAV: ``[t, h, w, 3]``."""
    import av

    with av.open(io.BytesIO(data)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_videos_decode_upright_and_alike_in_both_backends(codec, rotation):
    """A phone video's display matrix says "rotate": every backend returns the frames turned upright."""
    frames = moving_square_frames(6, (64, 48))
    data = encode_video(frames, codec=codec, rotation=rotation)
    upright = torch.from_numpy(np.ascontiguousarray(np.rot90(coded_frames(data), rotation // 90, axes=(1, 2))))
    from_pyav = decode_video(data, 6, backend="pyav")
    assert from_pyav.shape == upright.shape == ((6, 64, 48, 3) if rotation != 180 else (6, 48, 64, 3))
    assert torch.equal(from_pyav, upright)
    if "decord" in available_backends():
        assert torch.equal(decode_video(data, 6, backend="decord"), from_pyav)
    reduced = decode_video(data, 6, short_side=24, backend="pyav")  # the short side stays the short side
    assert reduced.shape == ((6, 32, 24, 3) if rotation != 180 else (6, 24, 32, 3))


def test_reencoding_a_rotated_video_keeps_it_upright():
    """`lvlm shards` re-encodes videos: the copy holds the upright frames (its own display matrix is plain)."""
    data = encode_video(moving_square_frames(6, (64, 48)), rotation=90)
    copy = reencode_video(data, short_side=48, gop=4)
    upright, copied = decode_video(data, 6, backend="pyav"), decode_video(copy, 6, backend="pyav")
    assert copied.shape == upright.shape == (6, 64, 48, 3)
    assert (copied.int() - upright.int()).abs().float().mean() < 4  # lossy re-encode of the same upright frames
