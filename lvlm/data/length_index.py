"""Every training sample's token length, read before the epoch (what the packed single pass plans with).

Packing decides which samples share a micro-batch from their token lengths, and the exact single pass must know
the number of micro-batches before the epoch starts (every rank gets the same number). So each shard's samples
are tokenized once at start-up: a local tar is read by seeking from header to header and reading only the small
metadata members (`json`, `txt`, `cls`), media members standing in as empty bytes (tokenizing needs only their
names: one placeholder block per item); a remote shard is streamed once. Samples that fail to tokenize (bad
JSON, a marker/media mismatch, too long) are reported here and left out of the epoch.

Legend: `n` samples in a shard.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
