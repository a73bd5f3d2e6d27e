"""Strict checks of the zip archives topo reads (``.npz`` files, ``torch.save`` checkpoints).

Python's :mod:`zipfile` accepts bytes after the archive and checks a member's
CRC-32 only when the member is read to its end; torch's reader checks no CRC at
all. A damaged file could therefore load as other data. These helpers refuse
anything but an archive exactly as a writer leaves it: the end record is the
file's last 22 bytes (no comment, no trailing bytes), the directory lists as
many members as the end record says, each name once, and every member's bytes
match their CRC-32.

:func:`cut_short_length` tells a file whose last append was cut short (the
archive as last written whole, followed only by the clean beginning of an
append) from a damaged one: :meth:`topo.History.load` recovers the first and
refuses the second.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from typing import IO

__all__ = ["ZipDamage", "check_end", "check_directory", "verify_crcs", "cut_short_length"]

_LOCAL, _CENTRAL, _END = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
_END64, _LOCATOR64 = b"PK\x06\x06", b"PK\x06\x07"
_END_SIZE = 22
_BLOCK = 1 << 20


class ZipDamage(ValueError):
    """The archive is not whole: trailing bytes, a miscounted directory, a duplicate name, a bad CRC-32."""


def check_end(f: IO[bytes]) -> int:
    """The member count of the archive in ``f``, whose end record must be its last 22 bytes.

    ``f`` is a seekable binary file positioned anywhere; it is left at its start.
    """
    size = f.seek(0, os.SEEK_END)
    tail_start = max(0, size - _END_SIZE - 56 - 20)  # end record, zip64 end record and its locator
    f.seek(tail_start)
    tail = f.read()
    f.seek(0)
    end = tail[-_END_SIZE:]
    if len(end) < _END_SIZE or not end.startswith(_END):
        found = "a zip end record followed by other bytes" if _END in tail else "no zip end record at its end"
        raise ZipDamage(f"not a whole zip archive ({found}: truncated, damaged or with bytes appended)")
    (count,) = struct.unpack("<H", end[10:12])
    (comment,) = struct.unpack("<H", end[20:22])
    if comment:
        raise ZipDamage(f"the zip end record announces a {comment}-byte comment the file does not have")
    if count == 0xFFFF:  # the count lives in the zip64 end record, just before its locator
        locator = tail[-_END_SIZE - 20:-_END_SIZE]
        record = tail[-_END_SIZE - 20 - 56:-_END_SIZE - 20]
        if not (locator.startswith(_LOCATOR64) and record.startswith(_END64)):
            raise ZipDamage("the zip end record points to a zip64 record that is not there")
        (count,) = struct.unpack("<Q", record[32:40])
    return count


def check_directory(z: zipfile.ZipFile, count: int) -> None:
    """The directory of ``z`` lists ``count`` members (the end record's count), each name once."""
    # Member names are covered by no CRC: a damaged directory can rename one member onto another
    # (zipfile then keeps one of them) or lose one, and an optional array would vanish unnoticed.
    for info in z.infolist():
        # miniz (torch's reader) takes a member whose MS-DOS attributes say "directory" for an empty
        # one and loads other tensor data; zipfile ignores the attributes. topo's archives hold files.
        if info.external_attr & 0x10 or stat.S_ISDIR(info.external_attr >> 16) or info.filename.endswith("/"):
            raise ZipDamage(f"the zip directory marks member {info.filename!r} as a directory")
    names = z.namelist()
    if len(set(names)) != len(names):
        raise ZipDamage("duplicate member names in the zip directory")
    if count != len(names):
        raise ZipDamage(f"the zip end record lists {count} members, the directory {len(names)}")


def verify_crcs(z: zipfile.ZipFile) -> None:
    """Read every member of ``z`` to its end, which makes :mod:`zipfile` check its CRC-32."""
    for info in z.infolist():
        with z.open(info) as member:
            while member.read(_BLOCK):
                pass


def cut_short_length(raw: bytes) -> int | None:
    """The length of the archive as last written whole, if ``raw`` is it plus a cut-short append.

    An append (``zipfile`` mode ``"a"`` writing after the old directory) adds
    local entries, then a new directory and end record. ``raw`` qualifies when,
    after its last complete end record, there follow only local entries whose
    bytes match their CRC-32, then directory entries, and the file ends inside
    one of these. A whole file (a complete end record last), a file with
    anything else after that record (a byte flipped, garbage) and a file with
    no complete end record give ``None``.
    """
    # Only the last complete end record can be the one an append was writing after: a complete record
    # after it would mean the append finished (the file is whole, and damaged if it does not read).
    i = raw.rfind(_END, 0, max(0, len(raw) - _END_SIZE + len(_END)))  # a record whose 22 bytes are all there
    start = i + _END_SIZE
    if i < 0 or start >= len(raw) or raw[i + 20:start] != b"\0\0":
        return None
    return start if _is_cut_append(raw, start) else None


def _is_cut_append(raw: bytes, pos: int) -> bool:
    n, seen_local, in_directory = len(raw), False, False
    while pos < n:
        # What may come next: local entries, then (once there is one) directory entries, then the end records.
        allowed = (_CENTRAL, _END64, _LOCATOR64, _END) if in_directory else (_LOCAL, _CENTRAL) if seen_local \
            else (_LOCAL,)
        head = raw[pos:pos + 4]
        if len(head) < 4:
            return any(sig.startswith(head) for sig in allowed)  # cut inside a signature
        if head not in allowed:
            return False
        if head == _LOCAL:
            if n < pos + 30:
                return True  # cut inside the header
            flags, method, _, _, crc, csize, _, nlen, xlen = struct.unpack("<HHHHIIIHH", raw[pos + 6:pos + 30])
            if flags & 0x08 or method != zipfile.ZIP_STORED:
                return False  # History.save appends stored arrays whose sizes are known up front
            data = pos + 30 + nlen + xlen
            if data > n:
                return True  # cut inside the name or the extra field
            if csize == 0xFFFFFFFF:
                csize = _zip64_size(raw[pos + 30 + nlen:data])
                if csize is None:
                    return False
            if data + csize > n:
                return True  # cut inside the data
            if zlib.crc32(raw[data:data + csize]) != crc:
                return False
            pos, seen_local = data + csize, True
        elif head == _CENTRAL:
            if n < pos + 46:
                return True
            nlen, xlen, clen = struct.unpack("<HHH", raw[pos + 28:pos + 34])
            pos, in_directory = pos + 46 + nlen + xlen + clen, True
        else:
            size = {_END64: 56, _LOCATOR64: 20, _END: _END_SIZE}[head]
            if head == _END64 and n >= pos + 12:
                size = 12 + int(struct.unpack("<Q", raw[pos + 4:pos + 12])[0])
            if head == _END and pos + size <= n:
                return False  # a complete new end record: the append finished, the file is whole
            pos += size
    return seen_local


def _zip64_size(extra: bytes) -> int | None:
    """The compressed size in a local header's zip64 extra field (uncompressed size first, then it)."""
    at = 0
    while at + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[at:at + 4])
        if tag == 0x0001 and size >= 16:
            return int(struct.unpack("<Q", extra[at + 12:at + 20])[0])
        at += 4 + size
    return None
