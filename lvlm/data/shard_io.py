"""Reading shards: expand a source pattern into URLs, open any URL, stream samples, list keys without reading.

URLs may be local paths, `pipe:` commands, http(s), or any fsspec URL (`s3://`, `gs://`, ...; fsspec is used for
schemes WebDataset's `gopen` does not know). Brace patterns (`shard-{000..009}.tar`) are expanded by WebDataset;
glob patterns (`train-*.tar`) by the filesystem (local glob, or fsspec glob for remote URLs). A source ending in
`.json` is a manifest written by `lvlm shards` (`lvlm.data.manifest`): it expands into the shards it lists.
"""

from __future__ import annotations

import glob
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

import webdataset as wds
from webdataset.gopen import gopen_schemes
from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_expander

from lvlm.data.manifest import is_manifest, manifest_shards

Handler = Callable[[Exception], bool]


def expand_pattern(pattern: str) -> list[str]:
    """Expands a source pattern (braces, globs, manifests, `::`-joined lists) into a list of shard URLs.

    Globs are sorted; a manifest gives its shards in its own order.

    Raises:
        FileNotFoundError: If the pattern matches no shard.
        lvlm.data.manifest.ManifestError: If a manifest is unreadable, malformed or names missing shards.
    """
    urls: list[str] = []
    for url in wds.shardlists.expand_urls(pattern):
        if is_manifest(url):
            urls += manifest_shards(url, open_shard)
        elif url.startswith("pipe:") or not any(c in url for c in "*?["):
            urls.append(url)
        elif "://" in url:
            import fsspec

            fs, path = fsspec.core.url_to_fs(url)
            urls += sorted(fs.unstrip_protocol(p) for p in fs.glob(path))
        else:
            urls += sorted(glob.glob(url))
    if not urls:
        raise FileNotFoundError(f"data source pattern {pattern!r} matches no shard; check the path or glob")
    return urls


def open_shard(url: str) -> Any:
    """Opens a shard URL for binary reading (WebDataset's `gopen`, or fsspec for other schemes)."""
    scheme = urlparse(url).scheme
    if url.startswith("pipe:") or scheme in ("", "file") or scheme in gopen_schemes or len(scheme) == 1:
        return wds.gopen(url, "rb")
    import fsspec

    return fsspec.open(url, "rb").open()


def open_error(url: str, err: Exception) -> RuntimeError:
    """The error reported for a shard that cannot be opened: its URL and the opener's error type and message
    (an fsspec opener's `FileNotFoundError` message is only the key, so the type says what happened)."""
    return RuntimeError(f"cannot open shard {url}: {type(err).__name__}: {err}")


def read_shards(urls: Iterable[str], handler: Handler) -> Iterator[dict[str, Any]]:
    """Streams raw samples (`__key__`, `__url__`, member bytes) from shards, in order.

    Args:
        urls: Shard URLs (may be infinite).
        handler: Called with an exception from an unreadable shard or member; True continues, False stops.
    """
    for url in urls:
        try:
            stream = open_shard(url)
        except Exception as err:  # noqa: BLE001 - any opener error is reported and the shard skipped
            if handler(open_error(url, err)):
                continue
            return
        try:
            files = tar_file_expander([{"url": url, "stream": stream}], handler=handler)
            yield from group_by_keys(files, handler=handler)
        finally:
            _close(stream, url, handler)


def _close(stream: Any, url: str, handler: Handler) -> None:
    # Closing a `pipe:` stream waits for its command: a failed command (missing file, ...) surfaces here.
    try:
        stream.close()
    except Exception as err:  # noqa: BLE001
        handler(RuntimeError(f"shard {url}: {err}"))


def list_keys(url: str, handler: Handler) -> list[str]:
    """The sample keys of one shard, in order, without reading any member's data.

    A local tar is read by seeking from header to header; other URLs are streamed (their data is read and dropped).
    """
    keys: list[str] = []

    def record(name: str) -> bool:
        prefix, _ = base_plus_ext(name)
        if prefix is not None and (not keys or keys[-1] != prefix):
            keys.append(prefix)
        return False

    if os.path.isfile(url):
        try:
            with tarfile.open(url, "r:") as tar:
                for member in tar:
                    if member.isfile() and not member.name.startswith("__"):  # WebDataset skips `__meta__`
                        record(member.name)
        except (OSError, tarfile.TarError) as err:
            handler(RuntimeError(f"shard {url}: {err}"))
        return keys

    try:
        stream = open_shard(url)
    except Exception as err:  # noqa: BLE001
        handler(open_error(url, err))
        return keys
    try:
        for _ in tar_file_expander([{"url": url, "stream": stream}], handler=handler, select_files=record):
            pass
    finally:
        _close(stream, url, handler)
    return keys
