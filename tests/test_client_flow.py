"""The fine-tune flow through gradio_client, as a script or a second person would drive it: a tiny
upload -> /start_job -> done -> the new model is listed and samples for its owner; another client
neither sees the job nor the model; a second job is cancelled and its worker stops."""
from __future__ import annotations

import re
import time

import pytest

from studio_helpers import launch, make_weights
from test_uploads import good_members, make_zip

pytestmark = pytest.mark.slow          # training runs and worker processes: the full tier (make test)

STATE = re.compile(r"\*\* — (\w+)")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    demo, url = launch(make_weights(root / "weights"))
    yield root, url
    demo.close()


def _state(client, job_id: str) -> str:
    status = client.predict(job_id, api_name="/job_status")[0]
    m = STATE.search(status)
    assert m, status
    return m.group(1)


def _wait(client, job_id: str, states: tuple, timeout: float = 240) -> str:
    t0 = time.time()
    while time.time() - t0 < timeout:
        s = _state(client, job_id)
        if s in states:
            return s
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {s} after {timeout:.0f} s")


def test_happy_path_and_a_second_person(app_url, tmp_path):
    from gradio_client import Client, handle_file

    root, url = app_url
    upload = make_zip(tmp_path / "shapes.zip", good_members(40, classes=("a", "b")))
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    report, _ = a.predict(handle_file(str(upload)), "new:vae", "28", api_name="/check_upload")
    assert "40" in report
    job_id = a.predict(handle_file(str(upload)), "new:vae", "28", 4, 0, "shapes-a", api_name="/start_job")[0]
    assert re.fullmatch(r"[\w-]{32,}", job_id)                 # at least 128 random bits in the id
    with pytest.raises(Exception, match="no such job"):
        b.predict(job_id, api_name="/job_status")               # not B's job: answered like an unknown id
    with pytest.raises(Exception, match="no such job"):
        b.predict(job_id, api_name="/cancel_job")
    assert _wait(a, job_id, ("done", "failed")) == "done"
    status = a.predict(job_id, api_name="/job_status")[0]
    assert "shapes-a" in status
    _, info = a.predict("shapes-a", "any", 3, 2, 1.0, api_name="/sample")[:2]
    assert "shapes-a** · seed 3 · 4 samples" in info
    with pytest.raises(Exception, match="unknown|no such"):
        b.predict("shapes-a", "any", 3, 2, 1.0, api_name="/sample")   # unshared: B cannot use it
    folder = root / "weights" / "_user_models" / "shapes-a"
    assert (folder / "model.safetensors").is_file() and (folder / "owner.json").is_file()


def test_cancel_stops_the_worker(app_url, tmp_path):
    import json
    import os

    from gradio_client import Client, handle_file

    root, url = app_url
    upload = make_zip(tmp_path / "shapes.zip", good_members(40, classes=("a", "b")))
    a = Client(url, verbose=False)
    job_id = a.predict(handle_file(str(upload)), "new:vae", "28", 100000, 5, "long-one", api_name="/start_job")[0]
    _wait(a, job_id, ("running",))
    job_dir = root / "jobs" / job_id
    t0 = time.time()
    while not (job_dir / "worker.json").is_file() and time.time() - t0 < 60:
        time.sleep(0.2)
    pid = json.loads((job_dir / "worker.json").read_text())["pid"]
    a.predict(job_id, api_name="/cancel_job")
    assert _wait(a, job_id, ("cancelled", "failed", "done"), timeout=60) == "cancelled"
    t0 = time.time()
    while time.time() - t0 < 30:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"worker {pid} still alive 30 s after the cancel")
