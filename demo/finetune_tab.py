"""The "Fine-tune" tab: upload a dataset, check it, train in the background, watch it, cancel it.

    build_demo(registry, extra_tabs={"Fine-tune": build_finetune_tab})

Named endpoints (gradio_client):
  /check_upload  (file, base, resolution)            -> report (markdown), data preview
  /start_job     (file, base, resolution, steps, name, my_jobs) -> job id, ...
  /job_status    (job_id)                            -> progress text, bar, loss rows, preview, ...
  /cancel_job    (job_id)                            -> progress text
  /resume_job    (job_id)                            -> progress text

Jobs run one at a time in a worker process (aigc.jobs.JobManager); the browser keeps the ids
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

from aigc.data.uploads import UploadError, format_report, prepare_image_zip, prepare_text, upload_kind
from aigc.jobs import IMAGE_RESOLUTIONS, JobError, JobManager

from .handlers import friendly

log = logging.getLogger("aigc.demo")

AUTO = "auto"
SCRATCH = "new:"                 # dropdown values for "train a kind from scratch"
STEPS_MAX = 100_000
MY_JOBS_MAX = 20
POLL_S = 2.0

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

    # -- choices ----------------------------------------------------------------------------------
    def base_choices(self) -> list[tuple[str, str]]:
        from aigc.registry import KINDS
        out = []
        for name, e in self.registry.entries.items():
            if getattr(e, "error", None) is None and e.kind in KINDS:
                out.append((f"{name} (fine-tune, {e.kind})", name))
        out += [(f"new {k} (train from scratch)", SCRATCH + k) for k in KINDS if k != "seed-gan"]
        return out

    def _base(self, base) -> tuple[str, str, dict | None]:
        """-> (value for the job: a kind or a model path, kind, base config or None)."""
        from aigc.registry import KINDS
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
        from aigc.registry import get_kind, make_config
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
        return "```\n" + format_report(prep.report) + "\n```", None

    @friendly
    def start_job(self, file, base, resolution, steps, name, my_jobs):
        """Queue a job -> (job id, my_jobs, job picker update, status text)."""
        path = self._file(file)
        value, kind, cfg = self._base(base)
        try:
            x = float(steps)
        except (TypeError, ValueError):
            raise ValueError("steps must be a whole number") from None
        steps_i = int(x) if x.is_integer() else -1
        if isinstance(steps, bool) or not 1 <= steps_i <= STEPS_MAX:
            raise ValueError(f"steps must be a whole number from 1 to {STEPS_MAX:,}")
        upload_kind(path)
        res = self._resolution(resolution, cfg)
        if name is not None and not isinstance(name, str):
            raise ValueError("the model name must be text")
        job_id = self.jobs.submit(path, value, steps=steps_i, resolution=res, name=name or None)
        mine = [job_id] + [j for j in (my_jobs or []) if isinstance(j, str) and j != job_id][:MY_JOBS_MAX - 1]
        s = self.jobs.status(job_id)
        return job_id, mine, gr.update(choices=self._job_choices(mine), value=job_id), self._text(s)

    @friendly
    def job_status(self, job_id):
        """-> (status markdown, progress bar html, loss rows, latest preview, resume/cancel hints)."""
        if not job_id:
            return "_no job yet: check your data, then press Train_", "", None, None
        s = self.jobs.status(job_id)
        import pandas as pd
        loss = pd.DataFrame(s["loss"], columns=["step", "value", "series"]) if s["loss"] else None
        return self._text(s), self._bar(s), loss, s["preview"]

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
            lines.append(f"step {s['step']:,} / {s['total']:,}, about {_fmt_eta(s.get('eta_s'))} left")
        if s.get("message"):
            lines.append(html.escape(str(s["message"])))
        if s["state"] == "failed" and s.get("error"):
            lines.append("```\n" + str(s["error"])[-1500:] + "\n```")
        if s["state"] == "done" and s.get("model_path"):
            lines.append(f"saved as user model `{Path(s['model_path']).name}`")
        if s.get("resumable"):
            lines.append("press Resume to continue" + (f" from step {s['checkpoint_step']:,}" if s.get("checkpoint_step") else ""))
        return "\n\n".join(lines)

    @staticmethod
    def _bar(s: dict) -> str:
        frac = 1.0 if s["state"] == "done" else (s["step"] / s["total"] if s.get("total") else 0.0)
        return (f'<progress max="1000" value="{int(1000 * min(max(frac, 0.0), 1.0))}" style="width:100%"></progress>'
                f"<div>{100 * frac:.0f}%</div>")


def _default_manager(registry) -> JobManager:
    base = Path(getattr(registry, "weights_dir", "weights")).resolve().parent
    root = os.environ.get("AIGC_JOBS_DIR") or base / "jobs"
    users = os.environ.get("AIGC_USER_MODELS") or base / "user_models"
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
    h = FinetuneHandlers(registry, jobs)
    my_jobs = gr.BrowserState([], storage_key="aigc-finetune-jobs", secret=_browser_secret(jobs))
    gr.Markdown("Upload a **.zip of images** (one folder per class) or a **.txt / .jsonl** text file, "
                "check it, then train. Jobs run one at a time in the background; this page finds yours "
                "again after a reload. Finished models are saved as user models.")
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="dataset (.zip, .txt, .jsonl)", file_types=[".zip", ".txt", ".jsonl"],
                             type="filepath")
            choices = h.base_choices()
            base = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="base model")
            with gr.Row():
                resolution = gr.Dropdown([AUTO, *map(str, IMAGE_RESOLUTIONS)], value=AUTO, label="resolution (images)")
                steps = gr.Number(500, precision=0, minimum=1, maximum=STEPS_MAX, label="steps")
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
            loss = gr.LinePlot(x="step", y="value", color="series", label="loss", height=240)
            preview = gr.Image(label="latest samples", type="filepath", interactive=False)
    timer = gr.Timer(POLL_S)

    check_btn.click(h.check_upload, [upload, base, resolution], [report, data_preview], api_name="check_upload",
                    concurrency_id="finetune-check", concurrency_limit=1)
    train_btn.click(h.start_job, [upload, base, resolution, steps, name, my_jobs], [job_id, my_jobs, pick, status],
                    api_name="start_job")
    pick.input(lambda j: j, [pick], [job_id], api_visibility="private", queue=False)
    job_id.change(h.job_status, [job_id], [status, bar, loss, preview], api_name="job_status", queue=False)
    timer.tick(h.job_status, [job_id], [status, bar, loss, preview], api_visibility="private",
               queue=False, show_progress="hidden")
    cancel_btn.click(h.cancel_job, [job_id], [status], api_name="cancel_job")
    resume_btn.click(h.resume_job, [job_id], [status], api_name="resume_job")
    upload.upload(lambda: ("", None), None, [report, data_preview], api_visibility="private", queue=False)
    # a page (re)load: bring back this browser's jobs
    gr.on([pick.focus], h.restore, [my_jobs, job_id], [pick, job_id], api_name="restore_jobs", api_visibility="private", queue=False)
    ctx = gr.context.Context.root_block
    if ctx is not None:
        ctx.load(h.restore, [my_jobs, job_id], [pick, job_id], api_name="restore_jobs_on_load", api_visibility="private", queue=False)
    return h
