"""Reading an evaluation set sample by sample, where a repeated key is a new sample, never a merge.

WebDataset's `group_by_keys` joins consecutive members that share a key, and raises on a member name it has
already seen in the sample, so a tar holding `a.json a.jpg a.json a.jpg` (the same key twice in a row) gives
one sample and an error, and an evaluation would silently lose one. Here a new sample starts whenever the key
changes *or* a member of the current sample appears again; the index (`sample_keys`) and the reader
(`read_samples`) group the same way, so every copy is listed and delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from webdataset.tariterators import base_plus_ext, tar_file_expander

from lvlm.data.shard_io import open_error, open_shard

Handler = Callable[[Exception], bool]


class _Grouper:
    """Says, member by member, when a new sample starts (the rule of the module docstring)."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.members: set[str] = set()

    def place(self, name: str) -> tuple[str, str, bool] | None:
        """`(key, member, opens a new sample)` of a tar member name; None for a file outside any sample."""
        key, member = base_plus_ext(name)
        if key is None:
            return None
        member = member.lower()
        new = key != self.key or member in self.members
        if new:
            self.key, self.members = key, set()
        self.members.add(member)
        return key, member, new


def _members(url: str, handler: Handler, select: Callable[[str], bool] | None = None) -> Iterator[dict[str, Any]]:
    try:
        stream = open_shard(url)
    except Exception as err:  # noqa: BLE001 - any opener error is reported and the shard skipped
        handler(open_error(url, err))
        return
    try:
        yield from tar_file_expander([{"url": url, "stream": stream}], handler=handler, select_files=select)
    finally:
        try:
            stream.close()
        except Exception as err:  # noqa: BLE001 - a failed `pipe:` command surfaces when closed
            handler(RuntimeError(f"shard {url}: {err}"))


def sample_keys(url: str, handler: Handler) -> list[str]:
    """The key of every sample of one shard, in order, a repeated key once per copy (no member data is kept)."""
    keys: list[str] = []
    grouper = _Grouper()

    def record(name: str) -> bool:
        placed = grouper.place(name)
        if placed is not None and placed[2]:
            keys.append(placed[0])
        return False

    for _ in _members(url, handler, select=record):
        pass
    return keys


def read_samples(urls: Iterable[str], handler: Handler) -> Iterator[dict[str, Any]]:
    """Raw samples (`__key__`, `__url__`, member bytes) of the shards, in order, grouped as `sample_keys` lists."""
    for url in urls:
        grouper, sample = _Grouper(), None
        for member in _members(url, handler):
            if "fname" not in member:  # the end-of-shard marker
                continue
            placed = grouper.place(member["fname"])
            if placed is None:
                continue
            key, name, new = placed
            if new:
                if sample is not None:
                    yield sample
                sample = {"__key__": key, "__url__": url}
            sample[name] = member["data"]
        if sample is not None:
            yield sample
