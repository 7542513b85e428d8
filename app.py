"""The studio in a browser: `python app.py [--host 127.0.0.1] [--port 7860] [--weights weights]`.

Loads every model under the weights folder once, builds the app (demo.build_demo) and serves it.
Importing this file builds nothing and launches nothing; `main()` does both. For a group:
`--auth USER:PASSWORD` (repeatable) or `--auth-file FILE` requires a login; quotas per person
(`--max-jobs-per-owner`, `--max-job-minutes`, `--disk-budget-mb`, `--retention-hours`) bound the
fine-tune jobs. Served beyond this machine without a login, the app warns and takes no fine-tune
jobs unless `--allow-anonymous-jobs`.
"""
from __future__ import annotations

import argparse
import functools
import ipaddress
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
T0 = time.perf_counter()


def configure_gradio() -> None:
    """Gradio's settings, read when the page and its queue are built: so set before that."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Gradio's queue rebuilds a pandas table of every recent event after each one (for its monitoring
    # page) unless told to do it less often: 8% of the server's time under 32 users
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "200")


def configure_runtime(threads: int = 1) -> None:
    """One torch thread per request: on a small shared machine, OpenMP threads that spin while
    another process holds the cores turn a 2 ms decode into 100 ms. Imports torch."""
    configure_gradio()
    import torch

    torch.set_num_threads(max(1, threads))


def create(weights: str | Path = ROOT / "weights", warm: bool = True, background: bool = False,
           threads: int = 1, user_models: str | Path | None = None, jobs_options: dict | None = None, **kwargs):
    """(demo, registry) for a weights folder. `background`: load the weights (and torch) on a
    thread while the page is built and served; requests that need a model wait for them.
    `warm`: then compute missing directions and the nearest-neighbour indexes too.
    `user_models`: the folder fine-tuned models are published to and served from (default
    $AIGC_USER_MODELS, else user_models/ beside the weights folder). `jobs_options`: the fine-tune
    job manager's quotas (aigc.finetune.jobs.JobManager keywords)."""
    configure_gradio()             # before the page's queue exists, also when torch loads on a thread
    from demo import ModelRegistry, build_demo
    from demo.data_tab import build_data_tab
    from demo.finetune_tab import build_finetune_tab
    from demo.models import default_user_models
    from demo.text_tab import build_text_tab

    finetune_tab = functools.partial(build_finetune_tab, jobs_options=jobs_options) if jobs_options else build_finetune_tab
    kwargs.setdefault("extra_tabs", {"Text": build_text_tab, "Fine-tune": finetune_tab, "Data": build_data_tab})
    if not background:
        configure_runtime(threads)
    registry = ModelRegistry(weights, background=background, on_load=lambda: configure_runtime(threads),
                             user_models=user_models or default_user_models(weights))
    demo = build_demo(registry, **kwargs)
    if warm:
        registry.warm()
    return demo, registry


_DEMO = None


def __getattr__(name: str):
    """`app.demo` (the Gradio Spaces convention: a module-level `demo`), built on first access,
    so that importing app.py stays free of side effects."""
    global _DEMO
    if name == "demo":
        if _DEMO is None:
            _DEMO = create(ROOT / "weights")[0]
        return _DEMO
    raise AttributeError(name)


def read_auth(pairs: list[str] | None, auth_file: str | None) -> list[tuple[str, str]]:
    """`USER:PASSWORD` flags and the lines of an auth file -> [(user, password)]; ValueError names
    the bad entry (never its password)."""
    entries = [("--auth", p) for p in pairs or []]
    if auth_file:
        try:
            text = Path(auth_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--auth-file {auth_file}: cannot read it ({type(e).__name__})") from None
        entries += [(f"{auth_file} line {n}", ln.strip()) for n, ln in enumerate(text.splitlines(), 1)
                    if ln.strip() and not ln.lstrip().startswith("#")]
    out = []
    for where, item in entries:
        user, sep, password = item.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"{where}: expected USER:PASSWORD")
        out.append((user.strip(), password))
    return out


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python app.py", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    ap.add_argument("--weights", default=str(ROOT / "weights"), help="folder of saved models")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per request")
    ap.add_argument("--queue-size", type=int, default=64, help="most requests waiting at once")
    ap.add_argument("--no-warm", action="store_true", help="do not precompute directions in the background")
    ap.add_argument("--max-upload", default="200mb", help="largest upload the server accepts (default 200mb)")
    ap.add_argument("--auth", action="append", metavar="USER:PASSWORD", help="require a login (repeatable)")
    ap.add_argument("--auth-file", default=None, help="a file of USER:PASSWORD lines, one login each")
    ap.add_argument("--allow-anonymous-jobs", action="store_true",
                    help="on a non-loopback host without a login: take fine-tune jobs anyway")
    ap.add_argument("--max-jobs-per-owner", type=int, default=2, help="fine-tune jobs waiting or running per person (default 2)")
    ap.add_argument("--max-job-minutes", type=float, default=30.0, help="the longest a fine-tune job trains (default 30)")
    ap.add_argument("--disk-budget-mb", type=float, default=2048.0,
                    help="disk per person for jobs/ and user_models/, in MB (default 2048)")
    ap.add_argument("--retention-hours", type=float, default=24.0,
                    help="uploads of failed and cancelled jobs are removed after this long (default 24)")
    return ap


def main(argv=None) -> int:
    ap = _parser()
    a = ap.parse_args(argv)
    try:
        auth = read_auth(a.auth, a.auth_file)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.max_jobs_per_owner < 1 or not a.max_job_minutes > 0 or not a.disk_budget_mb > 0 or a.retention_hours < 0:
        print("error: the quotas must be positive (--max-jobs-per-owner at least 1)", file=sys.stderr)
        return 2
    anonymous_jobs = bool(auth) or is_loopback(a.host) or a.allow_anonymous_jobs
    if not auth and not is_loopback(a.host):
        print(f"warning: serving on {a.host} without a login (--auth or --auth-file): anyone who can reach it may "
              "use it" + ("" if a.allow_anonymous_jobs else "; fine-tune jobs are refused (--allow-anonymous-jobs)"),
              file=sys.stderr, flush=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aigc").setLevel(logging.INFO)
    from demo import CSS

    jobs_options = {"max_jobs_per_owner": a.max_jobs_per_owner, "max_job_minutes": a.max_job_minutes,
                    "disk_budget_mb": a.disk_budget_mb, "retention_hours": a.retention_hours,
                    "anonymous_jobs": anonymous_jobs}
    # torch and the weights load on a thread while gradio builds and serves the page
    demo, registry = create(a.weights, warm=not a.no_warm, background=True, threads=a.threads,
                            queue_size=a.queue_size, jobs_options=jobs_options)
    demo.launch(server_name=a.host, server_port=a.port, css=CSS, show_error=True, prevent_thread_lock=True,
                max_file_size=a.max_upload,   # the server refuses bigger uploads before they reach disk
                auth=auth or None, footer_links=["api", "settings"])
    print(f"serving at http://{a.host}:{a.port} ({time.perf_counter() - T0:.1f} s after start)", flush=True)
    try:                                # Ctrl-C while the weights still load ends as quietly as later
        registry.wait(None)
        print(f"loaded {len(registry.image_models())} image models from {a.weights} "
              f"({time.perf_counter() - T0:.1f} s after start)", flush=True)
        demo.block_thread()
    except KeyboardInterrupt:
        # let the loading thread leave torch's C++ code first: exiting under it aborts the process
        registry.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
