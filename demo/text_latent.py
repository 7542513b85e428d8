"""The Text tab's Latent view: a sentence VAE's latent space (aigc.pipelines.textvae.TextVAEPipeline).

Two lines in, the decoded path between them out; one line encoded, then moved along the
principal directions with sliders; the model's diagnostics (KL per line, active units) shown.
No model math here: every number comes from the pipeline.

Named endpoints (gradio_client):
  /text_interpolate (model, line_a, line_b, steps) -> path table (step, line, well-formed, typed),
                     info markdown; step 0 and the last step are the decoder's reconstructions of
                     the two encoded lines, so the typed lines are shown beside them
  /text_encode (model, line) -> (reconstruction markdown, coords reset to 0)
  /text_edit (model, line, *coords) -> edited line markdown
  /text_vae_sample (model, n, seed, temperature=1.0) -> sampled lines
"""
from __future__ import annotations

import logging
import threading

import gradio as gr

from demo.common import owner_id
from demo.models import NOBODY
from demo.text_examples import HELP

log = logging.getLogger("aigc.demo")
N_SLIDERS = 6           # principal directions offered as sliders (the rest stay at 0)
SLIDER_RANGE = 3.0      # in standard deviations of the posterior means along the direction
MAX_LINE = 64
UNMOVED_CACHE = 256     # remembered unmoved decodings (one per model, line and slider count)


def _ends_note(a: str, first: str, b: str, last: str) -> str:
    """Why step 0 may differ from the typed line: it is decoded from line A's encoding."""
    if first == a and last == b:
        return " · step 0 and the last step decode lines A and B exactly"
    return (" · step 0 and the last step are the decoder's reconstructions of the encoded lines A and B, "
            "not the typed lines (a VAE keeps a line's gist in a few numbers, not every character): "
            f"A **{a}** → **{first}**, B **{b}** → **{last}**")


class LatentHandlers:
    def __init__(self, models):
        self.models = models
        # (model, line, sliders) -> the unmoved line's decoding: a slider drag re-decodes only the
        # moved point. A pure function of its key (shared by every user, like the models), bounded.
        self._unmoved = {}
        self._unmoved_lock = threading.Lock()

    def _unmoved_line(self, model, pipe, line, n):
        key = (model, id(pipe), line, n)
        with self._unmoved_lock:
            if key in self._unmoved:
                return self._unmoved[key]
        out = pipe.edit(line, [0.0] * n)["line"]
        with self._unmoved_lock:
            if len(self._unmoved) >= UNMOVED_CACHE:
                self._unmoved.pop(next(iter(self._unmoved)))
            self._unmoved[key] = out
        return out

    def _pipe(self, model, request=None):
        pipe = self.models.get(model, None if request is False else owner_id(None, request))
        if not hasattr(pipe, "interpolate"):
            raise ValueError(f"{model} is not a text VAE")
        return pipe

    @staticmethod
    def _fail(e: Exception):
        if isinstance(e, (ValueError, TypeError)):
            return gr.Error(str(e)[:500], print_exception=False)
        log.exception("text latent request failed")
        return gr.Error(f"internal error ({type(e).__name__}); the server is still running", print_exception=False)

    def interpolate(self, model, a, b, steps, request: gr.Request = None):
        try:
            pipe = self._pipe(model, request)
            if isinstance(steps, float) and steps.is_integer():
                steps = int(steps)
            lines = pipe.interpolate(a, b, steps=steps)
            typed = {0: f"A: {a.strip()}", len(lines) - 1: f"B: {b.strip()}"}
            rows = [[i, ln, "✓" if pipe.well_formed(ln) else "✗", typed.get(i, "")] for i, ln in enumerate(lines)]
            ok = sum(r[2] == "✓" for r in rows)
            return rows, (f"{len(rows)} steps decoded · {ok}/{len(rows)} well-formed lines (5 or 7 hanzi)"
                          + _ends_note(a.strip(), lines[0], b.strip(), lines[-1]))
        except Exception as e:  # noqa: BLE001
            raise self._fail(e) from None

    def encode(self, model, line, request: gr.Request = None):
        try:
            pipe = self._pipe(model, request)
            r = pipe.encode(line)
            note = f" · {r['unknown_chars']} character(s) unknown to the model" if r.get("unknown_chars") else ""
            md = (f"decoded back: **{r['reconstruction']}** · KL of this line {r['kl']:.1f} nats{note}")
            return (md, *[0.0] * N_SLIDERS)
        except Exception as e:  # noqa: BLE001
            raise self._fail(e) from None

    def edit(self, model, line, *coords, request: gr.Request = None):
        try:
            pipe = self._pipe(model, request)
            c = [float(x or 0.0) for x in coords]
            if any(abs(x) > SLIDER_RANGE for x in c):
                raise ValueError(f"each slider is between -{SLIDER_RANGE:g} and {SLIDER_RANGE:g}")
            r = pipe.edit(line, c)
            mark = "" if r["well_formed"] else " (not a well-formed line)"
            same = (" (the same as the unmoved line: move further)"
                    if any(c) and r["line"] == self._unmoved_line(model, pipe, line, len(c)) else "")
            return f"edited: **{r['line']}**{mark}{same}"
        except Exception as e:  # noqa: BLE001
            raise self._fail(e) from None

    def sample(self, model, n, seed, temperature=1.0, request: gr.Request = None):
        try:
            pipe = self._pipe(model, request)
            n = int(n) if isinstance(n, (int, float)) and float(n).is_integer() else n
            seed = int(seed) if isinstance(seed, (int, float)) and float(seed).is_integer() else seed
            if not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
                raise ValueError("seed must be a whole number between 0 and 2^32-1")
            return "\n".join(pipe.sample(n=n, seed=seed, temperature=temperature))
        except Exception as e:  # noqa: BLE001
            raise self._fail(e) from None

    def describe(self, model, request: gr.Request = None) -> str:
        try:
            pipe = self._pipe(model, request)
            d = pipe.diagnostics()
        except Exception as e:  # noqa: BLE001
            return f"diagnostics unavailable: {e}"[:300]
        parts = []
        if "kl_per_line" in d:
            parts.append(f"KL per line **{d['kl_per_line']:.2f} nats**")
        if "active_units" in d and "latent_dim" in d:
            parts.append(f"active latent units **{d['active_units']}/{d['latent_dim']}**")
        if "recon_acc" in d:
            parts.append(f"exact reconstructions {100 * d['recon_acc']:.1f}%")
        if "interp_well_formed" in d:
            parts.append(f"well-formed interpolation steps {100 * d['interp_well_formed']:.1f}%")
        return " · ".join(parts) + " (held-out lines; see the model card)"

    def slider_labels(self, model) -> list[str]:
        try:
            dirs = self._pipe(model, False).directions()
        except Exception:  # noqa: BLE001
            dirs = []
        labels = []
        for i in range(N_SLIDERS):
            if i < len(dirs):
                v = dirs[i].get("explained")
                labels.append(f"{dirs[i].get('name', f'PC{i + 1}')}" + (f" ({100 * v:.1f}% of the variance)" if isinstance(v, float) else ""))
            else:
                labels.append(f"direction {i + 1}")
        return labels


def build_latent_view(models) -> LatentHandlers:
    h = LatentHandlers(models)
    names = models.names("text-vae", owner=NOBODY)
    first = names[0] if names else None
    if not names:
        gr.Markdown("**No text VAE found.** Train and ship one with "
                    "`OMP_NUM_THREADS=1 bash bench/textvae_tang.sh` (15 minutes on a CPU).")
    model = gr.Dropdown(names, value=first, label="Text VAE", allow_custom_value=True, elem_id="tvae-model")
    diag = gr.Markdown(h.describe(first, False) if first else "", elem_id="tvae-diagnostics")
    with gr.Row(equal_height=False):
        with gr.Column(min_width=300):
            gr.Markdown("**Interpolate** between two lines: every step of the latent path is decoded.")
            a = gr.Textbox("床前明月光", label="Line A", max_length=MAX_LINE, elem_id="tvae-line-a")
            b = gr.Textbox("低头思故乡", label="Line B", max_length=MAX_LINE, elem_id="tvae-line-b")
            steps = gr.Slider(2, 16, value=8, step=1, label="Steps (both ends included)", elem_id="tvae-steps")
            go = gr.Button("Interpolate", variant="primary", elem_id="tvae-interpolate")
            path = gr.Dataframe(headers=["step", "line", "well-formed", "typed"],
                                datatype=["number", "str", "str", "str"], interactive=False, elem_id="tvae-path")
            path_info = gr.Markdown(elem_id="tvae-path-info")
        with gr.Column(min_width=300):
            gr.Markdown("**Move one line** along the principal directions of the latent space.")
            line = gr.Textbox("春眠不觉晓", label="Line", max_length=MAX_LINE, elem_id="tvae-line")
            enc = gr.Button("Encode", elem_id="tvae-encode")
            recon = gr.Markdown(elem_id="tvae-recon")
            labels = h.slider_labels(first) if first else [f"direction {i + 1}" for i in range(N_SLIDERS)]
            sliders = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0.0, step=0.1, label=labels[i],
                                 elem_id=f"tvae-dir-{i}") for i in range(N_SLIDERS)]
            edited = gr.Markdown(elem_id="tvae-edited")
            with gr.Accordion("Sample lines from the prior", open=False):
                with gr.Row():
                    n = gr.Slider(1, 32, value=8, step=1, label="How many")
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0)
                prior_t = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Prior temperature",
                                    info=HELP["prior_temperature"], elem_id="tvae-prior-temperature")
                sample_btn = gr.Button("Sample", elem_id="tvae-sample")
                samples = gr.Textbox(label="Sampled lines", lines=8, interactive=False, elem_id="tvae-samples")

    go.click(h.interpolate, [model, a, b, steps], [path, path_info], api_name="text_interpolate",
             concurrency_id="text-vae", concurrency_limit=4)
    enc.click(h.encode, [model, line], [recon, *sliders], api_name="text_encode", concurrency_id="text-vae")
    for i, s in enumerate(sliders):
        s.release(h.edit, [model, line, *sliders], [edited], api_name=f"text_edit_slider_{i}",
                  api_visibility="private", concurrency_id="text-vae", show_progress="hidden")
    edit_btn = gr.Button("Apply sliders", elem_id="tvae-apply")
    edit_btn.click(h.edit, [model, line, *sliders], [edited], api_name="text_edit", concurrency_id="text-vae")
    sample_btn.click(h.sample, [model, n, seed, prior_t], [samples], api_name="text_vae_sample", concurrency_id="text-vae")
    model.change(h.describe, [model], [diag], api_name="text_vae_describe", api_visibility="private",
                 show_progress="hidden")
    return h
