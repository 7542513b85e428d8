"""The studio in a browser: `python app.py [--host 127.0.0.1] [--port 7860] [--weights weights]`.

Loads every model under the weights folder once, builds the app (demo.build_demo) and serves it.
Importing this file builds nothing and launches nothing; `main()` does both.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
T0 = time.perf_counter()


def configure_runtime(threads: int = 1) -> None:
    """One torch thread per request: on a small shared machine, OpenMP threads that spin while
    another process holds the cores turn a 2 ms decode into 100 ms. Imports torch."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import torch

    torch.set_num_threads(max(1, threads))


def create(weights: str | Path = ROOT / "weights", warm: bool = True, background: bool = False,
           threads: int = 1, user_models: str | Path | None = None, **kwargs):
    """(demo, registry) for a weights folder. `background`: load the weights (and torch) on a
    thread while the page is built and served; requests that need a model wait for them.
    `warm`: then compute missing directions and the nearest-neighbour indexes too.
    `user_models`: the folder fine-tuned models are published to and served from (default
    $AIGC_USER_MODELS, else user_models/ beside the weights folder)."""
    from demo import ModelRegistry, build_demo
    from demo.finetune_tab import build_finetune_tab
    from demo.models import default_user_models
    from demo.text_tab import build_text_tab

    kwargs.setdefault("extra_tabs", {"Text": build_text_tab, "Fine-tune": build_finetune_tab})
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python app.py", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    ap.add_argument("--weights", default=str(ROOT / "weights"), help="folder of saved models")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per request")
    ap.add_argument("--queue-size", type=int, default=64, help="most requests waiting at once")
    ap.add_argument("--no-warm", action="store_true", help="do not precompute directions in the background")
    ap.add_argument("--max-upload", default="200mb", help="largest upload the server accepts (default 200mb)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aigc").setLevel(logging.INFO)
    from demo import CSS

    # torch and the weights load on a thread while gradio builds and serves the page
    demo, registry = create(a.weights, warm=not a.no_warm, background=True, threads=a.threads,
                            queue_size=a.queue_size)
    demo.launch(server_name=a.host, server_port=a.port, css=CSS, show_error=True, prevent_thread_lock=True,
                max_file_size=a.max_upload,   # the server refuses bigger uploads before they reach disk
                footer_links=["api", "settings"])
    print(f"serving at http://{a.host}:{a.port} ({time.perf_counter() - T0:.1f} s after start)", flush=True)
    registry.wait(None)
    print(f"loaded {len(registry.image_models())} image models from {a.weights} "
          f"({time.perf_counter() - T0:.1f} s after start)", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
