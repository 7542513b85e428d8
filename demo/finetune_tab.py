"""The "Fine-tune" tab: upload a dataset, check it, train in the background, watch it, cancel it.

    build_demo(registry, extra_tabs={"Fine-tune": build_finetune_tab})

Named endpoints (gradio_client); `token` is optional everywhere: without it (and without a login)
a client owns its jobs by its session; a script that must reconnect later passes the same token
(32+ hex characters, e.g. secrets.token_hex(16)) each time:
  /check_upload  (file, base, resolution)                        -> report (markdown), data preview
  /start_job     (file, base, resolution, steps, minutes, name, token) -> job id, picker, status, usage
                 (minutes: a time limit beside the steps; 0 or empty: the server's ceiling)
  /job_status    (job_id, token)          -> progress text, bar, loss rows, preview, quality rows
  /cancel_job    (job_id, token)          -> progress text
  /resume_job    (job_id, token)          -> progress text
  /share_model   (job_id, shared, token)  -> what is visible to whom now
  /compare_finetune (job_id, seed, prompt, token) -> base grid, fine-tuned grid, base text,
                                                     fine-tuned text, info (same seeds / prompt)

Every job belongs to whoever started it (demo.common.owner_id: the logged-in user under auth, else
the browser's owner token kept in gr.BrowserState, else the session); the job list comes from the
server for that owner only. A finished job's model is published to the user-models folder, visible
to its owner until shared, and added to the app's registry at once (JobManager.on_publish ->
ModelRegistry.add); a hidden counter of the registry's changes (`FinetuneHandlers.models_changed`)
lets demo.app refresh every model picker on the page. The jobs folder and the user-models folder
default to `jobs/` and `user_models/` beside the weights folder (AIGC_JOBS_DIR / AIGC_USER_MODELS).
"""
from __future__ import annotations

import hashlib
import os
import secrets
import threading
from pathlib import Path

import gradio as gr

from aigc.finetune.jobs import IMAGE_RESOLUTIONS, JobManager
from aigc.limits import FINETUNE_MINUTES_MAX, FINETUNE_STEPS_MAX, SEED_MAX
from demo.finetune_compare import COMPARE_CHARS, COMPARE_N, COMPARE_TEMPERATURE  # noqa: F401 - re-exported
from demo.finetune_handlers import AUTO, SCRATCH, FinetuneHandlers  # noqa: F401 - re-exported
from demo.models_tab import QUIET

POLL_S = 2.0
QUALITY_HELP = (
    "**Quality over time** (measured while training, on fixed seeds; the first point is the starting "
    "model). Images: **KID×1000 (random-conv features)** compares 256 samples with your prepared images "
    "in the features of a fixed, *untrained* conv net: cheap enough for a CPU, good at telling wrong from "
    "right, not comparable with the Inception KID of the model cards; lower is closer. Because it compares "
    "with the training images themselves it also rewards copying, so read it with the **copy rate**: the "
    "share of samples nearer (pixel distance) to one of your images than half that image's distance to "
    "its nearest other image; fresh pictures of the same kind score about 0–3%, a model that memorises "
    "climbs towards 100%. Text: **held-out cross-entropy** on four spans spread over your text (15%, at "
    "most 50,000 characters; a short text's last 10%), which the model does not train on: when it rises "
    "while the loss falls, the model is memorising, and the best point is the model kept. Beside it the "
    "**copy rate**: the share of 12-character spans of generated text found verbatim in your text.")

_managers: dict[Path, JobManager] = {}
_managers_lock = threading.Lock()


def get_manager(root: str | Path, user_models: str | Path | None = None, device: str = "cpu",
                **options) -> JobManager:
    """One JobManager per jobs folder in this process (a second would run a second queue);
    `options` (quotas, retention) apply when it is created."""
    key = Path(root).resolve()
    with _managers_lock:
        if key not in _managers:
            _managers[key] = JobManager(key, user_models, device=device, **options)
        return _managers[key]


def _default_manager(registry, options: dict | None = None) -> JobManager:
    from demo.models import default_user_models
    weights = Path(getattr(registry, "weights_dir", "weights")).resolve()
    root = os.environ.get("AIGC_JOBS_DIR") or weights.parent / "jobs"
    users = getattr(registry, "user_models_dir", None) or default_user_models(weights)
    return get_manager(root, users, device=getattr(registry, "device", "cpu"), **(options or {}))


def _browser_secret(manager: JobManager) -> str:
    """A per-installation secret that signs the browser's stored owner token (kept across restarts)."""
    p = manager.root / ".browser-secret"
    if not p.is_file():
        p.write_text(hashlib.sha256(os.urandom(32)).hexdigest()[:32], encoding="utf-8")
    return p.read_text(encoding="utf-8").strip()


def _ensure_token(token):
    """Page load: the browser's owner token, made on its first visit."""
    return token if isinstance(token, str) and len(token) >= 32 else secrets.token_hex(16)


def _layout_form(h: FinetuneHandlers) -> dict:
    c = {}
    c["upload"] = gr.File(label="dataset (.zip, .txt, .jsonl)", file_types=[".zip", ".txt", ".jsonl"],
                          type="filepath", elem_id="ft-upload")
    choices = h.base_choices()
    c["base"] = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="base model", elem_id="ft-base")
    with gr.Row():
        c["resolution"] = gr.Dropdown([AUTO, *map(str, IMAGE_RESOLUTIONS)], value=AUTO, label="resolution (images)")
        c["steps"] = gr.Number(500, precision=0, label="steps", info=f"1 to {FINETUNE_STEPS_MAX:,}")
        c["minutes"] = gr.Number(0, label="time limit, minutes (0: none)",
                                 info=f"stops at whichever of steps and time comes first (at most {FINETUNE_MINUTES_MAX:,})")
    c["name"] = gr.Textbox("", label="name of the new model", placeholder="my-model", max_length=48,
                           elem_id="ft-name", info="empty: a name from the upload; cleared after each job")
    with gr.Row():
        c["check_btn"] = gr.Button("Check data")
        c["train_btn"] = gr.Button("Train", variant="primary", elem_id="ft-train")
        c["study_btn"] = gr.Button("Data study", elem_id="ft-study")
        c["study_minutes"] = gr.Number(5, label="study budget, minutes", elem_id="ft-study-minutes",
                                       info="what would more data buy? short runs on 25/50/100% of the upload")
    c["study_info"] = gr.Markdown(elem_id="ft-study-info")
    c["study_plot"] = gr.LinePlot(x="examples", y="value", color="series", height=220, elem_id="ft-study-plot",
                                  label="data study: held-out quality against training examples (lower is better)",
                                  x_title="training examples", y_title="metric")
    c["report"] = gr.Markdown()
    c["data_preview"] = gr.Image(label="prepared data (a sample)", type="pil", interactive=False)
    return c


def _layout_job(c: dict) -> None:
    with gr.Row():
        c["pick"] = gr.Dropdown([], label="your jobs", interactive=True, scale=2, elem_id="ft-pick")
        c["job_id"] = gr.Textbox(label="job id", interactive=False, scale=1)
    c["usage"] = gr.Markdown(elem_classes="aigc-small", elem_id="ft-usage")
    c["status"] = gr.Markdown("_no job yet: check your data, then press Train_")
    c["bar"] = gr.HTML()
    with gr.Accordion("details", open=False):
        c["details"] = gr.Markdown(elem_id="ft-details")
    with gr.Row():
        c["cancel_btn"] = gr.Button("Cancel", variant="stop", interactive=False, elem_id="ft-cancel")
        c["resume_btn"] = gr.Button("Resume")
    with gr.Row():
        c["shared"] = gr.Checkbox(False, label="share the finished model with everyone on this server")
        c["share_btn"] = gr.Button("Apply sharing")
    c["share_info"] = gr.Markdown()
    c["sample_text"] = gr.Textbox(label="latest sample text", lines=6, interactive=False, visible=False,
                                  elem_id="ft-sample-text")
    with gr.Row():
        c["smooth"] = gr.Checkbox(False, label="smooth the loss", elem_id="ft-smooth")
        c["log_y"] = gr.Checkbox(False, label="log scale for the loss", elem_id="ft-log")
    # SVG charts drawn by aigc.plots: the legend sits inside the plot; hover a point for its numbers
    c["loss"] = gr.HTML("", label="loss", elem_id="ft-loss")
    c["quality"] = gr.HTML("", label="quality over time (see below)", elem_id="ft-quality")
    c["preview"] = gr.Image(label="latest samples", type="filepath", interactive=False)
    gr.Markdown(QUALITY_HELP, elem_classes="aigc-small")


def _layout_compare(c: dict) -> None:
    with gr.Accordion("Compare the base model and the fine-tuned one", open=False):
        gr.Markdown("Once a job is done: the same seeds through both models (images: the same latents and "
                    "classes; text: the same prompt and seed). A model trained from scratch is shown alone.",
                    elem_classes="aigc-small")
        with gr.Row():
            c["cmp_seed"] = gr.Number(0, label="seed", precision=0, scale=1, info=f"0 to {SEED_MAX:,}")
            c["cmp_prompt"] = gr.Textbox("", label="prompt (text models; empty: start from nothing)", scale=3,
                                         max_length=2000)
            c["cmp_btn"] = gr.Button("Compare", variant="primary", scale=1)
        c["cmp_info"] = gr.Markdown(elem_id="ft-compare-info")
        with gr.Row():
            c["cmp_base"] = gr.Image(label="base model", type="pil", interactive=False, format="png")
            c["cmp_tuned"] = gr.Image(label="fine-tuned model", type="pil", interactive=False, format="png")
        with gr.Row():
            c["cmp_base_text"] = gr.Textbox(label="base model (text)", lines=8, interactive=False)
            c["cmp_tuned_text"] = gr.Textbox(label="fine-tuned model (text)", lines=8, interactive=False)


def _wire(h: FinetuneHandlers, c: dict, token, mine, version) -> None:
    """Events. `token`: the hidden owner-token box, an optional API parameter, filled at page load
    from `mine`, the browser's owner token (gr.BrowserState, part of no API endpoint)."""
    who = [token]
    status_out = [c["status"], c["bar"], c["loss"], c["preview"], c["quality"]]
    c["check_btn"].click(h.check_upload, [c["upload"], c["base"], c["resolution"], token], [c["report"], c["data_preview"]],
                         api_name="check_upload", concurrency_id="finetune-check", concurrency_limit=2)
    c["train_btn"].click(h.start_job, [c["upload"], c["base"], c["resolution"], c["steps"], c["minutes"], c["name"],
                                       *who], [c["job_id"], c["pick"], c["status"], c["usage"]], api_name="start_job"
                         ).success(lambda: "", None, [c["name"]], **QUIET)     # the next job names itself anew
    c["pick"].input(lambda j: j, [c["pick"]], [c["job_id"]], api_visibility="private", queue=False)
    view = [c["smooth"], c["log_y"]]
    c["job_id"].change(h.job_status, [c["job_id"], *who, *view], status_out, api_name="job_status", queue=False)
    c["job_id"].change(h.details, [c["job_id"], token], [c["details"]], api_visibility="private", queue=False)
    c["job_id"].change(h.job_panel, [c["job_id"], token], [c["cancel_btn"], c["sample_text"]], **QUIET)
    gr.on([c["smooth"].change, c["log_y"].change], h.job_status, [c["job_id"], token, *view], status_out, **QUIET)
    seen_jobs = gr.State("")
    gr.Timer(POLL_S).tick(h.tick, [c["job_id"], version, token, seen_jobs, *view],
                          [*status_out, c["details"], c["usage"], version, c["pick"], seen_jobs, c["cancel_btn"],
                           c["sample_text"]], **QUIET)
    c["study_btn"].click(h.start_study, [c["upload"], c["base"], c["study_minutes"], *who], [c["study_info"]],
                         api_name="start_study", concurrency_id="finetune-check", concurrency_limit=1)
    gr.Timer(POLL_S).tick(h.study_view, [token], [c["study_info"], c["study_plot"]], **QUIET)
    version.change(h.base_update, [c["base"]], [c["base"]], api_visibility="private", queue=False,
                   show_progress="hidden")
    c["cmp_btn"].click(h.compare, [c["job_id"], c["cmp_seed"], c["cmp_prompt"], *who],
                       [c["cmp_base"], c["cmp_tuned"], c["cmp_base_text"], c["cmp_tuned_text"], c["cmp_info"]],
                       api_name="compare_finetune", concurrency_id="finetune-compare", concurrency_limit=1)
    c["cancel_btn"].click(h.cancel_job, [c["job_id"], *who], [c["status"]], api_name="cancel_job")
    c["resume_btn"].click(h.resume_job, [c["job_id"], *who], [c["status"]], api_name="resume_job")
    c["share_btn"].click(h.share_model, [c["job_id"], c["shared"], *who], [c["share_info"]], api_name="share_model")
    c["upload"].upload(lambda: ("", None), None, [c["report"], c["data_preview"]], api_visibility="private",
                       queue=False)
    c["upload"].upload(h.suggest_base, [c["upload"], c["base"]], [c["base"]], api_visibility="private", queue=False)
    gr.on([c["pick"].focus], h.restore, [token, c["job_id"]], [c["pick"], c["job_id"], c["usage"]],
          api_visibility="private", queue=False)
    ctx = gr.context.Context.root_block
    if ctx is not None:         # a page (re)load: the owner token, then this owner's jobs
        ctx.load(_ensure_token, [mine], [mine], api_visibility="private", queue=False).then(
            lambda t: t, [mine], [token], api_visibility="private", queue=False).then(
            h.restore, [token, c["job_id"]], [c["pick"], c["job_id"], c["usage"]], api_visibility="private",
            queue=False)


def build_finetune_tab(registry, manager: JobManager | None = None, *, jobs_options: dict | None = None,
                       study_run=None) -> FinetuneHandlers:
    """Lay out the tab (inside the caller's gr.Tab) and wire its events; returns the handlers.
    `jobs_options`: the JobManager's quotas when this call creates it (app.py's flags).
    `study_run`: what the Data study button runs (default aigc.study.study_upload)."""
    jobs = manager or _default_manager(registry, jobs_options)
    if hasattr(registry, "add"):
        jobs.on_publish(registry.add)          # a finished model joins the running app at once
    h = FinetuneHandlers(registry, jobs, study_run)
    mine = gr.BrowserState("", storage_key="aigc-owner-token", secret=_browser_secret(jobs))
    token = gr.Textbox("", visible=False, label="token")
    gr.Markdown("Upload a **.zip of images** (one folder per class) or a **.txt / .jsonl** text file, "
                "check it, then train. Jobs run one at a time in the background and are yours alone; this "
                "page finds them again after a reload. Finished models are saved as user models, visible "
                "to you until you share them.")
    with gr.Row():
        with gr.Column():
            c = _layout_form(h)
        with gr.Column():
            _layout_job(c)
    _layout_compare(c)
    # the registry's version: changes when a model is published; its .change refreshes the pickers
    version = gr.Number(h.models_version(), visible="hidden", precision=0, elem_id="ft-models-version")
    h.models_changed = version
    _wire(h, c, token, mine, version)
    h.owner_token = token          # every tab answers for this browser's owner (demo.app)
    return h
