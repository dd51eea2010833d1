"""Which H.264 packets can go undecoded: non-reference pictures that are not among the frames we want.

An H.264 picture whose slices all have ``nal_ref_idc == 0`` is never used to predict another picture (spec
H.264 §7.4.1), so not decoding it leaves every other decoded frame bit-identical. x264's defaults (B-frames
with ``b-pyramid normal``) make about half of all frames such disposable B-frames, and they cost about half
of a long-GOP clip's decoding time. decord and a plain decode loop decode them anyway.

Only length-prefixed H.264 (``avcC`` extradata, as in mp4/mov/mkv) is inspected; any other codec or layout
gets no checker and every packet is decoded.
"""

from __future__ import annotations

from collections.abc import Callable

import av

_SLICE_TYPES = {1, 5}  # coded slice of a non-IDR / IDR picture


def disposable_checker(codec_context: av.codec.context.CodecContext) -> Callable[[av.Packet], bool] | None:
    """A function telling whether a packet holds only non-reference H.264 pictures, or None if unknown.

    Returns None unless the stream is H.264 with ``avcC`` extradata (length-prefixed NAL units).
    """
    extradata = codec_context.extradata or b""
    if codec_context.name != "h264" or len(extradata) < 7 or extradata[0] != 1:
        return None
    length_size = (extradata[4] & 0x03) + 1
    return lambda packet: is_disposable(memoryview(packet), length_size)


def is_disposable(data: memoryview | bytes, length_size: int = 4) -> bool:
    """True if the NAL units in ``data`` contain slices and every slice has ``nal_ref_idc == 0``.

    ``data`` is one packet of length-prefixed NAL units (``length_size`` bytes big-endian per length).
    Malformed data answers False (decode it and let the decoder report).
    """
    position, size, slices = 0, len(data), 0
    while position + length_size < size:
        length = int.from_bytes(data[position : position + length_size], "big")
        header = data[position + length_size]
        if length == 0 or position + length_size + length > size:
            return False
        if header & 0x1F in _SLICE_TYPES:
            if header & 0x60:  # nal_ref_idc != 0: a reference picture
                return False
            slices += 1
        position += length_size + length
    return slices > 0 and position == size
