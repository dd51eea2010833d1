"""The shard manifest: ``manifest.json`` beside the shards ``lvlm shards`` writes, a data source in recipes.

A manifest names every shard of a dataset with its sample count, so a recipe says ``pattern: DIR/manifest.json``
instead of a brace range that has to guess how many shards there are::

    {
      "format": "lvlm-shards-manifest",
      "version": 1,
      "samples": 19998,
      "samples_by_modality": {"image": 19000, "text": 998},
      "skipped": 2,
      "skipped_by_reason": {"missing_file": 2},
      "shards": [{"url": "shard-000000.tar", "samples": 10000, "samples_by_modality": {...}}, ...]
    }

Shard URLs are relative to the manifest's own location (a local folder, or an ``http(s)://``/fsspec URL), or
absolute. :func:`manifest_shards` expands a manifest into shard URLs; :func:`lvlm.data.shard_io.expand_pattern`
calls it for every source ending in ``.json``.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlparse

from lvlm.core.errors import UserError

FORMAT, VERSION = "lvlm-shards-manifest", 1
MANIFEST_NAME = "manifest.json"


class ManifestError(UserError):
    """A manifest that cannot be used: unreadable, malformed, or naming shards that are not there."""


def is_manifest(url: str) -> bool:
    """True for a source that names a manifest (any path or URL ending in ``.json``)."""
    return url.split("?", 1)[0].endswith(".json")


def build_manifest(shards: Sequence[Mapping[str, Any]], skipped_by_reason: Mapping[str, int]) -> dict[str, Any]:
    """The manifest of shards ``[{"url", "samples", "samples_by_modality"}]`` (URLs relative to the manifest)."""
    by_modality: dict[str, int] = {}
    for shard in shards:
        for name, count in shard["samples_by_modality"].items():
            by_modality[name] = by_modality.get(name, 0) + count
    return {
        "format": FORMAT,
        "version": VERSION,
        "samples": sum(int(shard["samples"]) for shard in shards),
        "samples_by_modality": dict(sorted(by_modality.items())),
        "skipped": sum(skipped_by_reason.values()),
        "skipped_by_reason": dict(sorted(skipped_by_reason.items())),
        "shards": [dict(shard) for shard in shards],
    }


def read_manifest(url: str, opener: Callable[[str], IO[bytes]]) -> dict[str, Any]:
    """Read and check a manifest.

    Args:
        url: Local path or URL of the manifest.
        opener: Opens a URL for binary reading (``lvlm.data.shard_io.open_shard``).

    Raises:
        ManifestError: Unreadable, not JSON, or without a well-formed ``shards`` list (the message names the field).
    """
    try:
        with opener(url) as stream:
            manifest = json.loads(stream.read().decode("utf-8"))
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ManifestError(f"manifest {url}: cannot read it as JSON ({err})") from err
    except Exception as err:  # noqa: BLE001 - remote openers raise their own types
        raise ManifestError(f"manifest {url}: cannot open it ({type(err).__name__}: {err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ManifestError(f"manifest {url}: 'format' must be {FORMAT!r} (written by `lvlm shards`)")
    if manifest.get("version") != VERSION:
        raise ManifestError(f"manifest {url}: 'version' {manifest.get('version')!r} is not {VERSION}")
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise ManifestError(f"manifest {url}: 'shards' must be a list")
    for i, shard in enumerate(shards):
        if not (isinstance(shard, dict) and isinstance(shard.get("url"), str) and shard["url"]):
            raise ManifestError(f"manifest {url}: shards[{i}] must be an object with a 'url' string")
        if not isinstance(shard.get("samples"), int) or isinstance(shard["samples"], bool) or shard["samples"] < 0:
            raise ManifestError(f"manifest {url}: shards[{i}].samples must be a non-negative integer")
    return manifest


def manifest_shards(url: str, opener: Callable[[str], IO[bytes]]) -> list[str]:
    """The shard URLs a manifest lists, in its order, skipping shards with no sample.

    Raises:
        ManifestError: As :func:`read_manifest`; also when a local shard is missing (all missing ones named)
            or when the manifest lists no sample at all.
    """
    manifest = read_manifest(url, opener)
    urls = [resolve_shard_url(url, shard["url"]) for shard in manifest["shards"] if shard["samples"] > 0]
    if not urls:
        raise ManifestError(f"manifest {url}: lists no sample (was every record skipped? see its skipped_by_reason)")
    missing = [u for u in urls if _is_local(u) and not Path(u).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ManifestError(f"manifest {url}: {len(missing)} listed shard(s) missing: {shown}")
    return urls


def resolve_shard_url(manifest_url: str, shard_url: str) -> str:
    """A shard URL of a manifest made absolute: relative to the manifest's folder (or URL)."""
    if "://" in shard_url or shard_url.startswith("pipe:") or os.path.isabs(shard_url):
        return shard_url
    if _is_local(manifest_url):
        return os.path.normpath(os.path.join(os.path.dirname(manifest_url), shard_url))
    scheme = urlparse(manifest_url).scheme
    if scheme in ("http", "https"):
        return urljoin(manifest_url, shard_url)
    return posixpath.join(posixpath.dirname(manifest_url), shard_url)  # s3://bucket/dir/manifest.json and kin


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")
