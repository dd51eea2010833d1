"""Where a request's media come from: ``data:`` URLs, files under an allowed root, or (if allowed) remote URLs.

The server reads nothing the operator did not allow: a local path must resolve (symbolic links followed) inside
``media_root``, and ``http(s)`` URLs are fetched only with ``allow_remote``. Every source is capped at
``max_bytes`` before it is decoded.
"""

from __future__ import annotations

import base64
import binascii
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lvlm.inference.serve_errors import ApiError, bad_request

REMOTE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class MediaPolicy:
    """What media a server accepts.

    Attributes:
        media_root: local files are served from inside this folder only (None: no local files).
        allow_remote: fetch ``http://`` and ``https://`` URLs.
        max_bytes: largest encoded media item, in bytes.
    """

    media_root: Path | None = None
    allow_remote: bool = False
    max_bytes: int = 64 * 2**20


def read_media_url(url: str, policy: MediaPolicy, param: str) -> bytes:
    """The encoded bytes a media part names (``image_url``, ``NAME_url``; a declared part's payload as a data: URL).

    Args:
        url: a ``data:<mime>;base64,<data>`` URL, a ``file://`` URL or path (absolute, or relative to the media
            root), or an ``http(s)://`` URL.
        policy: what the server allows.
        param: the request field, for errors.

    Raises:
        ApiError: 400 for a malformed or oversized item or a missing file, 403 for a refused source.
    """
    if url.startswith("data:"):
        return _data_url(url, policy, param)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in {"http", "https"}:
        if not policy.allow_remote:
            raise ApiError(403, f"remote media URLs are off on this server ({url[:80]}); send a data: URL "
                           "or start the server with --allow-remote-media", "remote_media_refused", param)  # fmt: skip
        return _remote(url, policy, param)
    if scheme in {"", "file"}:
        return _local_file(urllib.parse.unquote(url[7:]) if scheme == "file" else url, policy, param)
    raise bad_request(
        f"unsupported media URL scheme {scheme!r}; use data:, file: or a path", "invalid_media_url", param
    )


def _data_url(url: str, policy: MediaPolicy, param: str) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise bad_request("a data: URL must be data:<mime type>;base64,<data>", "invalid_media_url", param)
    if len(payload) * 3 // 4 > policy.max_bytes:
        raise _too_large(len(payload) * 3 // 4, policy, param)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as err:
        raise bad_request(f"the data: URL is not valid base64 ({err})", "invalid_media_url", param) from err


def _local_file(path: str, policy: MediaPolicy, param: str) -> bytes:
    if policy.media_root is None:
        raise ApiError(403, "local media paths are off on this server; start it with --media-root DIR or send a "
                       "data: URL", "local_media_refused", param)  # fmt: skip
    root = policy.media_root.resolve()
    target = (root / path).resolve()  # an absolute path stays absolute
    if not target.is_relative_to(root):
        raise ApiError(403, f"{path}: outside the server's media root", "media_path_refused", param)
    if not target.is_file():
        raise bad_request(f"{path}: no such file under the media root", "media_not_found", param)
    size = target.stat().st_size
    if size > policy.max_bytes:
        raise _too_large(size, policy, param)
    return target.read_bytes()


def _remote(url: str, policy: MediaPolicy, param: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=REMOTE_TIMEOUT_S) as response:  # noqa: S310 - scheme checked
            data = response.read(policy.max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise bad_request(f"cannot fetch {url[:80]}: {err}", "media_fetch_failed", param) from err
    if len(data) > policy.max_bytes:
        raise _too_large(len(data), policy, param)
    return data


def _too_large(size: int, policy: MediaPolicy, param: str) -> ApiError:
    return bad_request(
        f"media item of {size} bytes exceeds this server's limit of {policy.max_bytes} bytes (--max-media-mb)",
        "media_too_large",
        param,
    )


def describe_root(policy: MediaPolicy) -> str:
    """A one-line description of the media sources allowed, for the start-up message."""
    local = f"files under {os.fspath(policy.media_root)}" if policy.media_root else "no local files"
    return f"data: URLs, {local}, {'remote URLs' if policy.allow_remote else 'no remote URLs'}"
