"""The "Fine-tune" tab: upload a dataset, check it, train in the background, watch it, cancel it.

    build_demo(registry, extra_tabs={"Fine-tune": build_finetune_tab})

Named endpoints (gradio_client):
  /check_upload  (file, base, resolution)            -> report (markdown), data preview
  /start_job     (file, base, resolution, steps, minutes, name, my_jobs) -> job id, ...
                 (minutes: a time limit beside the steps; 0 or empty: steps only)
  /job_status    (job_id)                            -> progress text, bar, loss rows, preview, quality rows
  /cancel_job    (job_id)                            -> progress text
  /resume_job    (job_id)                            -> progress text
  /compare_finetune (job_id, seed, prompt)           -> base grid, fine-tuned grid, base text,
                                                        fine-tuned text, info (same seeds / prompt)

A finished job's model is published to the user-models folder and added to the app's registry
at once (JobManager.on_publish -> ModelRegistry.add); a hidden counter of the registry's
changes (`FinetuneHandlers.models_changed`) lets demo.app refresh every model picker on the page.
Quality during training (aigc finetune's periodic evaluation) is plotted next to the loss:
KID in random-conv features and copy rate against the upload (images), held-out cross-entropy
(text).

Jobs run one at a time in a worker process (aigc.finetune.jobs.JobManager); the browser keeps the ids
of its own jobs (gr.BrowserState), so reloading the page finds them again. The jobs folder and
the user-models folder default to `jobs/` and `user_models/` beside the weights folder
(AIGC_JOBS_DIR / AIGC_USER_MODELS override them).
"""
from __future__ import annotations

import hashlib
import html
import logging
import os
import threading
from pathlib import Path

import gradio as gr

from aigc.data.uploads import (UploadError, format_report, prepare_image_zip, prepare_text, split_heldout,
                               upload_kind)
from aigc.finetune.jobs import IMAGE_RESOLUTIONS, QUALITY_SERIES, JobError, JobManager

from demo.common import friendly
from aigc.limits import FINETUNE_MINUTES_MAX, FINETUNE_STEPS_MAX, SEED_MAX, check_int

log = logging.getLogger("aigc.demo")

AUTO = "auto"
SCRATCH = "new:"                 # dropdown values for "train a kind from scratch"
MY_JOBS_MAX = 20
POLL_S = 2.0
COMPARE_N = 16                   # images per compared grid (4 x 4)
COMPARE_CHARS = 300              # characters each text model writes in the comparison
COMPARE_TEMPERATURE = 0.8
QUALITY_HELP = (
    "**Quality over time** (measured while training, on fixed seeds; the first point is the starting "
    "model). Images: **KID×1000 (random-conv features)** compares 256 samples with your prepared images "
    "in the features of a fixed, *untrained* conv net: cheap enough for a CPU, good at telling wrong from "
    "right, not comparable with the Inception KID of the model cards; lower is closer. Because it compares "
    "with the training images themselves it also rewards copying, so read it with the **copy rate**: the "
    "share of samples nearer (pixel distance) to one of your images than half that image's distance to "
    "its nearest other image; fresh pictures of the same kind score about 0–3%, a model that memorises "
    "climbs towards 100%. Text: **held-out cross-entropy** on the last 10% of your text, which the model "
    "does not train on; when it rises while the loss falls, the model is memorising.")

_managers: dict[Path, JobManager] = {}
_managers_lock = threading.Lock()


def get_manager(root: str | Path, user_models: str | Path | None = None, device: str = "cpu") -> JobManager:
    """One JobManager per jobs folder in this process (a second would run a second queue)."""
    key = Path(root).resolve()
    with _managers_lock:
        if key not in _managers:
            _managers[key] = JobManager(key, user_models, device=device)
        return _managers[key]


def _fmt_eta(s) -> str:
    if s is None:
        return "estimating…"
    s = int(round(s))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


class FinetuneHandlers:
    """The tab's handlers. Per-user values (the browser's job ids) come in as arguments."""

    def __init__(self, registry, manager: JobManager):
        self.registry = registry
        self.jobs = manager
        self.models_changed = None          # the hidden registry-version component (set by the layout)

    # -- choices ----------------------------------------------------------------------------------
    def base_choices(self) -> list[tuple[str, str]]:
        from aigc.kinds import KINDS
        out = []
        for name, e in self.registry.entries.items():
            if getattr(e, "error", None) is None and e.kind in KINDS and e.kind != "text-vae":
                out.append((f"{name} (fine-tune, {e.kind})", name))
        from aigc.cli.commands import FINETUNE_KINDS
        out += [(f"new {k} (train from scratch)", SCRATCH + k) for k in KINDS if k in FINETUNE_KINDS]
        return out

    def suggest_base(self, file, current):
        """After an upload: keep a base that suits its kind, else pick one that does -- a new VAE for
        images (on a CPU it gives recognisable samples soonest; bench/README.md, Fine-tune), the
        small Shakespeare model for text (the quickest to fine-tune), else any text model."""
        from aigc.kinds import get_kind
        try:
            want = upload_kind(self._file(file))
        except (ValueError, UploadError):
            return gr.update()
        values = [v for _, v in self.base_choices()]

        def modality(v):
            if v.startswith(SCRATCH):
                return get_kind(v[len(SCRATCH):]).modality
            e = self.registry.entries.get(v)
            return getattr(e, "modality", None)

        target = "image" if want == "images" else "text"
        if current in values and modality(current) == target:
            return gr.update()
        prefer = [SCRATCH + "vae"] if target == "image" else ["char-shakespeare-small", "char-shakespeare"]
        pick = next((v for v in prefer if v in values), None) or next((v for v in values if modality(v) == target), None)
        return gr.update(value=pick) if pick else gr.update()

    def _base(self, base) -> tuple[str, str, dict | None]:
        """-> (value for the job: a kind or a model path, kind, base config or None)."""
        from aigc.kinds import KINDS
        if not isinstance(base, str) or not base:
            raise ValueError("choose a base model (or a kind to train from scratch)")
        if base.startswith(SCRATCH) and base[len(SCRATCH):] in KINDS:
            k = base[len(SCRATCH):]
            return k, k, None
        e = self.registry.entries.get(base)
        if e is None or getattr(e, "error", None) or e.kind not in KINDS:
            raise ValueError(f"unknown base model {base[:60]!r}; pick one from the list")
        return str(Path(e.path).resolve()), e.kind, dict(e.config or {})

    @staticmethod
    def _file(file) -> Path:
        if file is None:
            raise ValueError("upload a .zip of images (one folder per class) or a .txt / .jsonl text file")
        p = Path(file if isinstance(file, (str, os.PathLike)) else getattr(file, "name", file))
        if not p.is_file():
            raise ValueError("the upload is gone; upload it again")
        return p

    @staticmethod
    def _resolution(resolution, cfg) -> int | None:
        if resolution in (None, "", AUTO):
            return None
        try:
            r = int(resolution)
        except (TypeError, ValueError):
            raise ValueError(f"resolution must be {AUTO} or one of {IMAGE_RESOLUTIONS}") from None
        if r not in IMAGE_RESOLUTIONS:
            raise ValueError(f"resolution must be {AUTO} or one of {IMAGE_RESOLUTIONS}")
        return r

    # -- endpoints --------------------------------------------------------------------------------
    @friendly
    def check_upload(self, file, base, resolution):
        """Check and prepare the upload as the job would (nothing is trained) -> report, preview."""
        from aigc.kinds import get_kind, make_config
        path = self._file(file)
        value, kind, cfg = self._base(base)
        upload = upload_kind(path)
        modality = get_kind(kind).modality
        if (upload == "text") != (modality == "text"):
            want = "a .txt or .jsonl text file" if modality == "text" else "a .zip of images"
            raise UploadError(f"{base} is a {kind} ({modality} model): upload {want}")
        mcfg = (cfg or {})
        if upload == "images":
            res = self._resolution(resolution, cfg) or mcfg.get("resolution") or 32
            prep = prepare_image_zip(path, resolution=res)
            text = format_report(prep.report)
            if cfg is not None:
                want = (mcfg.get("channels"), mcfg.get("resolution"), mcfg.get("resolution"))
                if tuple(want) != tuple(prep.data.shape):
                    text += (f"\n\n**Will not fit {base}**: it makes {want[0]}x{want[1]}x{want[2]} images; this data "
                             f"prepares to {'x'.join(map(str, prep.data.shape))}. Train a new {kind} instead.")
                n_cls = int(mcfg.get("num_classes", 0) or 0)
                if n_cls and prep.data.num_classes != n_cls:
                    text += (f"\n\n**Will not fit {base}**: it is class-conditional with {n_cls} classes; "
                             f"this data has {prep.data.num_classes or 'no'} class folders.")
            return "```\n" + text + "\n```", prep.preview
        block = mcfg.get("block_size") or make_config(kind).block_size
        prep = prepare_text(path, block_size=block)
        note = split_heldout(prep.text, block)[2]
        return "```\n" + format_report(prep.report) + f"\n  {note}" + "\n```", None

    @friendly
    def start_job(self, file, base, resolution, steps, minutes, name, my_jobs=None):
        """Queue a job -> (job id, my_jobs, job picker update, status text). The job stops at
        `steps` or after `minutes` of training, whichever comes first (0 / empty: no time limit)."""
        path = self._file(file)
        value, kind, cfg = self._base(base)
        try:
            x = float(steps)
        except (TypeError, ValueError):
            raise ValueError("steps must be a whole number") from None
        steps_i = int(x) if x.is_integer() else -1
        if isinstance(steps, bool) or not 1 <= steps_i <= FINETUNE_STEPS_MAX:
            raise ValueError(f"steps must be a whole number from 1 to {FINETUNE_STEPS_MAX:,}")
        limit = self._minutes(minutes)
        upload_kind(path)
        res = self._resolution(resolution, cfg)
        if name is not None and not isinstance(name, str):
            raise ValueError("the model name must be text")
        job_id = self.jobs.submit(path, value, steps=steps_i, resolution=res, name=name or None,
                                  max_minutes=limit)
        mine = [job_id] + [j for j in (my_jobs or []) if isinstance(j, str) and j != job_id][:MY_JOBS_MAX - 1]
        s = self.jobs.status(job_id)
        return job_id, mine, gr.update(choices=self._job_choices(mine), value=job_id), self._text(s)

    @staticmethod
    def _minutes(minutes) -> float | None:
        """The time-limit box -> minutes, or None for no limit (0 or empty)."""
        if minutes is None or (isinstance(minutes, str) and not minutes.strip()):
            return None
        try:
            m = float(minutes)
        except (TypeError, ValueError):
            raise ValueError("the time limit must be a number of minutes (0: none)") from None
        if isinstance(minutes, bool) or not (0 <= m <= FINETUNE_MINUTES_MAX):
            raise ValueError(f"the time limit must be from 0 (none) to {FINETUNE_MINUTES_MAX:,} minutes")
        return m or None

    @friendly
    def job_status(self, job_id):
        """-> (status markdown, progress bar html, loss rows, latest preview, quality rows)."""
        if not job_id:
            return "_no job yet: check your data, then press Train_", "", None, None, None
        s = self.jobs.status(job_id)
        if s["state"] == "done" and s.get("model_path"):
            self._publish(s["model_path"])
        import pandas as pd
        loss = pd.DataFrame(s["loss"], columns=["step", "value", "series"]) if s["loss"] else None
        quality = pd.DataFrame(s["quality"], columns=["step", "value", "series"]) if s.get("quality") else None
        return self._text(s), self._bar(s), loss, s["preview"], quality

    def models_version(self) -> int:
        return int(getattr(self.registry, "version", 0))

    def tick(self, job_id, seen_version):
        """The page's poll: the job's status, and the registry's version when it changed (the
        hidden counter whose .change refreshes the model pickers)."""
        out = self.job_status(job_id)
        v = self.models_version()
        return (*out, v if v != seen_version else gr.skip())

    def _publish(self, model_path) -> str | None:
        """A finished job's model into the registry (normally done by the manager's listener
        already; this covers a job finished by another server process)."""
        reg = self.registry
        if not hasattr(reg, "add"):
            return None
        return reg.name_for(model_path) or reg.add(model_path)

    def base_update(self, current=None):
        """The base-model picker's choices again (new user models can be fine-tuned further)."""
        if hasattr(self.registry, "refresh"):
            self.registry.refresh()
        choices = self.base_choices()
        value = current if current in [c[1] for c in choices] else (choices[0][1] if choices else None)
        return gr.update(choices=choices, value=value)

    # -- compare ----------------------------------------------------------------------------------
    @friendly
    def compare(self, job_id, seed, prompt):
        """Base vs fine-tuned on the same seeds (images: two grids, the same latents and labels;
        text: the same prompt and seed continued by both) -> (base image, fine-tuned image, base
        text, fine-tuned text, info markdown). A job trained from scratch shows only the new model."""
        from aigc.kinds import KINDS
        if not job_id:
            raise ValueError("no job selected")
        s = self.jobs.status(job_id)
        if s["state"] != "done" or not s.get("model_path"):
            raise ValueError(f"job {job_id} is {s['state']}; compare once it is done")
        seed = check_int(seed, 0, SEED_MAX, "seed")
        if not hasattr(self.registry, "pipeline_for"):
            raise ValueError("this app's registry cannot load models")
        name = self._publish(s["model_path"]) or Path(s["model_path"]).name
        tuned = self.registry.pipeline_for(s["model_path"])
        base_ref = str(s["spec"]["base"])
        base, base_name, note = None, None, ""
        if base_ref in KINDS:
            note = f"**{html.escape(name)}** was trained from scratch (a new {base_ref}): there is no base model to compare with; showing the new model only."
        else:
            base_name = self.registry.name_for(base_ref) or Path(base_ref).name
            try:
                base = self.registry.pipeline_for(base_ref)
            except ValueError as e:
                note = f"the base model {html.escape(base_name)} is not available any more ({html.escape(str(e))}); showing the fine-tuned model only."
        if getattr(tuned, "model", None) is not None and tuned.model.modality == "text":
            from aigc.pipelines.charlm import check_prompt
            prompt = check_prompt(prompt or "")
            kw = dict(temperature=COMPARE_TEMPERATURE, seed=seed)
            t_text = tuned.generate(prompt, COMPARE_CHARS, **kw).text
            b_text = base.generate(prompt, COMPARE_CHARS, **kw).text if base is not None else ""
            info = (f"the same prompt, seed {seed}, temperature {COMPARE_TEMPERATURE}, {COMPARE_CHARS} characters"
                    + (f": left **{html.escape(base_name)}** (base), right **{html.escape(name)}** (fine-tuned)"
                       if base is not None else ""))
            return None, None, b_text, t_text, "\n\n".join(x for x in (note, info) if x)
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
        if base is not None:
            info += f": left **{html.escape(base_name)}** (base), right **{html.escape(name)}** (fine-tuned)"
        return b_img, t_img, "", "", "\n\n".join(x for x in (note, info) if x)

    @friendly
    def cancel_job(self, job_id):
        if not job_id:
            raise ValueError("no job selected")
        return self._text(self.jobs.cancel(job_id))

    @friendly
    def resume_job(self, job_id):
        if not job_id:
            raise ValueError("no job selected")
        return self._text(self.jobs.resume(job_id))

    def restore(self, my_jobs, current):
        """Page load: the browser's own jobs back into the picker (newest first)."""
        mine = [j for j in (my_jobs or []) if isinstance(j, str)]
        known = {j["id"] for j in self.jobs.jobs()}
        mine = [j for j in mine if j in known]
        value = current if current in mine else (mine[0] if mine else None)
        return gr.update(choices=self._job_choices(mine), value=value), value

    # -- shaping ----------------------------------------------------------------------------------
    def _job_choices(self, ids) -> list[tuple[str, str]]:
        out = []
        for jid in ids:
            try:
                j = self.jobs.status(jid)
            except JobError:
                continue
            out.append((f"{j['name']} — {j['state']} ({jid})", jid))
        return out

    @staticmethod
    def _text(s: dict) -> str:
        lines = [f"**{html.escape(s['name'])}** — {s['state']}"]
        if s["state"] == "queued" and s.get("position"):
            lines.append(f"place in the queue: {s['position']}")
        if s["state"] in ("preparing", "running"):
            line = f"step {s['step']:,} / {s['total']:,}, about {_fmt_eta(s.get('eta_s'))} left"
            if s.get("budget_s"):
                line += (f" (time limit {_fmt_eta(s['budget_s'])}: {_fmt_eta(s.get('elapsed_s') or 0)} used; "
                         "it stops at whichever of steps and time comes first)")
            lines.append(line)
        if s.get("message"):
            lines.append(html.escape(str(s["message"])))
        if s["state"] == "failed" and s.get("error"):
            lines.append("```\n" + str(s["error"])[-1500:] + "\n```")
        if s["state"] == "done" and s.get("model_path"):
            where = ("the app's text models" if (s.get("report") or {}).get("kind") == "text"
                     else "the Image tab's model list")
            lines.append(f"saved as user model `{Path(s['model_path']).name}`: it is in {where} now; "
                         "open **Compare** below to see it next to its base")
        q = FinetuneHandlers._quality_text(s)
        if q:
            lines.append(q)
        if s.get("resumable"):
            lines.append("press Resume to continue" + (f" from step {s['checkpoint_step']:,}" if s.get("checkpoint_step") else ""))
        return "\n\n".join(lines)

    @staticmethod
    def _quality_text(s: dict) -> str:
        last, first = s.get("quality_last") or {}, s.get("quality_first") or {}
        parts = []
        for k, v in last.items():
            label, scale = QUALITY_SERIES[k]
            txt = f"{label.split(' (')[0]} {v * scale:.3g}"
            if k in first and first is not last:
                txt += f" (start {first[k] * scale:.3g})"
            parts.append(txt)
        return ("quality: " + ", ".join(parts)) if parts else ""

    @staticmethod
    def _bar(s: dict) -> str:
        frac = 1.0 if s["state"] == "done" else (s["step"] / s["total"] if s.get("total") else 0.0)
        if s["state"] != "done" and s.get("budget_s"):        # a time limit: whichever is further along
            frac = max(frac, (s.get("elapsed_s") or 0.0) / s["budget_s"])
        return (f'<progress max="1000" value="{int(1000 * min(max(frac, 0.0), 1.0))}" style="width:100%"></progress>'
                f"<div>{100 * frac:.0f}%</div>")


def _default_manager(registry) -> JobManager:
    from demo.models import default_user_models
    weights = Path(getattr(registry, "weights_dir", "weights")).resolve()
    root = os.environ.get("AIGC_JOBS_DIR") or weights.parent / "jobs"
    users = getattr(registry, "user_models_dir", None) or default_user_models(weights)
    return get_manager(root, users, device=getattr(registry, "device", "cpu"))


def _browser_secret(manager: JobManager) -> str:
    """A per-installation secret for the browser's stored job list (kept across restarts)."""
    p = manager.root / ".browser-secret"
    if not p.is_file():
        p.write_text(hashlib.sha256(os.urandom(32)).hexdigest()[:32], encoding="utf-8")
    return p.read_text(encoding="utf-8").strip()


def build_finetune_tab(registry, manager: JobManager | None = None) -> FinetuneHandlers:
    """Lay out the tab (inside the caller's gr.Tab) and wire its events; returns the handlers."""
    jobs = manager or _default_manager(registry)
    if hasattr(registry, "add"):
        jobs.on_publish(registry.add)          # a finished model joins the running app at once
    h = FinetuneHandlers(registry, jobs)
    my_jobs = gr.BrowserState([], storage_key="aigc-finetune-jobs", secret=_browser_secret(jobs))
    gr.Markdown("Upload a **.zip of images** (one folder per class) or a **.txt / .jsonl** text file, "
                "check it, then train. Jobs run one at a time in the background; this page finds yours "
                "again after a reload. Finished models are saved as user models.")
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="dataset (.zip, .txt, .jsonl)", file_types=[".zip", ".txt", ".jsonl"],
                             type="filepath", elem_id="ft-upload")
            choices = h.base_choices()
            base = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="base model",
                               elem_id="ft-base")
            with gr.Row():
                resolution = gr.Dropdown([AUTO, *map(str, IMAGE_RESOLUTIONS)], value=AUTO, label="resolution (images)")
                steps = gr.Number(500, precision=0, minimum=1, maximum=FINETUNE_STEPS_MAX, label="steps")
                minutes = gr.Number(0, minimum=0, maximum=FINETUNE_MINUTES_MAX, label="time limit, minutes (0: none)",
                                    info="stops at whichever of steps and time comes first")
            name = gr.Textbox("", label="name of the new model", placeholder="my-model", max_length=48)
            with gr.Row():
                check_btn = gr.Button("Check data")
                train_btn = gr.Button("Train", variant="primary")
            report = gr.Markdown()
            data_preview = gr.Image(label="prepared data (a sample)", type="pil", interactive=False)
        with gr.Column():
            with gr.Row():
                pick = gr.Dropdown([], label="your jobs", interactive=True, scale=2)
                job_id = gr.Textbox(label="job id", interactive=False, scale=1)
            status = gr.Markdown("_no job yet: check your data, then press Train_")
            bar = gr.HTML()
            with gr.Row():
                cancel_btn = gr.Button("Cancel", variant="stop")
                resume_btn = gr.Button("Resume")
            with gr.Row():
                loss = gr.LinePlot(x="step", y="value", color="series", label="loss", height=240)
                quality = gr.LinePlot(x="step", y="value", color="series", height=240,
                                      label="quality over time (see below)", elem_id="ft-quality")
            preview = gr.Image(label="latest samples", type="filepath", interactive=False)
            gr.Markdown(QUALITY_HELP, elem_classes="aigc-small")
    with gr.Accordion("Compare the base model and the fine-tuned one", open=False):
        gr.Markdown("Once a job is done: the same seeds through both models (images: the same latents and "
                    "classes; text: the same prompt and seed). A model trained from scratch is shown alone.",
                    elem_classes="aigc-small")
        with gr.Row():
            cmp_seed = gr.Number(0, label="seed", precision=0, minimum=0, maximum=SEED_MAX, scale=1)
            cmp_prompt = gr.Textbox("", label="prompt (text models; empty: start from nothing)", scale=3,
                                    max_length=2000)
            cmp_btn = gr.Button("Compare", variant="primary", scale=1)
        cmp_info = gr.Markdown(elem_id="ft-compare-info")
        with gr.Row():
            cmp_base = gr.Image(label="base model", type="pil", interactive=False, format="png")
            cmp_tuned = gr.Image(label="fine-tuned model", type="pil", interactive=False, format="png")
        with gr.Row():
            cmp_base_text = gr.Textbox(label="base model (text)", lines=8, interactive=False)
            cmp_tuned_text = gr.Textbox(label="fine-tuned model (text)", lines=8, interactive=False)
    # the registry's version: changes when a model is published; its .change refreshes the pickers
    models_version = gr.Number(h.models_version(), visible="hidden", precision=0, elem_id="ft-models-version")
    h.models_changed = models_version
    timer = gr.Timer(POLL_S)

    check_btn.click(h.check_upload, [upload, base, resolution], [report, data_preview], api_name="check_upload",
                    concurrency_id="finetune-check", concurrency_limit=1)
    train_btn.click(h.start_job, [upload, base, resolution, steps, minutes, name, my_jobs],
                    [job_id, my_jobs, pick, status],
                    api_name="start_job")
    pick.input(lambda j: j, [pick], [job_id], api_visibility="private", queue=False)
    job_id.change(h.job_status, [job_id], [status, bar, loss, preview, quality], api_name="job_status", queue=False)
    timer.tick(h.tick, [job_id, models_version], [status, bar, loss, preview, quality, models_version],
               api_visibility="private", queue=False, show_progress="hidden")
    models_version.change(h.base_update, [base], [base], api_visibility="private", queue=False,
                          show_progress="hidden")
    cmp_btn.click(h.compare, [job_id, cmp_seed, cmp_prompt], [cmp_base, cmp_tuned, cmp_base_text, cmp_tuned_text,
                  cmp_info], api_name="compare_finetune", concurrency_id="finetune-compare", concurrency_limit=1)
    cancel_btn.click(h.cancel_job, [job_id], [status], api_name="cancel_job")
    resume_btn.click(h.resume_job, [job_id], [status], api_name="resume_job")
    upload.upload(lambda: ("", None), None, [report, data_preview], api_visibility="private", queue=False)
    upload.upload(h.suggest_base, [upload, base], [base], api_visibility="private", queue=False)
    # a page (re)load: bring back this browser's jobs
    gr.on([pick.focus], h.restore, [my_jobs, job_id], [pick, job_id], api_name="restore_jobs", api_visibility="private", queue=False)
    ctx = gr.context.Context.root_block
    if ctx is not None:
        ctx.load(h.restore, [my_jobs, job_id], [pick, job_id], api_name="restore_jobs_on_load", api_visibility="private", queue=False)
    return h
