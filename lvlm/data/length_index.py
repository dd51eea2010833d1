"""Every training sample's token length, read before the epoch (what the packed single pass plans with).

Packing decides which samples share a micro-batch from their token lengths, and the exact single pass must know
the number of micro-batches before the epoch starts (every rank gets the same number). So each shard's samples
are tokenized once at start-up: a local tar is read by seeking from header to header and reading only the small
metadata members (`json`, `txt`, `cls`), media members standing in as empty bytes (tokenizing needs only their
names: one placeholder block per item); a remote shard is streamed once. Samples that fail to tokenize (bad
JSON, a marker/media mismatch, too long) are reported here and left out of the epoch. Under `torch.distributed`,
each rank tokenizes every `w`-th shard and the ranks exchange their lengths (:func:`length_index`), so start-up
costs `1 / w` of the tokenizing (about 1,000 samples/s per rank measured on a shared CPU with the test tokenizer).

Legend: `n` samples in a shard, `w` ranks.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch.distributed as dist
from webdataset.tariterators import base_plus_ext

from lvlm.data.report import BadSampleReport
from lvlm.data.sample_errors import BadSampleError
from lvlm.data.sample_format import METADATA_MEMBERS
from lvlm.data.sample_pipeline import SampleProcessor
from lvlm.data.shard_io import read_shards


@dataclass(frozen=True)
class ShardLengths:
    """The usable samples of one shard with their token lengths.

    Attributes:
        url: The shard URL.
        keys: `[n]` sample keys in tar order (samples that fail to tokenize left out).
        lengths: `[n]` token counts, visual tokens included.
        multimodal: `[n]` whether the sample has media (modality grouping packs the two kinds apart).
    """

    url: str
    keys: tuple[str, ...]
    lengths: tuple[int, ...]
    multimodal: tuple[bool, ...]


def length_index(
    urls: Sequence[str], processor: SampleProcessor, report: BadSampleReport, rank: int, world_size: int
) -> list[ShardLengths]:
    """Every shard's lengths, in `urls` order; each bad sample reported once.

    When `torch.distributed` runs with `world_size` ranks, rank `r` tokenizes shards `r, r + w, ...` and the
    ranks all-gather the results (call it on every rank at the same point); otherwise this process tokenizes
    every shard and only rank 0 reports bad samples.
    """
    shared = world_size > 1 and dist.is_available() and dist.is_initialized() and dist.get_world_size() == world_size
    mine = list(dict.fromkeys(urls[rank::world_size] if shared else urls))
    muted, report.muted = report.muted, report.muted or (not shared and rank != 0)
    try:
        found = {url: shard_lengths(url, processor, report) for url in mine}
    finally:
        report.muted = muted
    if shared:
        gathered: list[dict[str, ShardLengths] | None] = [None] * world_size
        dist.all_gather_object(gathered, found)
        for part in gathered:
            found.update(part or {})
    return [found[url] for url in urls]


def shard_lengths(url: str, processor: SampleProcessor, report: BadSampleReport) -> ShardLengths:
    """Tokenizes every sample of one shard (no media read from a local tar); bad samples go to `report`."""
    keys: list[str] = []
    lengths: list[int] = []
    multimodal: list[bool] = []
    raw_samples = _local_samples(url, report) if os.path.isfile(url) else read_shards([url], report.shard_error)
    for raw in raw_samples:
        try:
            prepared = processor.prepare(raw)
        except BadSampleError as err:
            report.record_error(err, url)
            continue
        keys.append(prepared.key)
        lengths.append(len(prepared.tokens))
        multimodal.append(bool(prepared.media))
    return ShardLengths(url, tuple(keys), tuple(lengths), tuple(multimodal))


def _local_samples(url: str, report: BadSampleReport) -> Iterator[dict[str, Any]]:
    """Raw samples of a local tar grouped as WebDataset groups them, media members as empty bytes."""
    sample: dict[str, Any] | None = None
    try:
        with tarfile.open(url, "r:") as tar:
            for member in tar:
                if not member.isfile() or member.name.startswith("__"):  # WebDataset skips `__meta__`
                    continue
                prefix, suffix = base_plus_ext(member.name)
                if prefix is None:
                    continue
                suffix = suffix.lower()
                if sample is None or sample["__key__"] != prefix:
                    if sample is not None:
                        yield sample
                    sample = {"__key__": prefix, "__url__": url}
                if suffix in METADATA_MEMBERS:
                    handle = tar.extractfile(member)
                    sample[suffix] = handle.read() if handle is not None else b""
                else:
                    sample[suffix] = b""
    except (OSError, tarfile.TarError) as err:
        report.shard_error(RuntimeError(f"shard {url}: {err}"))
    if sample is not None:
        yield sample
