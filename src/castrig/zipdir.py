"""The member names of a zip file, read from its central directory a piece at a time, bounded.

``zipfile.ZipFile`` reads the whole central directory as its end record declares it, then builds
an object per member: an existing file at ``castrig analyse --rois X.zip`` whose end record
declared a 4 GB directory (a sparse file) took 4 GB of memory, or a MemoryError, only to be
found no ROI set; ten million members, gigabytes and minutes. Here the end record is read first
and a directory larger than the caller allows is refused unread.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from castrig.regular import open_regular

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record (22 bytes)
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # its zip64 form (56 bytes), before a 20-byte locator
_ENTRY = struct.Struct("<4s6H3L5H2L")  # a central directory entry (46 bytes), then its name, extra field and comment

#: bytes read at a time
_PIECE = 1 << 20


class ZipTooLarge(ValueError):
    """The central directory declares more members or bytes than the caller reads."""


def _directory(f, size: int) -> tuple[int, int, int] | None:
    """(members, directory bytes, directory offset) as the end record of the zip open as ``f``
    declares them, or None: no end record (not a zip)."""
    tail_at = max(0, size - _EOCD.size - 0xFFFF)
    f.seek(tail_at)
    tail = f.read(size - tail_at)
    at = len(tail) - _EOCD.size if tail[-_EOCD.size:-_EOCD.size + 4] == b"PK\x05\x06" else tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        return None
    _, _, _, _, members, cd_bytes, _, _ = _EOCD.unpack_from(tail, at)
    end_at = tail_at + at  # where the directory ends (the end record, or its zip64 form, follows it)
    if members == 0xFFFF or cd_bytes == 0xFFFFFFFF:  # zip64: the numbers are in the zip64 end record
        rec_at = end_at - 20 - _EOCD64.size
        if rec_at < 0:
            return None
        f.seek(rec_at)
        rec = f.read(_EOCD64.size)
        if len(rec) < _EOCD64.size or rec[:4] != b"PK\x06\x06":
            return None
        members, cd_bytes = _EOCD64.unpack(rec)[7:9]
        end_at = rec_at
    return members, cd_bytes, end_at - cd_bytes


def member_names(path, *, max_members: int, max_bytes: int) -> Iterator[bytes] | None:
    """The member names (bytes, as stored) of the zip ``path``, lazily, from its central
    directory; None when ``path`` is no regular file or no zip. :class:`ZipTooLarge` (before the
    directory is read) when it declares more than ``max_members`` members or ``max_bytes``
    bytes; ValueError at the member where the directory is damaged. Memory: one piece."""
    f = open_regular(path)
    if f is None:
        return None
    with f:
        size = os.fstat(f.fileno()).st_size
        found = _directory(f, size)
    if found is None:
        return None
    members, cd_bytes, start = found
    if members > max_members or cd_bytes > max_bytes:
        raise ZipTooLarge(f"its zip directory declares {members:,} members in {cd_bytes:,} bytes; allowed: at most "
                          f"{max_members:,} members and {max_bytes:,} bytes")
    if start < 0:
        raise ValueError("its zip directory starts before the file does (damaged)")
    return _walk(path, start, cd_bytes, members)


def _walk(path, start: int, cd_bytes: int, members: int) -> Iterator[bytes]:
    f = open_regular(path)
    if f is None:
        return
    with f:
        f.seek(start)
        left, buf, pos = cd_bytes, b"", 0
        for _ in range(members):
            if len(buf) - pos < _ENTRY.size:
                buf, pos, left = _more(f, buf, pos, left, _ENTRY.size)
            entry = _ENTRY.unpack_from(buf, pos)
            if entry[0] != b"PK\x01\x02":
                raise ValueError("its zip directory is damaged (an entry without its signature)")
            name_len, extra_len, comment_len = entry[10:13]
            whole = _ENTRY.size + name_len + extra_len + comment_len
            if len(buf) - pos < whole:
                buf, pos, left = _more(f, buf, pos, left, whole)
            yield buf[pos + _ENTRY.size : pos + _ENTRY.size + name_len]
            pos += whole


def _more(f, buf: bytes, pos: int, left: int, need: int) -> tuple[bytes, int, int]:
    """``buf[pos:]`` and the next piece of the directory (``left`` bytes of it unread) until it
    holds ``need`` bytes; ValueError when the directory ends first."""
    buf = buf[pos:]
    while len(buf) < need:
        piece = f.read(min(left, max(_PIECE, need)))
        if not piece:
            raise ValueError("its zip directory is cut short (damaged)")
        left -= len(piece)
        buf += piece
    return buf, 0, left
