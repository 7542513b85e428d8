import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_TEMP_DIR", str(ROOT / ".gradio" / "tmp"))


KEEP_ENV = {"AIGC_CHROMIUM"}     # where the browser tests find chromium: a test setting, not app state


def _clear_aigc_env(mp: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("AIGC_") and key not in KEEP_ENV:
            mp.delenv(key)


@pytest.fixture(scope="session", autouse=True)
def session_env():
    """Module and session fixtures (studios, servers) start without the caller's AIGC_* settings too."""
    with pytest.MonkeyPatch.context() as mp:
        _clear_aigc_env(mp)
        yield


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch):
    """Each test starts without AIGC_* settings (jobs folder, user models, caches, network override),
    whatever the caller or an earlier test set, and leaves torch's thread count as it found it."""
    _clear_aigc_env(monkeypatch)
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (small ops on a busy 2-core machine are faster so); the
    autouse isolated_env restores the count."""
    torch.set_num_threads(1)
    yield
