"""Reading a zip without extracting it: every member is checked before anything is decompressed,
and members are read into memory with byte caps counted while streaming.

Refused before decompression: encrypted members, compression methods other than stored/deflate,
unsafe names (`../x`, `/abs`, `C:\\x`), symlinks, too many entries, too large a declared total,
and members whose byte ranges overlap (the "overlapping entries" zip bomb, which Python 3.11's
zipfile does not detect). A member's name never becomes a path on disk.
"""
from __future__ import annotations

import re
import struct
import zipfile
from pathlib import PurePosixPath

from aigc.data.uploads.budgets import UploadError, UploadLimits, fmt_bytes

_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to have in an archive at all, or None."""
    if "\x00" in name:
        return "contains a NUL character"
    if name.startswith(("/", "\\")):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "is a Windows drive path"
    parts = re.split(r"[\\/]", name)
    if ".." in parts:
        return "climbs out of the archive with '..'"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return (info.external_attr >> 16) & 0o170000 == 0o120000


def _check_member(info: zipfile.ZipInfo, limits: UploadLimits, label: str) -> None:
    name = info.filename
    why = _unsafe_name(name)
    if why:
        raise UploadError(f"{label}: member {name!r} {why}; refusing the archive")
    if _is_symlink(info):
        raise UploadError(f"{label}: member {name!r} is a symbolic link; refusing the archive")
    if info.flag_bits & 0x1:
        raise UploadError(f"{label}: member {name!r} is encrypted; password-protected zips are not supported")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise UploadError(f"{label}: member {name!r} uses compression method {info.compress_type}; "
                          "only stored and deflate are supported (re-zip with standard settings)")
    if info.file_size > limits.max_member_bytes:
        raise UploadError(f"{label}: member {name!r} declares {fmt_bytes(info.file_size)}; "
                          f"the limit per file is {fmt_bytes(limits.max_member_bytes)}")


def _byte_range(info: zipfile.ZipInfo, fp, archive_size: int, label: str) -> tuple[int, int, str]:
    """The member's byte range in the archive, from its local header."""
    name = info.filename
    fp.seek(info.header_offset)
    head = fp.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise UploadError(f"{label}: member {name!r} has a broken local header")
    n_name, n_extra = struct.unpack("<HH", head[26:30])
    start, end = info.header_offset, info.header_offset + 30 + n_name + n_extra + info.compress_size
    if end > archive_size:
        raise UploadError(f"{label}: member {name!r} runs past the end of the archive")
    return start, end, name


def check_archive(z: zipfile.ZipFile, fp, archive_size: int, limits: UploadLimits, label: str) -> list[zipfile.ZipInfo]:
    """Check every member before anything is decompressed; return the file members."""
    infos = z.infolist()
    if len(infos) > limits.max_entries:
        raise UploadError(f"{label} has {len(infos)} entries; the limit is {limits.max_entries}")
    total = 0
    ranges = []
    for info in infos:
        _check_member(info, limits, label)
        total += info.file_size
        if total > limits.max_total_uncompressed:
            raise UploadError(f"{label} declares more than {fmt_bytes(limits.max_total_uncompressed)} "
                              "uncompressed; refusing it (zip bomb?)")
        ranges.append(_byte_range(info, fp, archive_size, label))
    ranges.sort()
    for (s0, e0, n0), (s1, e1, n1) in zip(ranges, ranges[1:]):
        if s1 < e0:
            raise UploadError(f"{label}: members {n0!r} and {n1!r} overlap in the archive "
                              "(an overlapping-entry zip bomb); refusing it")
    return [info for info in infos if not info.filename.endswith("/")]


def check_ratio(info: zipfile.ZipInfo, limits: UploadLimits, label: str) -> None:
    """Refuse a member that expands suspiciously (a nested bomb), before it is decompressed."""
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size >= limits.ratio_min_bytes and ratio > limits.max_ratio:
        raise UploadError(f"{label}: member {info.filename!r} expands {ratio:.0f}x "
                          f"(limit {limits.max_ratio:.0f}x): looks like a zip bomb")


def read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], limits: UploadLimits, label: str) -> bytes:
    """The member's bytes, counted while streaming: never more than declared, the per-file
    limit, or what is left of the total budget (`budget[0]`, decremented)."""
    check_ratio(info, limits, label)
    cap = min(info.file_size, limits.max_member_bytes)
    chunks, n = [], 0
    with z.open(info) as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
            budget[0] -= len(chunk)
            if n > cap:
                raise UploadError(f"{label}: member {info.filename!r} decompresses past its declared size; refusing it")
            if budget[0] < 0:
                raise UploadError(f"{label}: more than {fmt_bytes(limits.max_total_uncompressed)} "
                                  "decompressed; refusing it (zip bomb?)")
            chunks.append(chunk)
    return b"".join(chunks)


def read_prefix(z: zipfile.ZipFile, info: zipfile.ZipInfo, n: int) -> bytes:
    """At most the first `n` bytes of a member (enough for most image headers); cheap whatever it holds."""
    with z.open(info) as f:
        return f.read(min(n, info.file_size))


def skip_silently(name: str) -> bool:
    """Operating-system litter that is skipped without being read."""
    p = PurePosixPath(name.replace("\\", "/"))
    return p.parts[0] == "__MACOSX" or p.name.startswith("._") or p.name in (".DS_Store", "Thumbs.db", "desktop.ini")
