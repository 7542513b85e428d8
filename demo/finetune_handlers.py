"""The Fine-tune tab's handlers. Every job action is the asker's own: the owner comes from
demo.common.owner_id (the logged-in user, else an owner token -- the browser's, or one a script
passes -- else the session), and another owner's job answers like an unknown one."""
from __future__ import annotations

import html
import os
from pathlib import Path

import gradio as gr

from aigc.data.uploads import UploadError, format_report, prepare_image_zip, prepare_text, upload_kind
from aigc.finetune.jobs import IMAGE_RESOLUTIONS, JobError, JobManager
from aigc.finetune.run import (FINETUNE_KINDS, Base, base_tokenizer, check_modality, image_fit_problem,
                               image_resolution, resolve_base, text_block_size)
from aigc.finetune.textrecipe import heldout_split
from aigc.limits import FINETUNE_MINUTES_MAX, FINETUNE_STEPS_MAX
from demo.common import friendly, owner_id
from demo.finetune_compare import compare_job
from demo.finetune_study import Studies
from demo.finetune_view import (can_cancel, job_label, loss_chart, progress_bar, quality_chart, quality_text,
                                sample_caption, sample_text, status_text)
from demo.upload_groups import upload_groups

AUTO = "auto"
SCRATCH = "new:"                 # dropdown values for "train a kind from scratch"


class FinetuneHandlers:
    """The tab's handlers. Who asks comes in as arguments: an owner token (a script's own, or the
    browser's, copied from gr.BrowserState into a hidden box at page load) and the gr.Request."""

    def __init__(self, registry, manager: JobManager, study_run=None):
        self.registry = registry
        self.jobs = manager
        self.models_changed = None          # the hidden registry-version component (set by the layout)
        self.studies = Studies(manager.root, study_run)

    @staticmethod
    def owner(token="", request: gr.Request | None = None) -> str:
        return owner_id(token.strip() if isinstance(token, str) else None, request)

    # -- choices ----------------------------------------------------------------------------------
    def base_choices(self) -> list[tuple[str, str]]:
        from aigc.kinds import KINDS
        out = [(f"{name} (fine-tune, {e.kind})", name) for name, e in self.registry.entries.items()
               if getattr(e, "error", None) is None and e.kind in FINETUNE_KINDS]
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
            return getattr(self.registry.entries.get(v), "modality", None)

        target = "image" if want == "images" else "text"
        if current in values and modality(current) == target:
            return gr.update()
        prefer = [SCRATCH + "vae"] if target == "image" else ["char-shakespeare-small", "char-shakespeare"]
        pick = next((v for v in prefer if v in values), None) or next((v for v in values if modality(v) == target), None)
        return gr.update(value=pick) if pick else gr.update()

    def _base(self, base) -> tuple[str, Base]:
        """The picker's value -> (value for the job: a kind or a model path, the resolved base)."""
        from aigc.kinds import KINDS
        if not isinstance(base, str) or not base:
            raise ValueError("choose a base model (or a kind to train from scratch)")
        if base.startswith(SCRATCH) and base[len(SCRATCH):] in KINDS:
            k = base[len(SCRATCH):]
            return k, resolve_base(k)
        e = self.registry.entries.get(base)
        if e is None or getattr(e, "error", None) or e.kind not in KINDS:
            raise ValueError(f"unknown base model {base[:60]!r}; pick one from the list")
        value = str(Path(e.path).resolve())
        b = resolve_base(value)
        b.name = base
        return value, b

    @staticmethod
    def _file(file) -> Path:
        if file is None:
            raise ValueError("upload a .zip of images (one folder per class) or a .txt / .jsonl text file")
        p = Path(file if isinstance(file, (str, os.PathLike)) else getattr(file, "name", file))
        if not p.is_file():
            raise ValueError("the upload is gone; upload it again")
        return p

    @staticmethod
    def _resolution(resolution) -> int | None:
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
    def check_upload(self, file, base, resolution, token="", request: gr.Request = None):
        """Check and prepare the upload as the job would (nothing is trained) -> report, preview.
        Pictures without class folders are grouped by a VaDE base the asker may use (the report
        then shows the groups, a few pictures of each and the misfits)."""
        path = self._file(file)
        _, b = self._base(base)
        upload = upload_kind(path)
        try:
            check_modality(b, upload)
        except ValueError as e:
            raise UploadError(str(e).replace("the data must be", "upload")) from None
        if upload == "images":
            prep = prepare_image_zip(path, resolution=image_resolution(b, self._resolution(resolution)))
            groups, rows = upload_groups(self.registry, prep.data, self.owner(token, request),
                                         (b.config or {}).get("dataset"))
            report = {**prep.report, "groups": groups} if groups else prep.report
            text = format_report(report)
            problem = image_fit_problem(b, prep.data)
            if problem:
                text += f"\n\n**Will not fit {b.name}**: {problem}"
            return "```\n" + text + "\n```" + (f"\n\n{rows}" if rows else ""), prep.preview
        block = text_block_size(b)
        prep = prepare_text(path, block_size=block, tokenizer=base_tokenizer(b))   # says what it adds
        note = heldout_split(prep.text, block)[2]          # what the run will hold out, said before it runs
        return "```\n" + format_report(prep.report) + f"\n  {note}" + "\n```", None

    @friendly
    def start_job(self, file, base, resolution, steps, minutes, name, token="", request: gr.Request = None):
        """Queue a job owned by the asker -> (job id, job picker update, status text, usage). The job
        stops at `steps` or after `minutes` of training, whichever comes first (0 / empty: the
        server's ceiling)."""
        path = self._file(file)
        value, b = self._base(base)
        try:
            x = float(steps)
        except (TypeError, ValueError):
            raise ValueError("steps must be a whole number") from None
        steps_i = int(x) if x.is_integer() else -1
        if isinstance(steps, bool) or not 1 <= steps_i <= FINETUNE_STEPS_MAX:
            raise ValueError(f"steps must be a whole number from 1 to {FINETUNE_STEPS_MAX:,}")
        limit = self._minutes(minutes)
        check_modality(b, upload_kind(path))
        res = self._resolution(resolution)
        if name is not None and not isinstance(name, str):
            raise ValueError("the model name must be text")
        who = self.owner(token, request)
        job_id = self.jobs.submit(path, value, steps=steps_i, resolution=res, name=name or None,
                                  max_minutes=limit, owner=who)
        s = self.jobs.status(job_id, owner=who)
        return job_id, gr.update(choices=self._job_choices(who), value=job_id), self._text(s), self._usage(who)

    @staticmethod
    def _minutes(minutes) -> float | None:
        """The time-limit box -> minutes, or None for no limit of one's own (0 or empty)."""
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
    def job_status(self, job_id, token="", smooth=False, log_y=False, request: gr.Request = None):
        """-> (status markdown, progress bar html, loss chart html, latest preview, quality chart html);
        the charts are SVG ('' before the first point). `smooth`: a moving average over the faint raw
        loss; `log_y`: the loss on a log scale (series that reach 0 left out)."""
        if not job_id:
            return "_no job yet: check your data, then press Train_", "", "", None, ""
        s = self.jobs.status(job_id, owner=self.owner(token, request))
        if s["state"] == "done" and s.get("model_path"):
            self._publish(s["model_path"])
        return (self._text(s), self._bar(s), loss_chart(s["loss"], bool(smooth), bool(log_y)), s["preview"],
                quality_chart(s.get("quality")))

    def job_panel(self, job_id, token="", request: gr.Request = None):
        """-> (Cancel button update: usable only while the job can be cancelled, the latest sample
        text of a text job)."""
        try:
            s = self.jobs.status(job_id, owner=self.owner(token, request)) if job_id else None
        except JobError:
            s = None
        text = sample_text(self.jobs.root / job_id / "run") if s else ""
        caption = sample_caption(self.jobs.root / job_id / "run") if text else "latest sample text"
        return (gr.update(interactive=can_cancel(s)),
                gr.update(value=text, visible=bool(text), label=caption))

    def details(self, job_id, token="", request: gr.Request = None) -> str:
        """The 'details' accordion: a failed job's full error and the preparation report."""
        try:
            s = self.jobs.status(job_id, owner=self.owner(token, request)) if job_id else None
        except JobError:
            s = None
        if not s:
            return ""
        parts = []
        if s.get("error"):
            parts.append("```\n" + str(s["error"])[-3000:] + "\n```")
        if s.get("report"):
            parts.append("```\n" + format_report(s["report"]) + "\n```")
        return "\n\n".join(parts) or "_nothing more to show_"

    def models_version(self) -> int:
        return int(getattr(self.registry, "version", 0))

    def tick(self, job_id, seen_version, token="", seen_jobs="", smooth=False, log_y=False,
             request: gr.Request = None):
        """The page's poll: the job's status, its details, the owner's usage, the registry's
        version when it changed (the hidden counter whose .change refreshes the model pickers),
        the job list when a job's state changed since `seen_jobs`, Cancel and the sample text."""
        try:
            out = self.job_status(job_id, token, smooth, log_y, request)
        except gr.Error as e:
            out = (html.escape(str(e)), "", "", None, "")
        v = self.models_version()
        who = self.owner(token, request)
        choices = self._job_choices(who)
        seen = "\n".join(c[0] for c in choices)
        picker = gr.update(choices=choices) if seen != seen_jobs else gr.skip()
        return (*out, self.details(job_id, token, request), self._usage(who),
                v if v != seen_version else gr.skip(), picker, seen, *self.job_panel(job_id, token, request))

    @friendly
    def start_study(self, file, base, minutes, token="", request: gr.Request = None) -> str:
        """"What would more data buy?": short runs on 25/50/100% of the upload in the background."""
        path = self._file(file)
        value, _ = self._base(base)
        who = self.owner(token, request)
        if not self.jobs.anonymous_jobs and not who.startswith("user:"):
            raise ValueError("this server runs data studies for logged-in users only")
        m = self._minutes(minutes)
        if m is None:
            raise ValueError("the data study needs a time budget in minutes (more than 0)")
        cap = self.jobs.max_job_minutes
        if cap and m > cap:
            raise ValueError(f"the data study's time budget is at most {cap:g} minutes on this server")
        self.studies.start(who, path, value, m)
        return "data study started: it trains in the background; the answer appears here"

    def study_view(self, token="", request: gr.Request = None):
        """The page's poll of the owner's data study -> (text, plot rows)."""
        import pandas as pd
        text, rows, _ = self.studies.view(self.owner(token, request))
        return text, (pd.DataFrame(rows, columns=["examples", "value", "series"]) if rows else None)

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

    @friendly
    def compare(self, job_id, seed, prompt, token="", request: gr.Request = None):
        """Base vs fine-tuned on the same seeds (demo.finetune_compare.compare_job)."""
        if not job_id:
            raise ValueError("no job selected")
        s = self.jobs.status(job_id, owner=self.owner(token, request))
        if s["state"] != "done" or not s.get("model_path"):
            raise ValueError(f"job {job_id} is {s['state']}; compare once it is done")
        name = self._publish(s["model_path"]) or Path(s["model_path"]).name
        return compare_job(self.registry, s, seed, prompt, name)

    @friendly
    def cancel_job(self, job_id, token="", request: gr.Request = None):
        if not job_id:
            raise ValueError("no job selected")
        return self._text(self.jobs.cancel(job_id, owner=self.owner(token, request)))

    @friendly
    def resume_job(self, job_id, token="", request: gr.Request = None):
        if not job_id:
            raise ValueError("no job selected")
        return self._text(self.jobs.resume(job_id, owner=self.owner(token, request)))

    @friendly
    def share_model(self, job_id, shared, token="", request: gr.Request = None):
        """Share a done job's model with everyone on this server (or stop sharing it)."""
        if not job_id:
            raise ValueError("no job selected")
        who = self.owner(token, request)
        s = self.jobs.status(job_id, owner=who)
        if s["state"] != "done" or not s.get("model_path"):
            raise ValueError(f"job {job_id} is {s['state']}; share its model once it is done")
        self.jobs.set_shared(Path(s["model_path"]).name, who, bool(shared))
        if hasattr(self.registry, "refresh"):
            self.registry.refresh()
        name = Path(s["model_path"]).name
        return f"`{name}` is " + ("shared with everyone on this server" if shared else "visible to you only")

    def restore(self, token, current, request: gr.Request = None):
        """Page load: the asker's own jobs (from the server) into the picker, newest first."""
        who = self.owner(token, request)
        choices = self._job_choices(who)
        ids = [c[1] for c in choices]
        value = current if current in ids else (ids[0] if ids else None)
        return gr.update(choices=choices, value=value), value, self._usage(who)

    # -- shaping ----------------------------------------------------------------------------------
    def _job_choices(self, owner: str, most: int = 50) -> list[tuple[str, str]]:
        return [(job_label(j), j["id"]) for j in self.jobs.jobs(owner)[:most]]

    def _usage(self, owner: str) -> str:
        u = self.jobs.usage(owner)
        disk = f"{u['disk_bytes'] / 2 ** 20:.1f} MB"
        if u["disk_budget_bytes"]:
            disk += f" of {u['disk_budget_bytes'] / 2 ** 20:.0f} MB"
        limit = f"; each job stops by {u['max_job_minutes']:g} minutes" if u.get("max_job_minutes") else ""
        return (f"your usage: {u['active']} of {u['max_active']} jobs waiting or running, {u['jobs']} jobs in all, "
                f"{disk} on disk{limit}")

    _text = staticmethod(status_text)
    _quality_text = staticmethod(quality_text)
    _bar = staticmethod(progress_bar)
