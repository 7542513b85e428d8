"""The Fine-tune tab's bookkeeping in a real browser (Debian chromium driven by Playwright): the job
list follows the jobs, the name field starts empty for the next job, Cancel only while a job can be
cancelled, a text job's sample text, readable curves (smoothing, log scale, whole legends), and the
"Data study" button's answer. The worker is a stand-in that sleeps: nothing trains."""
import json
import types

import pytest

from test_browser import open_page, pytestmark  # noqa: F401 - the same skips and filters


def fake_study(data_path, base, minutes, on_progress=None, out=None):
    on_progress({"phase": "running", "text": "training on 25%"})
    return {"fractions": [0.25, 0.5, 1.0], "examples": [10, 20, 40], "values": [0.3, 0.2, 0.14],
            "metric": "kid_randconv", "exponent": 0.55, "exponent_err": 0.05,
            "fit": {"a": 1.04, "b": 0.55, "c": 0.0}, "prediction_2x_data": 0.095, "measured_2x_steps": 0.13,
            "recommendation": "collect more images: doubling them is predicted to lower kid_randconv by ~32%",
            "duplicates_removed": 2, "notes": []}


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    import gradio as gr

    from aigc.finetune.jobs import JobManager
    from demo.finetune_tab import build_finetune_tab
    from studio_helpers import free_port

    root = tmp_path_factory.mktemp("ft-browser")
    sleepy = root / "sleepy-python"
    sleepy.write_text("#!/bin/sh\nexec sleep 60\n")
    sleepy.chmod(0o755)
    m = JobManager(root / "jobs", root / "user_models", python=str(sleepy), kill_wait_s=2.0, poll_s=0.2)
    reg = types.SimpleNamespace(entries={}, weights_dir=root / "weights", device="cpu")
    with gr.Blocks() as demo:
        with gr.Tab("Fine-tune"):
            build_finetune_tab(reg, manager=m, study_run=fake_study)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield m, f"http://127.0.0.1:{port}/", root
    demo.close()
    m.close(stop_worker=True)


@pytest.fixture(scope="module")
def page(tab):
    yield from open_page(tab[1], "#ft-train")


def text_of(page, sel) -> str:
    return page.evaluate("s => { const e = document.querySelector(s); return e ? e.innerText : ''; }", sel)


def test_job_list_name_and_cancel_follow_the_job(page, tab, tmp_path):
    m, _, _ = tab
    assert page.locator("#ft-cancel").is_disabled()                  # no job: nothing to cancel
    data = tmp_path / "story.txt"
    data.write_text("It was a quiet night and the cat sat by the window. " * 40)
    page.locator("#ft-upload input[type=file]").set_input_files(str(data))
    page.wait_for_function("document.querySelector('#ft-base input').value.startsWith('new char-lm')")
    page.fill("#ft-name textarea, #ft-name input", "first-job")
    page.click("#ft-train")
    page.wait_for_function("document.querySelector('#ft-name textarea, #ft-name input').value === ''")
    jid = m.jobs()[0]["id"]
    page.wait_for_function("!document.querySelector('#ft-cancel').disabled", timeout=15_000)
    page.click("#ft-cancel")
    m.wait(jid, timeout=60)
    page.wait_for_function("document.querySelector('#ft-cancel').disabled", timeout=15_000)
    page.wait_for_function(                    # the list says what the job is now, without a reload
        "([id]) => document.querySelector('#ft-pick input').value.includes('cancelled (' + id)", arg=[jid],
        timeout=15_000)


def test_sample_text_and_readable_curves(page, tab):
    m, _, _ = tab
    jid = m.jobs()[0]["id"]
    run = m.root / jid / "run"
    (run / "samples").mkdir(parents=True, exist_ok=True)
    (run / "samples" / "step-0000040.txt").write_text("the cat sat by the window and watched the moon")
    with open(run / "stats.jsonl", "w") as f:
        for step in range(0, 50, 10):
            f.write(json.dumps({"step": step, "loss": 3.0 - 0.05 * step + 0.3 * (step % 20 == 0),
                                "nats_per_char": 3.1 - 0.01 * step, "time_s": step}) + "\n")
    page.wait_for_function("document.querySelector('#ft-sample-text textarea') && document.querySelector("
                           "'#ft-sample-text textarea').value.includes('watched the moon')", timeout=15_000)
    assert "step 40" in text_of(page, "#ft-sample-text")
    page.wait_for_selector("#ft-quality svg .legend-box")
    legend = page.evaluate("() => [...document.querySelectorAll('#ft-quality svg .legend text')].map(t => t.textContent)")
    assert legend and not any("…" in t for t in legend), legend           # whole legend labels
    page.wait_for_selector("#ft-loss svg .legend-box")
    for plot in ("#ft-loss", "#ft-quality"):                              # the legend inside the axes
        axes, box = page.evaluate("""s => ['.plot-area', '.legend-box'].map(c => {
            const r = document.querySelector(s + ' svg ' + c).getBoundingClientRect();
            return [r.left, r.top, r.right, r.bottom]; })""", plot)
        assert box[2] > box[0] and box[3] > box[1]
        assert axes[0] <= box[0] and axes[1] <= box[1] and box[2] <= axes[2] and box[3] <= axes[3], (plot, axes, box)
    ticks = "() => [...document.querySelectorAll('#ft-loss svg .tick-y')].map(t => t.textContent).join(' ')"
    linear = page.evaluate(ticks)
    page.click("#ft-log")                                             # the toggles re-draw the chart
    page.wait_for_function("""() => (document.querySelector('#ft-loss svg .subtitle') || {}).textContent
                                     === 'log scale'""", timeout=15_000)
    assert page.evaluate(ticks) != linear and "10" in page.evaluate(ticks).split()
    page.click("#ft-smooth")
    page.wait_for_function("""() => [...document.querySelectorAll('#ft-loss svg .legend text')]
                                     .some(t => t.textContent.includes('(smoothed)'))""", timeout=15_000)
    assert page.locator("#ft-loss svg polyline").count() == 2                # the faint raw curve stays
    page.click("#ft-log")
    page.wait_for_function("() => !document.querySelector('#ft-loss svg .subtitle').textContent.includes('log')",
                           timeout=15_000)
    assert page.evaluate(ticks) == linear


def test_data_study_shows_its_plot_and_advice(page, tmp_path):
    data = tmp_path / "cats.txt"
    data.write_text("a cat " * 200)
    clear = page.locator("#ft-upload button[aria-label=Clear]")
    if clear.count():
        clear.click()
    page.locator("#ft-upload input[type=file]").set_input_files(str(data))
    page.fill("#ft-study-minutes input", "2")
    page.click("#ft-study")
    page.wait_for_function("document.querySelector('#ft-study-info').innerText.includes('collect more images')",
                           timeout=20_000)
    assert "Power-law exponent 0.55" in text_of(page, "#ft-study-info")
    page.wait_for_selector("#ft-study-plot svg")
    page.fill("#ft-study-minutes input", "-3")
    page.click("#ft-study")
    page.wait_for_selector("text=the time limit must be from 0")
