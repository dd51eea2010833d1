"""The loader's fast paths give the plain path's batches, bit for bit.

Fast paths: the padded-image resize that skips the padding rows' horizontal pass, the tokenizer's piece cache and
numpy-built ids, batches laid out in one shared-memory block by DataLoader workers, decoded RGB images not
copied. The plain path: pad then resize, a fresh tokenization per sample, `torch.tensor` ids, collation in the
main process.
"""

from __future__ import annotations

import functools
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from shard_fixtures import conv, good_samples, write_shards
from tokenizer_fixtures import PoolTower, tiny_tokenizer

from lvlm.data.collate import Collator
from lvlm.data.datamodule import LVLMDataModule
from lvlm.data.eval_samples import read_samples
from lvlm.data.eval_stream import partition
from lvlm.data.sample_pipeline import SampleProcessor
from lvlm.data.settings import DataSources, LoaderSettings, MediaSettings
from lvlm.data.sources import DataSource
from lvlm.data.templates import get_template
from lvlm.data.tokenization import SegmentTokenizer, tokenize_conversation
from lvlm.data.transforms import ImageTransform
from lvlm.modalities import ImageModality, VideoModality


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("size", [224, 7, (24, 40), (40, 24)])
def test_padded_resize_equals_padding_then_resizing(size, channels):
    transform = ImageTransform(size, (0.48, 0.45, 0.40)[:channels], (0.27,) * channels, mode="pad", normalize=False)
    rng, shapes = np.random.default_rng(0), random.Random(1)
    sides = [(640, 480), (480, 640), (64, 64), (3, 1), (1, 3)] + [
        (shapes.randint(1, 400), shapes.randint(1, 300)) for _ in range(12)
    ]
    for width, height in sides:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        image = image if channels == 3 else image.convert("L")
        fast = np.asarray(transform.pad_resize_and_center_crop(image))
        plain = np.asarray(transform.resize_and_center_crop(transform.expand_to_aspect(image)))
        assert fast.shape == plain.shape and np.array_equal(fast, plain), (width, height)


def test_a_reused_segment_tokenizer_gives_fresh_ids():
    tokenizer, template = tiny_tokenizer(), get_template("vicuna_v1")
    modalities = [ImageModality(functools.partial(PoolTower, 4, 16)).bind("image")]
    shared = SegmentTokenizer(tokenizer, modalities, 2)
    for question, answer in [("<image>\nwhat colour?", "red"), ("what colour?", "blue"), ("<image>\nwhat?", "red")]:
        args = (conv(question, answer)["conversations"], tokenizer, template, modalities, 2, 256)
        fresh, reused = tokenize_conversation(*args), tokenize_conversation(*args, segment_tokenizer=shared)
        for a, b in [(fresh.input_ids, reused.input_ids), (fresh.labels, reused.labels)]:
            assert a.dtype == b.dtype == torch.int64 and torch.equal(a, b)
        assert torch.equal(fresh.input_ids, torch.tensor(fresh.input_ids.tolist()))
    assert shared._pieces  # the template's pieces were remembered


def _modalities() -> dict:
    image = ImageModality(functools.partial(PoolTower, 4, 16), image_mode="pad").bind("image")
    video = VideoModality(functools.partial(PoolTower, 3, 16)).bind("video")
    return {"image": image, "video": video}


def _reference_batches(pattern_dir: Path, modalities: dict, batch_size: int) -> list[dict]:
    """The plain path: every sample read in order, a fresh processor (no cache) each, the image padded then
    resized, collated in this process, in the evaluation stream's batches."""
    tokenizer, template = tiny_tokenizer(), get_template("vicuna_v1")
    collator = Collator(tokenizer.pad_token_id, "right", list(modalities.values()))
    samples = []
    for raw in read_samples(sorted(str(p) for p in pattern_dir.glob("*.tar")), lambda err: False):
        processor = SampleProcessor(
            tokenizer, template, list(modalities.values()), 4, 128, keep_meta=True, media_dtype="uint8"
        )
        image_transform = processor._transforms["image"]
        plain = functools.partial(
            lambda t, img: torch.from_numpy(
                np.array(np.asarray(t.resize_and_center_crop(t.expand_to_aspect(img))).transpose(2, 0, 1))
            ),
            image_transform,
        )
        processor._transforms["image"] = plain
        samples.append(processor.load(processor.prepare(raw)))
    return [collator([samples[i] for i in batch]) for batch in partition(len(samples), 1, 0, batch_size)]


def test_worker_batches_equal_the_plain_path(tmp_path):
    samples = good_samples("s", 10)
    for sample in samples:  # landscape images: the padded-rows path
        for name in [n for n in sample if n.endswith("jpg")]:
            sample[name] = _landscape_jpeg()
    write_shards(tmp_path / "shards", "test", [samples[:6], samples[6:]])
    modalities = _modalities()
    dm = LVLMDataModule(
        sources=DataSources(test=[DataSource(str(tmp_path / "shards" / "*.tar"))]),
        media=MediaSettings(num_frames=4),
        loader=LoaderSettings(batch_size=3, num_workers=2),
        tokenizer=tiny_tokenizer(),
        modalities=modalities,
        max_length=128,
        run_dir=str(tmp_path / "run"),
    )
    batches = list(dm.test_dataloader())
    reference = _reference_batches(tmp_path / "shards", modalities, 3)
    assert len(batches) == len(reference) == 4
    for batch, plain in zip(batches, reference, strict=True):
        assert batch.keys() == plain.keys() and batch["keys"] == plain["keys"]
        for name, value in plain.items():
            if isinstance(value, torch.Tensor):
                got = batch[name]
                assert got.dtype == value.dtype and got.is_contiguous() and torch.equal(got, value), name
            else:
                assert batch[name] == value, name
        # from a worker, the batch's tensors arrive as views of one shared block
        storages = {t.untyped_storage().data_ptr() for t in batch.values() if isinstance(t, torch.Tensor)}
        assert len(storages) == 1


def test_batches_made_in_this_process_are_left_alone():
    tokenizer = tiny_tokenizer()
    collator = Collator(tokenizer.pad_token_id, "right", list(_modalities().values()))
    processor = SampleProcessor(tokenizer, get_template("vicuna_v1"), list(_modalities().values()), 4, 128)
    raw = {"__key__": "a", "json": json.dumps(conv("hi?", "yes")).encode()}
    batch = collator([processor.load(processor.prepare(raw))])
    assert not batch["input_ids"].is_shared()
    assert batch["input_ids"].untyped_storage().data_ptr() != batch["labels"].untyped_storage().data_ptr()


def _landscape_jpeg() -> bytes:
    pixels = np.random.default_rng(3).integers(0, 256, (18, 30, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
