"""The same frames give the same mp4 bytes, every time, from any thread.

x264's MB-tree rate control reads uninitialised memory in its AVX-512 kernels, so before ``encode_mp4`` turned it off
(``mbtree=0``) the same world clip was coded a little differently now and then, depending on what the heap held:
busy heaps (other threads encoding, a loaded machine) made it common. On a CPU without AVX-512 the old encoder was
already deterministic, so there this test passes either way.
"""

from __future__ import annotations

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from lvlm.data.decoding.encoding import encode_mp4
from lvlm.data.synthetic import WorldSizes, sample_scene
from lvlm.data.synthetic_render import render_video

ROUNDS = 12  # per thread and clip: 2 threads x 4 clips x 12 = 96 encodes, about a second


def world_clips(count: int) -> list[np.ndarray]:
    """The first ``count`` video clips of the quickstart's world (seed 0), rendered as the world renders them."""
    clips, index, sizes = [], 0, WorldSizes()
    while len(clips) < count:
        scene = sample_scene(random.Random(f"0/stage1/train/{index}"), "stage1/train", sizes)
        if scene["modality"] == "video":
            clips.append(render_video(scene, sizes.image_size, sizes.video_frames))
        index += 1
    return clips


def digests(clips: list[np.ndarray], seed: int) -> list[list[str]]:
    """Encode every clip ``ROUNDS`` times, with other allocations in between (as a busy process has)."""
    rng, churn, out = random.Random(seed), [], [[] for _ in clips]
    for _ in range(ROUNDS):
        for k, frames in enumerate(clips):
            churn = [*churn[-16:], rng.randbytes(rng.randint(1, 1 << 17))]
            out[k].append(hashlib.sha256(encode_mp4(frames, fps=8, gop=len(frames))).hexdigest())
    return out


def test_the_same_frames_give_one_output_from_two_threads_at_once():
    clips = world_clips(4)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(digests, [clips, clips], [1, 2]))
    distinct = [len({*runs[0][k], *runs[1][k]}) for k in range(len(clips))]
    assert distinct == [1] * len(clips)


def test_different_frames_give_different_outputs():
    clips = world_clips(2)
    assert encode_mp4(clips[0]) != encode_mp4(clips[1])
    assert encode_mp4(clips[0]) != encode_mp4(clips[0], crf=30)
