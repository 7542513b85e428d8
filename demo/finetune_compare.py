"""The Fine-tune tab's comparison: a base model and its fine-tuned model on the same seeds."""
from __future__ import annotations

import html
from pathlib import Path

from aigc.limits import SEED_MAX, check_int

COMPARE_N = 16                   # images per compared grid (4 x 4)
COMPARE_CHARS = 300              # characters each text model writes in the comparison
COMPARE_TEMPERATURE = 0.8
# the names a job's measurements go by (stats keys, metrics.json keys), first found wins
HELDOUT_KEYS = ("heldout_nats_per_char", "nats_per_char")
COPY_KEYS = ("text_copy_rate", "copy_rate")


def _first(d: dict, keys) -> float | None:
    for k in keys:
        v = (d or {}).get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def score_table(s: dict) -> str:
    """The held-out score and the copy rate of the base (the job's first measurement) and of the
    fine-tuned model (its last, else its metrics.json), side by side; '' when nothing was measured."""
    from demo.model_entry import read_json
    first, last = s.get("quality_first") or {}, dict(s.get("quality_last") or {})
    if s.get("model_path"):
        saved = read_json(Path(s["model_path"]) / "metrics.json")
        last = {**(saved if isinstance(saved, dict) else {}), **last}
    rows = []
    for label, keys, fmt in (("held-out cross-entropy, nats/char (lower is better)", HELDOUT_KEYS, "{:.3f}"),
                             ("copy rate: generated 12-character spans found in the upload", COPY_KEYS, "{:.1%}")):
        b, t = _first(first, keys), _first(last, keys)
        if b is None and t is None:
            continue
        rows.append(f"| {label} | {'—' if b is None else fmt.format(b)} | {'—' if t is None else fmt.format(t)} |")
    if not rows:
        return ""
    return "\n".join(["| measured on your text | base | fine-tuned |", "|---|---|---|", *rows])


def compare_job(registry, s: dict, seed, prompt, name: str):
    """Base vs fine-tuned for a done job's status `s` (images: two grids, the same latents and
    labels; text: the same prompt and seed continued by both) -> (base image, fine-tuned image,
    base text, fine-tuned text, info markdown). A job trained from scratch shows only the new model."""
    from aigc.kinds import KINDS
    seed = check_int(seed, 0, SEED_MAX, "seed")
    if not hasattr(registry, "pipeline_for"):
        raise ValueError("this app's registry cannot load models")
    tuned = registry.pipeline_for(s["model_path"])
    base_ref = str(s["spec"]["base"])
    base, base_name, note = None, None, ""
    if base_ref in KINDS:
        note = (f"**{html.escape(name)}** was trained from scratch (a new {base_ref}): there is no base model to "
                "compare with; showing the new model only.")
    else:
        base_name = registry.name_for(base_ref) or Path(base_ref).name
        try:
            base = registry.pipeline_for(base_ref)
        except ValueError as e:
            note = (f"the base model {html.escape(base_name)} is not available any more ({html.escape(str(e))}); "
                    "showing the fine-tuned model only.")
    pair = (f": left **{html.escape(base_name)}** (base), right **{html.escape(name)}** (fine-tuned)"
            if base is not None else "")
    if getattr(tuned, "model", None) is not None and tuned.model.modality == "text":
        from aigc.pipelines.charlm import check_prompt
        prompt = check_prompt(prompt or "")
        kw = dict(temperature=COMPARE_TEMPERATURE, seed=seed)
        t_text = tuned.generate(prompt, COMPARE_CHARS, **kw).text
        b_text = base.generate(prompt, COMPARE_CHARS, **kw).text if base is not None else ""
        info = f"the same prompt, seed {seed}, temperature {COMPARE_TEMPERATURE}, {COMPARE_CHARS} characters" + pair
        return None, None, b_text, t_text, "\n\n".join(x for x in (note, info, score_table(s)) if x)
    res = int(tuned.model.image_shape[-1])
    scale = max(1, 112 // res)
    t_img = tuned(COMPARE_N, seed).grid(nrow=4, scale=scale)
    b_img = base(COMPARE_N, seed).grid(nrow=4, scale=scale) if base is not None else None
    info = f"{COMPARE_N} samples from seed {seed} (the same latents for both models)"
    if tuned.conditional:
        t_names = tuned.model.class_names
        labels = [i % tuned.model.num_classes for i in range(COMPARE_N)]
        info += "; classes in turn, row by row: " + ", ".join(dict.fromkeys(str(t_names[i]) for i in labels))
        if base is not None and list(base.model.class_names) != list(t_names):
            info += (" (the base model calls the same class indices "
                     + ", ".join(dict.fromkeys(str(base.model.class_names[i]) for i in labels)) + ")")
    return b_img, t_img, "", "", "\n\n".join(x for x in (note, info + pair) if x)
