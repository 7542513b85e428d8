"""The preparation report: histograms, a rule-of-thumb recommendation, report.json / preview.png,
the groups a VaDE base sees (aigc.data.uploads.groups), and the report as a few lines for a person."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from aigc.fileio import atomic_path, atomic_write_json

_SIZE_BINS = [(0, 32, "<32"), (32, 64, "32-63"), (64, 128, "64-127"), (128, 256, "128-255"),
              (256, 512, "256-511"), (512, 1024, "512-1023"), (1024, 10 ** 9, ">=1024")]
_ASPECT_BINS = [(0, 0.5, "<0.5 (tall)"), (0.5, 0.8, "0.5-0.8"), (0.8, 1.25, "0.8-1.25 (squarish)"),
                (1.25, 2.0, "1.25-2"), (2.0, 1e9, ">=2 (wide)")]


def _histogram(values, bins) -> dict:
    out = {label: 0 for _, _, label in bins}
    for v in values:
        for lo, hi, label in bins:
            if lo <= v < hi:
                out[label] += 1
                break
    return out


def size_histograms(sizes: list[tuple[int, int]]) -> dict:
    """{"size_histogram": longer side, "aspect_histogram": w / h} of the original (w, h) sizes."""
    return {"size_histogram": _histogram([max(w, h) for w, h in sizes], _SIZE_BINS),
            "aspect_histogram": _histogram([w / h for w, h in sizes if h], _ASPECT_BINS)}


def recommend_images(n: int, resolution: int, batch_hint: int = 32) -> str:
    """A simple, honest rule of thumb (not a measurement)."""
    epochs = 300 if n < 1000 else 100
    steps = max(1, round(epochs * n / batch_hint))
    parts = [f"{n} images at {resolution}x{resolution}"]
    if n < 2000:
        parts.append("GANs: DiffAugment on (keep it on for small sets)")
    if n < 200:
        parts.append("very few images: a GAN will mostly copy them; a VAE will blur them")
    if n < 5000:
        parts.append("from scratch on a CPU with a short time limit (~10 minutes), a VAE gives softer but "
                     "recognisable samples sooner than a GAN, which needs many more steps to be clean "
                     "(measured: bench/README.md, Fine-tune)")
    parts.append(f"rule of thumb: expect memorisation above ~{steps} steps at batch {batch_hint} "
                 f"(~{epochs} passes); compare samples with their nearest training images")
    return "; ".join(parts)


def write_report(job_dir: str | Path, report: dict, preview: Image.Image | None = None) -> None:
    """report.json (and preview.png) into `job_dir`, atomically."""
    job_dir = Path(job_dir)
    atomic_write_json(job_dir / "report.json", report)
    if preview is not None:
        with atomic_path(job_dir / "preview.png") as tmp:
            preview.save(tmp, format="PNG")


def _image_lines(report: dict) -> list[str]:
    lines = [f"{report['file']}: {report['kept']} images kept of {report['decoded']} decoded, "
             f"{report['skipped']} skipped; {report['mode']} {report['resolution']}x{report['resolution']}"]
    for reason, n in report["skipped_reasons"].items():
        lines.append(f"  skipped {n}: {reason} (e.g. {report['skipped_examples'][reason]!r})")
    d = report["duplicates"]
    lines.append(f"  duplicates removed: {d['exact']} exact, {d['near']} near")
    lines.append(f"  inputs: {report['grey_inputs']} grey, {report['colour_inputs']} colour")
    lines.append("  sizes (longer side): " + ", ".join(f"{k}: {v}" for k, v in report["size_histogram"].items() if v))
    lines.append("  aspect (w/h): " + ", ".join(f"{k}: {v}" for k, v in report["aspect_histogram"].items() if v))
    if report["class_counts"]:
        lines.append("  classes: " + ", ".join(f"{k}: {v}" for k, v in report["class_counts"].items())
                     + (" (balanced by repetition)" if report.get("balanced") else ""))
    elif report.get("labels_note"):
        lines.append(f"  {report['labels_note']}")
    return lines


def _text_lines(report: dict) -> list[str]:
    lines = [f"{report['file']}: {report['chars']:,} characters, {report['distinct_chars']} distinct"
             + (f", {report['records']} records" if report.get("records") is not None else "")]
    if "unknown_chars" in report:
        top = "".join(report["unknown_top"])
        lines.append(f"  unknown to the tokenizer: {report['unknown_chars']} characters"
                     + (f" ({report['unknown_distinct']} distinct, e.g. {top[:10]!r})" if top else ""))
    return lines


def group_lines(groups: dict) -> list[str]:
    """aigc.data.uploads.groups.group_upload's result as a few lines for a person."""
    if not groups.get("fits"):
        return [f"  groups: {groups.get('reason', 'the pictures could not be grouped')}"]
    n, used = groups["images"], groups["groups_used"]
    lines = [f"  groups ({groups['base']}): your {n} images fall into {used} group{'s' if used != 1 else ''}"
             f" of {groups['n_clusters']}"]
    sizes = ", ".join(f"{g['size']} ({g['share']:.0%})" for g in groups["groups"])
    lines.append(f"    sizes, largest first: {sizes}")
    for g in groups["groups"]:
        lines.append(f"    group {g['group']}: {g['size']} images, e.g. #{', #'.join(map(str, g['examples']))}")
    m = groups["misfits"]
    if m["count"]:
        ex = ", ".join(f"#{e['index']} ({e['why']})" for e in m["examples"])
        lines.append(f"    {m['count']} fit no group well ({m['rare']} rare, {m['split']} between groups), e.g. {ex}")
    else:
        lines.append("    every image fits a group well")
    return lines


def format_report(report: dict) -> str:
    """The report as a few human-readable lines (with the groups when report["groups"] holds them)."""
    lines = _image_lines(report) if report.get("kind") == "images" else _text_lines(report)
    if isinstance(report.get("groups"), dict):
        lines += group_lines(report["groups"])
    lines.append(f"  recommendation: {report['recommendation']}")
    return "\n".join(lines + _run_lines(report))


def _run_lines(report: dict) -> list[str]:
    """What a fine-tune does with a text (the fields aigc.finetune.run adds to its report.json): the
    tokenizer, characters added, what is held out, the recipe and what it rehearses. None in a check."""
    lines = [f"  tokenizer: {report['tokenizer']}"] if report.get("tokenizer") else []
    if report.get("tokenizer") and report.get("added_chars"):
        lines.append(f"  added {report['added_chars']} characters to the vocabulary: {report['added_sample']}")
    if report.get("tokenizer") and report.get("script_note"):
        lines.append(f"  note: {report['script_note']}")
    if report.get("heldout_note"):
        lines.append(f"  {report['heldout_note']}")
    if (report.get("recipe") or {}).get("line"):
        lines.append(f"  {report['recipe']['line']}")
    if report.get("rehearsal_note"):
        lines.append(f"  note: {report['rehearsal_note']}")
    if (report.get("rehearsal_selected") or {}).get("nearest"):
        lines.append(f"  the corpus paragraph most like it begins: {report['rehearsal_selected']['nearest']}")
    return lines
