"""Uploaded datasets: every refusal has its message and writes nothing outside the job folder;
a good zip prepares correctly; `finetune` trains tiny models end to end."""
from __future__ import annotations

import functools
import io
import json
import struct
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigc.cli.commands import main
from aigc.data.uploads import (UploadError, UploadLimits, find_duplicates, prepare_image_zip,
                               prepare_text, phash)


# -- builders -------------------------------------------------------------------------------------
def picture(seed: int, size=(40, 30), mode="RGB") -> Image.Image:
    """A distinct picture: random 4x4 colour blocks scaled up (perceptually unlike the others)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize(size, Image.Resampling.NEAREST)
    return im.convert(mode)


def encode(im: Image.Image, fmt="PNG") -> bytes:
    b = io.BytesIO()
    im.save(b, format=fmt)
    return b.getvalue()


def make_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def good_members(n=64, classes=("cats", "dogs"), mode="RGB", root="set/") -> dict[str, bytes]:
    out = {}
    fmts = ["PNG", "JPEG", "WEBP", "BMP"]
    for i in range(n):
        c = classes[i % len(classes)]
        fmt = fmts[i % 4]
        size = [(40, 30), (30, 50), (64, 64), (100, 20)][i % 4]
        im = picture(i, size, mode)
        # JPEG / WebP are lossy: exact-pixel dedup is tested with PNG copies
        out[f"{root}{c}/{i:03d}.{fmt.lower()}"] = encode(im, fmt)
    return out


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def job(tmp_path):
    """(upload folder, job folder); afterwards nothing may exist outside them."""
    up = tmp_path / "upload"
    up.mkdir()
    jd = tmp_path / "job"
    yield up, jd
    outside = {p for p in snapshot(tmp_path) if not (p.startswith("upload") or p.startswith("job"))}
    assert outside == set(), f"files written outside the job folder: {outside}"


def refused(path, jd, match, **kw):
    before = snapshot(path.parent)
    with pytest.raises(UploadError, match=match):
        if path.suffix == ".zip":
            prepare_image_zip(path, jd, **kw)
        else:
            prepare_text(path, jd, **kw)
    assert snapshot(path.parent) == before
    assert not jd.exists(), "a refused upload must not create the job folder"


# -- zip refusals ---------------------------------------------------------------------------------
def test_not_a_zip(job):
    up, jd = job
    p = up / "x.zip"
    p.write_bytes(b"hello, not a zip at all" * 10)
    refused(p, jd, "not a zip file")


def test_upload_over_size_limit(job):
    up, jd = job
    p = make_zip(up / "big.zip", good_members(4))
    refused(p, jd, "uploads are limited to", limits=UploadLimits(max_upload_bytes=100))


@pytest.mark.parametrize("name,match", [
    ("../evil.png", r"climbs out"), ("/abs/evil.png", "absolute path"), ("C:\\x\\evil.png", "drive path"),
    ("a\\..\\..\\evil.png", "climbs out"),
])
def test_unsafe_names(job, name, match):
    up, jd = job
    m = good_members(20)
    m[name] = encode(picture(99))
    p = make_zip(up / "bad.zip", m)
    refused(p, jd, match)
    assert not (up.parent / "evil.png").exists()


def test_symlink_member(job):
    up, jd = job
    p = up / "link.zip"
    with zipfile.ZipFile(p, "w") as z:
        for k, v in good_members(20).items():
            z.writestr(k, v)
        info = zipfile.ZipInfo("set/cats/link.png")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    refused(p, jd, "symbolic link")


def test_encrypted_member(job):
    up, jd = job
    p = make_zip(up / "enc.zip", good_members(20), zipfile.ZIP_STORED)
    raw = bytearray(p.read_bytes())
    # set the "encrypted" flag bit in every local and central header
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.find(sig)
        while i >= 0:
            raw[i + off] |= 1
            i = raw.find(sig, i + 4)
    p.write_bytes(bytes(raw))
    refused(p, jd, "encrypted")


def test_unsupported_compression(job):
    up, jd = job
    p = make_zip(up / "bz.zip", good_members(20), zipfile.ZIP_BZIP2)
    refused(p, jd, "compression method 12")


def test_too_many_entries(job):
    up, jd = job
    p = make_zip(up / "many.zip", {f"f{i}.txt": b"x" for i in range(30)})
    refused(p, jd, "30 entries; the limit is 20", limits=UploadLimits(max_entries=20))


def test_bomb_ratio(job):
    up, jd = job
    p = make_zip(up / "bomb.zip", {"set/a/zeros.bmp": b"\0" * (3 * 2 ** 20)})
    refused(p, jd, "looks like a zip bomb")


def test_bomb_declared_total(job):
    up, jd = job
    p = make_zip(up / "total.zip", good_members(20))
    refused(p, jd, "uncompressed; refusing", limits=UploadLimits(max_total_uncompressed=5000))


def test_bomb_lies_about_size(job):
    """A member that declares 100 bytes but inflates to more is stopped while streaming."""
    up, jd = job
    payload = encode(picture(1, (200, 200)))
    p = make_zip(up / "liar.zip", {f"set/a/{i}.png": payload for i in range(3)})
    raw = bytearray(p.read_bytes())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):   # uncompressed-size fields
        i = raw.find(sig)
        while i >= 0:
            raw[i + off:i + off + 4] = struct.pack("<I", 100)
            i = raw.find(sig, i + 4)
    p.write_bytes(bytes(raw))
    refused(p, jd, r"only 0 usable images.*corrupt in the zip")


def test_streaming_cap_is_enforced():
    """Defence in depth: even if a reader yielded more than declared, the count stops it."""
    from aigc.data.uploads import _read_member

    class FakeZip:
        def open(self, info):
            return io.BytesIO(b"x" * 5000)

    info = zipfile.ZipInfo("a.png")
    info.file_size = 100
    with pytest.raises(UploadError, match="past its declared size"):
        _read_member(FakeZip(), info, [10 ** 9], UploadLimits(), "t.zip")
    info.file_size = 5000
    with pytest.raises(UploadError, match="decompressed; refusing"):
        _read_member(FakeZip(), info, [1000], UploadLimits(), "t.zip")


def test_overlapping_members(job):
    """Two central-directory entries pointing at the same local file (the overlap bomb)."""
    up, jd = job
    p = make_zip(up / "overlap.zip", {"set/a/1.png": encode(picture(1)), "set/a/2.png": encode(picture(2))},
                 zipfile.ZIP_STORED)
    raw = bytearray(p.read_bytes())
    first = raw.find(b"PK\x01\x02")
    second = raw.find(b"PK\x01\x02", first + 4)
    raw[second + 42:second + 46] = raw[first + 42:first + 46]         # same local header offset
    p.write_bytes(bytes(raw))
    refused(p, jd, "overlap")


def _png_claiming(w: int, h: int) -> bytes:
    raw = bytearray(encode(Image.new("L", (8, 8))))
    raw[16:24] = struct.pack(">II", w, h)                               # IHDR width, height
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])) & 0xFFFFFFFF)
    return bytes(raw)


def test_skipped_members_and_too_few(job):
    """Garbage, truncated, non-image and pixel-bomb members are skipped with reasons; with too few
    usable images left the refusal says why."""
    up, jd = job
    m = good_members(10)
    m["set/cats/huge.png"] = _png_claiming(30000, 30000)
    m["set/cats/garbage.png"] = b"\x89PNG not really" * 20
    m["set/dogs/cut.jpg"] = encode(picture(5, (64, 64)), "JPEG")[:300]
    m["set/notes.txt"] = b"hello"
    p = make_zip(up / "few.zip", m)
    refused(p, jd, r"only 1[0-3] usable images .*need at least 16.*skipped")
    # with a lower bar the same upload prepares, and the report counts each reason
    prep = prepare_image_zip(p, jd, limits=UploadLimits(min_images=8))
    r = prep.report
    reasons = " | ".join(r["skipped_reasons"])
    assert "too many pixels" in reasons and "not a readable image" in reasons
    assert "not an image file (.txt)" in reasons
    assert r["skipped"] >= 4 and r["kept"] <= 11
    assert sorted(p.name for p in jd.iterdir()) == ["preview.png", "report.json"]


def test_pillow_bomb_warning_is_an_error():
    from aigc.data.uploads import _decode
    rgb, why, _ = _decode(_png_claiming(10000, 10000), UploadLimits(max_pixels=10 ** 12))
    assert rgb is None and "too many pixels" in why and "DecompressionBomb" in why


# -- a good zip -----------------------------------------------------------------------------------
def test_good_zip_prepares(job):
    up, jd = job
    m = good_members(64)
    dup = m["set/cats/000.png"]
    m["set/cats/copy-a.png"] = dup                                     # exact copies
    m["set/cats/copy-b.png"] = dup
    arr = np.asarray(Image.open(io.BytesIO(m["set/cats/004.png"])), np.int16)
    arr[0, 0] = 255 - arr[0, 0]                                        # a slightly altered copy
    arr = np.clip(arr + 3, 0, 255).astype(np.uint8)
    m["set/cats/altered.png"] = encode(Image.fromarray(arr))
    m["__MACOSX/set/._000.png"] = b"junk"
    p = make_zip(up / "good.zip", m)
    prep = prepare_image_zip(p, jd, resolution=32)
    d, r = prep.data, prep.report
    assert d.images.shape == (64, 32, 32, 3) and d.images.dtype == np.uint8
    assert d.class_names == ["cats", "dogs"]
    assert (np.bincount(d.labels) == [32, 32]).all()
    assert r["duplicates"] == {"exact": 2, "near": 1}
    assert r["kept"] == 64 and r["decoded"] == 67 and r["skipped"] == 1
    assert r["class_counts"] == {"cats": 32, "dogs": 32}
    assert r["mode"] == "rgb" and r["colour_inputs"] == 67
    assert sum(r["size_histogram"].values()) == 67 and sum(r["aspect_histogram"].values()) == 67
    assert "64 images" in r["recommendation"] and "DiffAugment on" in r["recommendation"]
    assert "a VAE gives softer but recognisable samples sooner" in r["recommendation"]
    json.loads((jd / "report.json").read_text())
    prev = Image.open(jd / "preview.png")
    assert prev.size == (8 * 34 + 2, 8 * 34 + 2)
    d.model_overrides("dcgan")


def test_grey_zip_is_grey_and_balanced(job):
    up, jd = job
    m = good_members(40, mode="L", root="")
    m.update({f"b/{i}.png": encode(picture(500 + i, mode="L")) for i in range(10)})
    m = {k.replace("cats/", "a/").replace("dogs/", "a/"): v for k, v in m.items()}
    p = make_zip(up / "grey.zip", m)
    prep = prepare_image_zip(p, jd, resolution=28, balance=True)
    assert prep.data.images.shape[1:] == (28, 28, 1)
    assert prep.report["class_counts"] == {"a": 40, "b": 10}
    assert prep.report["balanced"] == {"a": 40, "b": 40}
    assert len(prep.data) == 80 and (np.bincount(prep.data.labels) == [40, 40]).all()


def test_phash_separates_distinct_pictures():
    a = np.asarray(picture(1, (32, 32)))
    b = np.asarray(picture(2, (32, 32)))
    assert (phash(a) != phash(b)).sum() > 8
    keep, exact, near = find_duplicates(np.stack([a, b, a, np.clip(a.astype(int) + 2, 0, 255).astype(np.uint8)]))
    assert keep.tolist() == [True, True, False, False] and (exact, near) == (1, 1)


# -- text -----------------------------------------------------------------------------------------
def test_text_refusals(job):
    up, jd = job
    p = up / "latin1.txt"
    p.write_bytes(b"first line\nsecond caf\xe9 line\n")
    refused(p, jd, r"not UTF-8: byte 0xe9 at line 2, column 11")
    p = up / "empty.txt"
    p.write_text("  \n\n ")
    refused(p, jd, "the text is empty")
    p = up / "short.txt"
    p.write_text("too short")
    refused(p, jd, r"9 characters is too short; a text upload needs at least 500 .*add 491 more", block_size=32)
    p.write_text("a varied sentence, with words. " * 18)
    refused(p, jd, r"needs at least 602 characters \(the model's context of 600, \+2\)", block_size=600)
    p = up / "wide.txt"
    p.write_text("".join(chr(0x4E00 + i) for i in range(6000)), encoding="utf-8")
    refused(p, jd, "6000 distinct characters")
    p = up / "big.txt"
    p.write_text("x" * 2000)
    refused(p, jd, "uploads are limited to", limits=UploadLimits(max_text_bytes=1000))
    p = up / "bad.jsonl"
    p.write_text('{"text": "ok"}\n{"txt": 1}\n')
    refused(p, jd, 'line 2 needs an object with a "text" string')
    p = up / "binary.txt"
    p.write_bytes(bytes(range(1, 32)) * 50)
    refused(p, jd, "looks like a binary file")


def test_jsonl_text_with_tokenizer(job):
    from aigc.text.tokenizer import CharTokenizer
    up, jd = job
    p = up / "poems.jsonl"
    p.write_text("\n".join(json.dumps({"text": f"poem {i}: the moon is bright ☾"}) for i in range(20)), encoding="utf-8")
    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz :0123456789\n")
    prep = prepare_text(p, jd, block_size=32, tokenizer=tok)
    assert prep.report["records"] == 20 and prep.report["unknown_chars"] == 20
    assert prep.text.startswith("poem 0") and (jd / "report.json").is_file()


def test_split_heldout_keeps_the_tail_out_of_training():
    from aigc.data.uploads import split_heldout
    text = "".join(f"line {i} of a poem\n" for i in range(200))
    train, held, note = split_heldout(text, block_size=32)
    assert train + held == text and held and "held out the last" in note
    assert 0.08 * len(text) <= len(held) <= 0.11 * len(text) and train.endswith("\n")   # cut at a line break
    short = "x" * 100
    assert split_heldout(short, block_size=32) == (short, "", split_heldout(short, 32)[2])
    assert "too short" in split_heldout(short, 32)[2]


# -- the CLI --------------------------------------------------------------------------------------
def test_finetune_cli_bad_data_exits_2(job, capsys):
    up, jd = job
    p = up / "x.zip"
    p.write_bytes(b"nope")
    assert main(["finetune", "dcgan", "--data", str(p), "--out", str(jd), "--tiny"]) == 2
    assert "not a zip file" in capsys.readouterr().err
    assert not jd.exists()


def test_finetune_shape_mismatch_suggests_scratch(job, capsys):
    up, jd = job
    p = make_zip(up / "good.zip", good_members(32))
    assert main(["finetune", "dcgan-mnist", "--data", str(p), "--out", str(jd), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "train from scratch" in err and "dcgan-mnist" in err
    assert main(["finetune", "dcgan-mnist", "--data", str(p), "--out", str(jd), "--set", "ngf=8"]) == 2
    assert "keeps its base's" in capsys.readouterr().err


def test_finetune_from_scratch_then_sample(job, capsys):
    up, jd = job
    p = make_zip(up / "good.zip", good_members(32))
    rc = main(["finetune", "dcgan", "--data", str(p), "--out", str(jd), "--steps", "2", "--tiny",
               "--resolution", "32", "--batch-size", "8", "--no-progress", "--set", "ngf=12"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert json.loads((jd / "model" / "config.json").read_text())["config"]["ngf"] == 12
    assert (jd / "model" / "training_images.npz").is_file()
    assert "32 images kept" in out and "recommendation" in out
    assert (jd / "report.json").is_file() and (jd / "preview.png").is_file()
    cfg = json.loads((jd / "model" / "config.json").read_text())
    assert cfg["config"]["resolution"] == 32 and cfg["config"]["channels"] == 3
    assert cfg["config"]["class_names"] == ["cats", "dogs"]
    # quality against the upload, at the start and at the end, into stats, metrics.json and the card
    stats = [json.loads(ln) for ln in (jd / "stats.jsonl").read_text().splitlines()]
    measured = [r for r in stats if "kid_randconv" in r]
    assert [r["step"] for r in measured][0] == 0 and measured[-1]["step"] == 2
    assert all(0.0 <= r["copy_rate"] <= 1.0 for r in measured)
    metrics = json.loads((jd / "model" / "metrics.json").read_text())
    assert metrics["kid_randconv"] == pytest.approx(measured[-1]["kid_randconv"], rel=1e-4)
    assert "copy_rate" in metrics and "upload:good" in metrics["protocol"] and metrics["at_start"]
    card = (jd / "model" / "README.md").read_text()
    assert "trained from scratch on the upload `good.zip`" in card and "KID x 1000 in random-conv" in card
    assert "--set ngf=12" in card and "training_images.npz" in card
    png = jd / "s.png"
    assert main(["sample", str(jd), "--n", "4", "--label", "dogs", "--out", str(png)]) == 0
    assert Image.open(png).size[0] > 32


def test_finetune_text_char_lm(job, capsys):
    up, jd = job
    p = up / "story.txt"
    p.write_text("Once upon a time there was a small model that learned to write. " * 40, encoding="utf-8")
    rc = main(["finetune", "char-lm", "--data", str(p), "--out", str(jd), "--steps", "2", "--tiny",
               "--batch-size", "4", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "tokenizer: new" in out and "spans spread over the text" in out
    assert (jd / "model" / "tokenizer.json").is_file() and (jd / "report.json").is_file()
    assert json.loads((jd / "report.json").read_text())["heldout_chars"] > 32
    stats = [json.loads(ln) for ln in (jd / "stats.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in stats if "nats_per_char" in r]            # held-out cross-entropy
    assert steps[0] == 0 and steps[-1] == 2
    metrics = json.loads((jd / "model" / "metrics.json").read_text())
    assert metrics["nats_per_char"] > 0 and "held-out slice of upload:story" in metrics["protocol"]
    # ... and fine-tuning that model again uses its tokenizer, counting unknown characters
    p2 = up / "more.txt"
    p2.write_text("Once upon a time, a zebra — quietly — wrote again. " * 30, encoding="utf-8")
    jd2 = jd / "again"
    rc = main(["finetune", str(jd / "model"), "--data", str(p2), "--out", str(jd2), "--steps", "2",
               "--batch-size", "4", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rep = json.loads((jd2 / "report.json").read_text())
    assert rep["unknown_chars"] > 0 and "unknown to the tokenizer" in out


def test_finetune_shipped_dcgan_mnist(job, capsys):
    """Grey pictures in ten class folders at 28x28 fine-tune the shipped conditional DCGAN."""
    up, jd = job
    m = {f"digits/{c}/{i}.png": encode(picture(100 * c + i, (28, 28), "L")) for c in range(10) for i in range(2)}
    p = make_zip(up / "digits.zip", m)
    rc = main(["finetune", "dcgan-mnist", "--data", str(p), "--out", str(jd), "--steps", "1",
               "--batch-size", "8", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "fine-tuned dcgan-mnist" in out
    cfg = json.loads((jd / "model" / "config.json").read_text())
    assert cfg["config"]["num_classes"] == 10 and cfg["config"]["resolution"] == 28


def test_finetune_conditional_base_needs_matching_classes(job, capsys):
    up, jd = job
    m = good_members(32, mode="L")
    p = make_zip(up / "two.zip", m)
    assert main(["finetune", "dcgan-mnist", "--data", str(p), "--out", str(jd), "--steps", "1"]) == 2
    assert "class-conditional with 10 classes; this data has 2" in capsys.readouterr().err


def test_labels_need_class_folders(job):
    up, jd = job
    flat = {f"{i}.png": encode(picture(i)) for i in range(20)}
    prep = prepare_image_zip(make_zip(up / "flat.zip", flat))
    assert prep.data.labels is None and prep.report["classes"] == []
    mixed = dict(flat)
    mixed.update({f"cats/{i}.png": encode(picture(300 + i)) for i in range(5)})
    prep = prepare_image_zip(make_zip(up / "mixed.zip", mixed))
    assert prep.data.labels is None and "outside class folders" in prep.report["labels_note"]
    assert not jd.exists()


def test_finetune_time_budget(job, capsys):
    """--max-minutes stops a fine-tune when the time is spent, whatever --steps says."""
    up, jd = job
    p = make_zip(up / "good.zip", good_members(32))
    assert main(["finetune", "dcgan", "--data", str(p), "--out", str(jd), "--max-minutes", "0", "--tiny"]) == 2
    assert "the time limit must be more than 0" in capsys.readouterr().err and not jd.exists()
    rc = main(["finetune", "dcgan", "--data", str(p), "--out", str(jd), "--steps", "100000", "--max-minutes", "0.03",
               "--tiny", "--resolution", "32", "--batch-size", "8", "--no-progress", "--eval-every", "0"])
    assert rc == 0, capsys.readouterr().out
    summary = json.loads((jd / "summary.json").read_text())
    assert 1 <= summary["steps"] < 100000 and summary["train_s"] < 60


# -- budgets: pixels, time, compression ratio -----------------------------------------------------
@functools.lru_cache(maxsize=4)
def _blank_idat(w: int, h: int) -> bytes:
    return zlib.compress((b"\0" * (1 + (w + 7) // 8)) * h, 9)


def solid_png(w: int, h: int, rgb=(200, 30, 30)) -> bytes:
    """A solid-colour w x h PNG (1-bit palette), built without Pillow so a 6300x6300 one costs ms."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 3, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"PLTE", bytes(rgb)) + chunk(b"IDAT", _blank_idat(w, h))
            + chunk(b"IEND", b""))


def pixel_bomb_zip(path: Path, n: int = 40, side: int = 6300) -> Path:
    """The issue's upload: n solid-colour side x side PNGs, a few KB in all."""
    return make_zip(path, {f"set/{i:02d}.png": solid_png(side, side, (i * 6, 100, 200)) for i in range(n)})


def test_solid_png_is_a_real_picture():
    im = Image.open(io.BytesIO(solid_png(64, 48, (1, 2, 3))))
    assert im.size == (64, 48) and im.convert("RGB").getpixel((5, 5)) == (1, 2, 3)


@pytest.fixture
def decodes(monkeypatch):
    """Counts pictures decoded (PIL's ImageFile.load): a bomb must be refused from its headers alone."""
    from PIL import ImageFile

    calls = []
    real = ImageFile.ImageFile.load

    def counting(self, *a, **kw):
        calls.append(self.size)
        return real(self, *a, **kw)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    return calls


def test_pixel_bomb_is_refused_fast_by_the_per_image_budget(job, decodes):
    up, jd = job
    p = pixel_bomb_zip(up / "bomb.zip")
    assert p.stat().st_size < 100_000
    refused(p, jd, r"only 0 usable images.*skipped declares too many pixels \(6300x6300 > the per-image pixel budget "
                   r"of 16,777,216\): 40")
    assert decodes == []


def test_pixel_bomb_under_the_per_image_limit_is_refused_by_the_upload_budget(job, decodes):
    up, jd = job
    p = pixel_bomb_zip(up / "bomb.zip", side=4000)
    refused(p, jd, r"40 pictures declare 640,000,000 pixels in all; the pixel budget of one upload is 200,000,000")
    assert decodes == []
    refused(make_zip(up / "good.zip", good_members(20)), jd, "pixel budget of one upload is 5,000",
            limits=UploadLimits(max_total_pixels=5000))


def test_a_normal_upload_is_within_every_budget(job, decodes):
    up, jd = job
    prep = prepare_image_zip(make_zip(up / "good.zip", good_members(24)))
    assert len(prep.data) == 24 and len(decodes) >= 24      # the counter sees real decoding


def test_check_time_budget(job):
    up, jd = job
    p = make_zip(up / "good.zip", good_members(20))
    refused(p, jd, r"took longer than 0 s \(the time budget of one upload check\)", limits=UploadLimits(max_check_seconds=0))


def test_ratio_check_covers_small_members(job):
    """A 270 KB blank BMP (far below the old 1 MiB floor) expanding ~1000x is refused before it is read."""
    up, jd = job
    m = good_members(20)
    m["set/cats/blank.bmp"] = encode(Image.new("RGB", (300, 300)), "BMP")
    refused(make_zip(up / "blank.zip", m), jd, r"member 'set/cats/blank.bmp' expands \d+x \(limit 100x\): looks like a zip bomb")
    m = good_members(20)
    m["set/cats/zeros.png"] = b"\0" * 200_000
    refused(make_zip(up / "zeros.zip", m), jd, "looks like a zip bomb")


def test_large_exif_header_still_reads(job):
    """A JPEG whose size sits beyond the header prefix (a 70 KB EXIF-like block) still prepares."""
    up, jd = job
    m = good_members(16)
    im = picture(77, (48, 48))
    b = io.BytesIO()
    im.save(b, format="JPEG", exif=b"Exif\0\0" + bytes(np.random.default_rng(0).integers(0, 256, 65_000, np.uint8)),
            icc_profile=bytes(np.random.default_rng(1).integers(0, 256, 30_000, np.uint8)))
    m["set/dogs/exif.jpg"] = b.getvalue()
    prep = prepare_image_zip(make_zip(up / "exif.zip", m))
    assert prep.report["decoded"] == 17


# -- degenerate text ------------------------------------------------------------------------------
@pytest.mark.parametrize("text,match", [
    ("a" * 5_000_000, r"too degenerate to learn from: only 1 distinct characters \('a'\)"),
    ("abcab " * 200, r"only 4 distinct characters \(. abc.\); a text to learn from has at least 8"),
    ("x" * 20_000 + "abcdefghij", r"100% of it is 'x': 0.0\d bits of entropy per character"),
    ("The quick brown fox jumps over the lazy dog. " * 20_000, r"compresses \d+x .*one short passage repeated"),
])
def test_degenerate_text_is_refused(job, text, match):
    up, jd = job
    p = up / "same.txt"
    p.write_text(text, encoding="utf-8")
    refused(p, jd, match)


def test_ordinary_text_passes_with_its_entropy():
    from aigc.data.uploads import degenerate_reason
    text = (Path(__file__).resolve().parents[1] / "data" / "text" / "shakespeare.txt").read_text(encoding="utf-8")
    for piece in (text[:600], text[:200_000]):
        assert degenerate_reason(piece, Counter(piece)) is None
