"""``dtype=`` as transformers 5 names it, with ``torch_dtype=`` kept as a deprecated alias (warned once)."""

from __future__ import annotations

import warnings

import torch

_WARNED: set[str] = set()  # callers already told, once per process


def dtype_argument(
    dtype: str | torch.dtype | None, torch_dtype: str | torch.dtype | None, caller: str
) -> str | torch.dtype | None:
    """The dtype a caller asked for, under either name.

    Raises:
        TypeError: both names given.
    """
    if torch_dtype is None:
        return dtype
    if dtype is not None:
        raise TypeError(f"{caller}: give dtype= only (torch_dtype= is its deprecated name)")
    if caller not in _WARNED:
        _WARNED.add(caller)
        warnings.warn(
            f"{caller}: torch_dtype= is deprecated, pass dtype= (as transformers 5 does)", FutureWarning, stacklevel=3
        )
    return torch_dtype
