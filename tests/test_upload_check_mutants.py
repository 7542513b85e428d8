"""The upload checks (aigc/data/uploads/archive.py, budgets.py) pinned at their edges: each member
check and its message, byte ranges and overlaps, the ratio and streaming caps at exactly their
limits, the litter that is skipped, the documented budgets, the deadline and the byte formatting."""
import dataclasses
import io
import zipfile

import pytest

from aigc.data.uploads import archive, budgets
from aigc.data.uploads.archive import (_byte_range, _check_member, _is_symlink, _unsafe_name, check_archive,
                                       check_ratio, read_member, read_prefix, skip_silently)
from aigc.data.uploads.budgets import (DEFAULT_LIMITS, Deadline, UploadError, UploadLimits, check_upload_size,
                                       fmt_bytes)

L = UploadLimits()


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return b.getvalue()


def _check(raw: bytes, limits=L, size=None):
    z = zipfile.ZipFile(io.BytesIO(raw))
    return check_archive(z, io.BytesIO(raw), len(raw) if size is None else size, limits, "u.zip")


def _info(name="a.png", **attrs) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    for k, v in attrs.items():
        setattr(info, k, v)
    return info


# -- names, links, flags, methods, sizes ------------------------------------------------------------
@pytest.mark.parametrize("name, why", [
    ("a\x00b.png", "contains a NUL character"), ("/etc/x", "is an absolute path"), ("\\x.png", "is an absolute path"),
    ("C:x.png", "is a Windows drive path"), ("z:/x.png", "is a Windows drive path"),
    ("..", "climbs out of the archive with '..'"), ("a/../../b", "climbs out of the archive with '..'"),
    ("a\\..\\b", "climbs out of the archive with '..'"), ("a/b/..", "climbs out of the archive with '..'"),
])
def test_unsafe_member_names(name, why):
    assert _unsafe_name(name) == why


@pytest.mark.parametrize("name", ["a/b.png", "..a/b..png", "a/.../b", "1:x.png", "dir/", "x/C:y.png"])
def test_ordinary_member_names(name):
    assert _unsafe_name(name) is None


def test_symlinks_are_told_from_files_and_folders():
    assert _is_symlink(_info(external_attr=0o120777 << 16))
    assert _is_symlink(_info(external_attr=0o120000 << 16))
    for mode in (0o100644, 0o100777, 0o040755, 0o140777, 0o020000, 0):
        assert not _is_symlink(_info(external_attr=mode << 16)), oct(mode)
    assert not _is_symlink(_info(external_attr=0o120777))          # the low (DOS) bits are not the mode


def test_member_refusals_and_their_messages():
    def refuse(info, limits=L):
        with pytest.raises(UploadError) as e:
            _check_member(info, limits, "u.zip")
        return str(e.value)
    assert refuse(_info("../x")) == "u.zip: member '../x' climbs out of the archive with '..'; refusing the archive"
    assert refuse(_info(external_attr=0o120777 << 16)) == (
        "u.zip: member 'a.png' is a symbolic link; refusing the archive")
    assert refuse(_info(flag_bits=0x1)) == (
        "u.zip: member 'a.png' is encrypted; password-protected zips are not supported")
    assert refuse(_info(compress_type=zipfile.ZIP_BZIP2)) == (
        "u.zip: member 'a.png' uses compression method 12; only stored and deflate are supported "
        "(re-zip with standard settings)")
    assert "compression method 14" in refuse(_info(compress_type=zipfile.ZIP_LZMA))
    assert refuse(_info(file_size=1001), UploadLimits(max_member_bytes=1000)) == (
        "u.zip: member 'a.png' declares 1001 bytes; the limit per file is 1000 bytes")


def test_members_within_every_check_pass():
    for info in (_info(flag_bits=0x2 | 0x8 | 0x800, compress_type=zipfile.ZIP_DEFLATED, file_size=1000),
                 _info(compress_type=zipfile.ZIP_STORED, external_attr=0o100644 << 16), _info("dir/")):
        _check_member(info, UploadLimits(max_member_bytes=1000), "u.zip")


# -- byte ranges and the whole archive --------------------------------------------------------------
def test_byte_ranges_run_from_the_local_header_to_the_end_of_the_data():
    raw = _zip({"ab.png": b"x" * 10, "c.png": b"y" * 7})
    z = zipfile.ZipFile(io.BytesIO(raw))
    a, c = z.infolist()
    fp = io.BytesIO(raw)
    assert _byte_range(a, fp, len(raw), "u.zip") == (0, 30 + 6 + 10, "ab.png")
    assert _byte_range(c, fp, len(raw), "u.zip") == (46, 46 + 30 + 5 + 7, "c.png")
    assert _byte_range(c, fp, 88, "u.zip")[1] == 88                  # ends exactly at the end: fine
    with pytest.raises(UploadError, match=r"^u.zip: member 'c.png' runs past the end of the archive$"):
        _byte_range(c, fp, 87, "u.zip")


def test_a_byte_range_counts_the_local_extra_field():
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        info = zipfile.ZipInfo("e.png")
        info.extra = b"\xca\xfe\x04\x00abcd"                            # one 8-byte extra block
        z.writestr(info, b"x" * 10)
        z.writestr("f.png", b"y")
    raw = b.getvalue()
    e, f = zipfile.ZipFile(io.BytesIO(raw)).infolist()
    assert _byte_range(e, io.BytesIO(raw), len(raw), "u.zip") == (0, 30 + 5 + 8 + 10, "e.png") == (0, f.header_offset, "e.png")


@pytest.mark.parametrize("damage", ["signature", "short"])
def test_a_broken_local_header_is_refused(damage):
    raw = bytearray(_zip({"a.png": b"x" * 10}))
    info = zipfile.ZipFile(io.BytesIO(bytes(raw))).infolist()[0]
    if damage == "signature":
        raw[3] = 0x05
    else:
        info.header_offset = len(raw) - 29
    with pytest.raises(UploadError, match=r"^u.zip: member 'a.png' has a broken local header$"):
        _byte_range(info, io.BytesIO(bytes(raw)), len(raw), "u.zip")


def test_entry_count_and_declared_total_at_their_limits():
    raw = _zip({f"{i}.txt": b"x" * 10 for i in range(5)})
    assert len(_check(raw, UploadLimits(max_entries=5, max_total_uncompressed=50))) == 5
    with pytest.raises(UploadError, match=r"^u.zip has 5 entries; the limit is 4$"):
        _check(raw, UploadLimits(max_entries=4))
    with pytest.raises(UploadError, match=r"^u.zip declares more than 49 bytes uncompressed; refusing it \(zip bomb\?\)$"):
        _check(raw, UploadLimits(max_total_uncompressed=49))


def test_the_declared_total_is_a_running_sum():
    raw = _zip({"a.txt": b"x" * 30, "b.txt": b"x" * 30, "c.txt": b""})
    with pytest.raises(UploadError, match="uncompressed"):
        _check(raw, UploadLimits(max_total_uncompressed=50))


def test_folders_are_checked_but_not_returned():
    raw = _zip({"set/": b"", "set/a.png": b"x", "set/b.png": b"y"})
    assert [i.filename for i in _check(raw)] == ["set/a.png", "set/b.png"]


def test_overlapping_members_are_refused_wherever_they_are():
    raw = bytearray(_zip({"1.png": b"a" * 20, "2.png": b"b" * 20, "3.png": b"c" * 20}))
    cd = [i for i in range(len(raw)) if raw[i:i + 4] == b"PK\x01\x02"]
    raw[cd[1] + 42:cd[1] + 46] = raw[cd[0] + 42:cd[0] + 46]          # 2.png's entry points at 1.png's data
    with pytest.raises(UploadError) as e:
        _check(bytes(raw))
    assert str(e.value) == ("u.zip: members '1.png' and '2.png' overlap in the archive "
                            "(an overlapping-entry zip bomb); refusing it")
    assert len(_check(_zip({"1.png": b"a", "2.png": b"b", "3.png": b"c"}))) == 3     # adjacent is fine


# -- the expansion ratio and the streaming caps -----------------------------------------------------
def test_ratio_check_at_its_limits():
    lim = UploadLimits(max_ratio=100.0, ratio_min_bytes=150)
    check_ratio(_info(file_size=1500, compress_size=15), lim, "u.zip")          # exactly 100x
    check_ratio(_info(file_size=149, compress_size=0), lim, "u.zip")            # below the size floor
    with pytest.raises(UploadError) as e:
        check_ratio(_info(file_size=1515, compress_size=15), lim, "u.zip")
    assert str(e.value) == "u.zip: member 'a.png' expands 101x (limit 100x): looks like a zip bomb"
    with pytest.raises(UploadError, match="expands 150x"):
        check_ratio(_info(file_size=150, compress_size=0), lim, "u.zip")        # empty compressed data


class _FakeZip:
    """A reader that yields `data` whatever the member declares."""

    def __init__(self, data: bytes):
        self.data = data

    def open(self, info):
        return io.BytesIO(self.data)


def test_read_member_returns_everything_and_spends_the_budget():
    data = bytes(range(256)) * 9000                                   # 2.2 MiB: three read blocks
    budget = [len(data)]
    info = _info(file_size=len(data), compress_size=len(data))
    assert read_member(_FakeZip(data), info, budget, L, "u.zip") == data
    assert budget == [0]
    raw = _zip({"a.bin": b"abc" * 100}, zipfile.ZIP_DEFLATED)
    z = zipfile.ZipFile(io.BytesIO(raw))
    assert read_member(z, z.infolist()[0], [10 ** 6], L, "u.zip") == b"abc" * 100
    assert read_prefix(z, z.infolist()[0], 5) == b"abcab" and read_prefix(z, z.infolist()[0], 10 ** 6) == b"abc" * 100


def test_read_member_counts_every_block_against_the_declared_size():
    data = b"x" * (5 * 2 ** 19)                                       # 2.5 MiB, declared 1.5 MiB
    with pytest.raises(UploadError) as e:
        read_member(_FakeZip(data), _info(file_size=3 * 2 ** 19, compress_size=3 * 2 ** 19), [10 ** 9], L, "u.zip")
    assert str(e.value) == "u.zip: member 'a.png' decompresses past its declared size; refusing it"
    with pytest.raises(UploadError, match="past its declared size"):       # the per-file limit caps it too
        read_member(_FakeZip(b"x" * 11), _info(file_size=11, compress_size=11), [100], UploadLimits(max_member_bytes=10), "u.zip")
    with pytest.raises(UploadError) as e:
        read_member(_FakeZip(b"x" * 11), _info(file_size=11, compress_size=11), [10], L, "u.zip")
    assert str(e.value) == "u.zip: more than 1.0 GiB decompressed; refusing it (zip bomb?)"


def test_read_member_checks_the_ratio_first():
    with pytest.raises(UploadError, match="looks like a zip bomb"):
        read_member(_FakeZip(b""), _info(file_size=10 ** 6, compress_size=10), [10 ** 9], L, "u.zip")


@pytest.mark.parametrize("name, skip", [
    ("__MACOSX/set/a.png", True), ("__MACOSX\\a.png", True), ("set/._a.png", True), ("set\\._a.png", True),
    ("a/.DS_Store", True), ("Thumbs.db", True), ("x/desktop.ini", True),
    ("set/__MACOSX/a.png", False), ("set/a._png", False), ("set/a.png", False), ("Thumbs.db.png", False),
])
def test_operating_system_litter_is_skipped(name, skip):
    assert skip_silently(name) is skip


# -- budgets -----------------------------------------------------------------------------------------
def test_the_documented_budgets():
    assert dataclasses.asdict(DEFAULT_LIMITS) == {
        "max_upload_bytes": 209_715_200, "max_entries": 20_000, "max_total_uncompressed": 1_073_741_824,
        "max_member_bytes": 52_428_800, "max_ratio": 100.0, "ratio_min_bytes": 65_536,
        "max_pixels": 16_777_216, "max_total_pixels": 200_000_000, "max_check_seconds": 20.0,
        "min_images": 16, "max_text_bytes": 52_428_800, "max_distinct_chars": 5000, "min_text_chars": 500,
        "min_distinct_chars": 8, "min_char_entropy": 1.0, "max_text_compression": 50.0, "phash_distance": 4,
        "near_mean_diff": 10.0}
    assert DEFAULT_LIMITS == UploadLimits() and archive.UploadLimits is UploadLimits
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_LIMITS.max_entries = 1


def test_the_deadline(monkeypatch):
    Deadline(60, "u.zip").check()
    now = [100.0]
    monkeypatch.setattr(budgets.time, "monotonic", lambda: now[0])
    d = Deadline(2.5, "u.zip")
    d.check()
    now[0] = 102.4
    d.check()
    now[0] = 102.5                                                     # spent exactly
    with pytest.raises(UploadError) as e:
        d.check()
    assert str(e.value) == ("u.zip: checking it took longer than 2.5 s (the time budget of one upload "
                            "check); upload fewer or smaller images")


@pytest.mark.parametrize("n, text", [
    (0, "0 bytes"), (1023, "1023 bytes"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (2 ** 20 - 1, "1024.0 KiB"),
    (2 ** 20, "1.0 MiB"), (5 * 2 ** 30, "5.0 GiB"), (3 * 2 ** 40, "3072.0 GiB"), (1023.6, "1024 bytes"),
])
def test_fmt_bytes(n, text):
    assert fmt_bytes(n) == text


def test_upload_size_limit(tmp_path):
    p = tmp_path / "up.zip"
    with pytest.raises(UploadError, match=r"^up.zip: no such file$"):
        check_upload_size(p, 10)
    p.write_bytes(b"x" * 10)
    assert check_upload_size(p, 10) == 10
    with pytest.raises(UploadError, match=r"^up.zip is 10 bytes; uploads are limited to 9 bytes$"):
        check_upload_size(p, 9)
    with pytest.raises(UploadError, match="no such file"):
        check_upload_size(tmp_path, 10)
