"""The studio's handlers, then every endpoint through gradio_client against a launched app:
results, bad input (a clear error, and the server keeps serving) and separate sessions."""
import json
import os
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from studio_helpers import launch, make_weights, save_user_model

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_weights(tmp_path_factory.mktemp("ui-weights"))


@pytest.fixture(scope="module")
def studio(weights, tmp_path_factory):
    import app
    from demo.image_handlers import Studio
    from demo.models import ModelRegistry

    app.configure_runtime()
    return Studio(ModelRegistry(weights), tmp_path_factory.mktemp("ui-tmp"))


@pytest.fixture(scope="module")
def server(weights):
    demo, url = launch(weights)
    yield url
    demo.close()


def client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def picture_file(tmp_path, name="digit.png"):
    a = np.full((120, 100), 255, np.uint8)
    a[20:100, 45:58] = 0
    p = tmp_path / name
    Image.fromarray(a).save(p)
    return p


def pixels(path_or_image):
    im = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    return np.asarray(im.convert("L"))


# =================================================================== handlers
def test_registry_lists_models_and_skips_support_folders(studio):
    reg = studio.reg
    assert reg.image_models() == ["dcgan-mnist", "seed-gan-mnist", "vae-mnist"]
    assert "_eval" not in reg.entries and reg.entries["broken"].error
    with pytest.raises(ValueError, match="could not be loaded"):
        reg.get("broken")
    with pytest.raises(ValueError, match="unknown model 'nope'; available image models: dcgan-mnist"):
        reg.get("nope")


def test_sample_open_edit_reset(studio):
    from demo.image_handlers import N_DIM, N_DIR, new_state

    grid, info, st = studio.sample("dcgan-mnist", "7", 11, 2, 0.7, new_state())
    assert "seed 11 · 4 samples · class 7" in info and grid.width == grid.height
    rec = st["samples"][2]
    assert rec["model"] == "dcgan-mnist" and rec["seed"] == 11 and rec["index"] == 2 and rec["label"] == 7
    w = grid.width
    assert studio.open_tile(st, 0.9 * w, 0.1 * w)[0] == 1 and studio.open_tile(st, 0.1 * w, 0.9 * w)[0] == 2
    with pytest.raises(Exception, match="click on one of the samples"):
        studio.open_tile(st, 2 * w, 0)
    out = studio.open_sample(st, 2)
    assert len(out) == 2 + N_DIR + N_DIM + 3
    img0, st = out[0], out[-1]
    assert img0.size == (280, 280) and "class 7" in out[1]
    assert out[2]["visible"] and out[2]["label"].startswith("PC1")
    assert out[2 + N_DIR]["visible"] is False                    # GANs: no per-dimension sliders
    img1, st1 = studio.edit(st, {"dir1": 2.5, "dir2": -1.0})
    assert not np.array_equal(pixels(img0), pixels(img1))
    assert st1["current"]["offsets"]["directions"] == {"PC1": 2.5, "PC2": -1.0}
    img2, _ = studio.edit(st1, {"dir1": 0.0, "dir2": 0.0})
    assert np.array_equal(pixels(img0), pixels(img2))           # back to the start
    reset = studio.reset(st1)
    assert np.array_equal(pixels(reset[0]), pixels(img0)) and all(u["value"] == 0.0 for u in reset[1:-1])


def test_vae_dimension_sliders_ordered_by_kl(studio):
    from demo.image_handlers import N_DIR, new_state

    _, _, st = studio.sample("vae-mnist", "any", 1, 1, 1.0, new_state())
    out = studio.open_sample(st, 0)
    d = studio.reg.get("vae-mnist").directions()
    shown = [u["label"] for u in out[2 + N_DIR: 2 + N_DIR + 4]]
    assert shown == [f"z{k} · KL {float(d.kl[k]):.2f}" for k in d.dim_order[:4]]
    assert out[2 + N_DIR + 4]["visible"] is False and out[-3]["visible"] is True
    st = out[-1]
    img, st2 = studio.edit(st, {"dim1": 1.5})
    assert st2["current"]["offsets"]["dims"] == {str(d.dim_order[0]): 1.5}


@pytest.mark.parametrize("call,msg", [
    (lambda s, st: s.sample("nope", "any", 1, 2, 1.0, st), "unknown model"),
    (lambda s, st: s.sample("vae-mnist", "3", 1, 2, 1.0, st), "not class-conditional"),
    (lambda s, st: s.sample("dcgan-mnist", "eleven", 1, 2, 1.0, st), "unknown class"),
    (lambda s, st: s.sample("vae-mnist", "any", -1, 2, 1.0, st), "seed must be between"),
    (lambda s, st: s.sample("vae-mnist", "any", 1, 99, 1.0, st), "grid size must be between"),
    (lambda s, st: s.sample("vae-mnist", "any", 1, 2, float("nan"), st), "finite"),
    (lambda s, st: s.edit(st, {"dir1": 0.5}), "open a sample"),
    (lambda s, st: s.open_sample(st, 0), "sample a grid first"),
    (lambda s, st: s.nearest(st), "open a sample"),
    (lambda s, st: s.interpolate("A and B", "vae-mnist", "any", 1, 2, 5, "slerp", 1.0, st), "pick A and B"),
    (lambda s, st: s.interpolate("two seeds", "vae-mnist", "any", 1, 2, 500, "slerp", 1.0, st), "frames"),
    (lambda s, st: s.encode(None, "vae-mnist", "any", st), "upload a picture"),
    (lambda s, st: s.encode_drawing(None, "vae-mnist", "any", st), "draw something"),
    (lambda s, st: s.restore(None, st), "drop a recipe"),
    (lambda s, st: s.recipe_files(st), "open a sample"),
])
def test_bad_input_gives_a_clear_error(studio, call, msg):
    from demo.image_handlers import new_state

    with pytest.raises(gr.Error, match=msg):
        call(studio, new_state())


def test_edit_rejects_out_of_range_and_nan(studio):
    from demo.image_handlers import new_state

    _, _, st = studio.sample("seed-gan-mnist", "any", 2, 1, 1.0, new_state())
    st = studio.open_sample(st, 0)[-1]
    for bad in (9.0, float("nan"), float("inf"), "x", None, True):
        with pytest.raises(gr.Error):
            studio.edit(st, {"dir1": bad})
    for bad in ({"dir17": 1.0}, {"dim0": 1.0}, {"zoom": 1}, [1.0], "not json", '{"dir1": 4}'):
        with pytest.raises(gr.Error):
            studio.edit(st, bad)
    assert studio.edit(st, '{"dir1": 0.5}')[1]["current"]["offsets"]["directions"] == {"PC1": 0.5}


def test_uploads_bad_and_good(studio, tmp_path):
    from demo.image_handlers import new_state

    bad = {"notes.txt": b"not an image", "trunc.png": picture_file(tmp_path).read_bytes()[:60],
           "one.png": None}
    Image.new("L", (1, 1)).save(tmp_path / "one.png")
    for name, data in bad.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(gr.Error):
            studio.encode(str(tmp_path / name), "vae-mnist", "any", new_state())
    out = studio.encode(str(picture_file(tmp_path)), "vae-mnist", "any", new_state())
    prepared, recon, notes = out[:3]
    assert prepared.size == (140, 140) and "error" in notes and "inverted" in notes
    assert out[3].size == (280, 280) and out[-1]["base"]["source"] == "encode"
    g = studio.encode(str(picture_file(tmp_path)), "seed-gan-mnist", "any", new_state())
    assert "projection" in g[2] and g[-1]["base"]["source"] == "project"
    sketch = np.zeros((280, 280, 4), np.uint8)
    sketch[40:240, 130:150] = (0, 0, 0, 255)
    d = studio.encode_drawing({"composite": sketch, "background": None, "layers": []}, "vae-mnist", "any", new_state())
    assert d[0].size == (140, 140)


def test_recipe_round_trip_restores_exact_image(studio, tmp_path):
    from demo.image_handlers import new_state

    _, _, st = studio.sample("vae-mnist", "any", 5, 2, 0.9, new_state())
    st = studio.open_sample(st, 3)[-1]
    img, st = studio.edit(st, {"dir2": 1.25, "dim2": -0.5})
    j, p = studio.recipe_files(st)
    for f in (j, p):
        out = studio.restore(f, new_state())
        assert np.array_equal(pixels(out[0]), pixels(img))
        assert out[3]["value"] == 1.25                           # sliders restored too
        st2 = out[-1]
        again, _ = studio.edit(st2, {"dir2": 1.25, "dim2": -0.5})
        assert np.array_equal(pixels(again), pixels(img))
    rec = json.loads(Path(j).read_text())
    for change, msg in [({"model": "gone-model"}, "does not have"), ({"z": rec["z"][:-1]}, "different lengths"), ({"z": rec["z"][:-1], "latent": None}, "needs"),
                        ({"z": rec["z"] + [0.0], "latent": None}, "needs"), ({"label": 3}, "not class-conditional")]:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**rec, **change}))
        with pytest.raises(gr.Error, match=msg):
            studio.restore(str(bad), new_state())
    moved = tmp_path / "moved.json"                             # directions changed since the edit
    moved.write_text(json.dumps({**rec, "directions": "000000000000"}))
    out = studio.restore(str(moved), new_state())
    assert np.array_equal(pixels(out[0]), pixels(img)) and "start at 0" in out[1] and out[3]["value"] == 0.0
    assert np.array_equal(pixels(studio.edit(out[-1], {})[0]), pixels(img))
    other = tmp_path / "hash.json"
    other.write_text(json.dumps({**rec, "weights_hash": "ffffffffffffffff"}))
    assert "may differ" in studio.restore(str(other), new_state())[1]


def test_interpolate_nearest_and_directions(studio):
    from demo.image_handlers import N_DIR, new_state

    items, gif, gif2, info, st = studio.interpolate("two seeds", "dcgan-mnist", "any", 1, 2, 6, "slerp", 1.0,
                                                    new_state())
    assert len(items) == 6 and gif == gif2 and Image.open(gif).is_animated and "class 0" in info
    _, _, st = studio.sample("seed-gan-mnist", "any", 1, 2, 1.0, st)
    st = studio.open_sample(st, 0)[-1]
    _, st = studio.set_a(st)
    st = studio.open_sample(st, 1)[-1]
    _, st = studio.set_b(st)
    items, *_ = studio.interpolate("A and B", "ignored", "any", 0, 0, 4, "lerp", 1.0, st)
    assert np.array_equal(pixels(items[-1][0]), pixels(studio.set_b(st)[0]))
    pair, md = studio.nearest(st)
    assert pair.size[0] > pair.size[1] and "training images" in md and "distance" in md
    _, st = studio.edit(st, {"dir3": 1.0})
    out = studio.save_direction(st, "my tilt", {"dir3": 1.0})
    assert "Saved direction **my tilt**" in out[-2]
    labels = [u.get("label") for u in out[:N_DIR] if u.get("visible")]
    assert labels[-1] == "my tilt · saved" and out[2]["value"] == 1.0
    with pytest.raises(gr.Error, match="exists"):
        studio.save_direction(st, "my tilt", {"dir3": 1.0})
    out = studio.rename_direction(st, "1", "thickness", {"dir3": 1.0})
    assert out[1]["label"].startswith("thickness") and "thickness" in out[-2]
    with pytest.raises(gr.Error):
        studio.rename_direction(st, "1", "<b>", {"dir3": 1.0})


# =================================================================== through gradio_client
def test_api_lists_the_named_endpoints(server):
    info = client(server).view_api(return_format="dict", print_info=False)
    names = set(info["named_endpoints"])
    assert {"/sample", "/edit", "/interpolate", "/encode", "/open", "/reset", "/nearest", "/restore",
            "/recipe", "/encode_drawing", "/dice", "/model_info", "/save_direction",
            "/rename_direction", "/use_as_a", "/use_as_b"} <= names
    params = [p["parameter_name"] for p in info["named_endpoints"]["/edit"]["parameters"]]
    assert params == ["offsets"]


@pytest.mark.slow          # a process of its own (interpreter + torch start-up): the full tier
def test_finetune_endpoints_through_the_client(server, tmp_path):
    c = client(server)
    text, bar, loss, preview, quality = c.predict("", api_name="/job_status")
    assert "no job yet" in text and not quality and not loss
    with pytest.raises(Exception, match="no job selected"):
        c.predict("", 0, "", api_name="/compare_finetune")
    with pytest.raises(Exception, match="unknown job"):
        c.predict("20990101-000000-abcdef", 0, "", api_name="/compare_finetune")
    import time

    from gradio_client import handle_file
    # a script may leave out the time limit and the browser's job list; a bad upload is queued like
    # any other and its job fails with the preparation's message
    bad = tmp_path / "notes.zip"
    bad.write_bytes(b"not a zip")
    job_id, *_ = c.predict(handle_file(str(bad)), "new:vae", "32", 5, api_name="/start_job")
    t0 = time.time()
    while "failed" not in (text := c.predict(job_id, api_name="/job_status")[0]) and time.time() - t0 < 90:
        time.sleep(0.5)
    assert "failed" in text and "not a zip file" in text, text


def test_every_endpoint_through_the_client(server, tmp_path):
    c = client(server)
    grid, info = c.predict("vae-mnist", "any", 4, 2, 1.0, api_name="/sample")
    assert "seed 4 · 4 samples" in info
    assert Image.open(grid).size[0] == Image.open(grid).size[1] >= 2 * 28      # one picture: 2 x 2 tiles
    with pytest.raises(Exception, match="sample number must be between 0 and 3"):
        c.predict(4, api_name="/open")
    out = c.predict(1, api_name="/open")
    base = pixels(out[0])
    edited = c.predict({"dir1": 2.0}, api_name="/edit")
    assert not np.array_equal(pixels(edited), base)
    again = c.predict({"dir1": 2.0}, api_name="/edit")
    assert np.array_equal(pixels(again), pixels(edited))          # deterministic
    assert np.array_equal(pixels(c.predict(api_name="/reset")[0]), base)
    c.predict({"dir1": 2.0, "dim1": 0.5}, api_name="/edit")
    files = c.predict(api_name="/recipe")
    js = [f for f in files if str(f).endswith(".json")][0]
    rec = json.loads(Path(js).read_text())
    assert rec["offsets"]["directions"] == {"PC1": 2.0} and rec["model"] == "vae-mnist"
    from gradio_client import handle_file

    restored = c.predict(handle_file(js), api_name="/restore")
    edited2 = c.predict({"dir1": 2.0, "dim1": 0.5}, api_name="/edit")
    assert np.array_equal(pixels(restored[0]), pixels(edited2))
    seed, gal2, _ = c.predict("dcgan-mnist", "5", 1, 0.5, api_name="/dice")
    assert isinstance(seed, int) and Image.open(gal2).format == "PNG" and "1 samples · class 5" in _
    strip, anim, gif, info, = c.predict("two seeds", "seed-gan-mnist", "any", 3, 4, 5, "slerp", 1.0,
                                        api_name="/interpolate")
    assert len(strip) == 5 and Image.open(gif).is_animated
    enc = c.predict(handle_file(str(picture_file(tmp_path))), "dcgan-mnist", "3", api_name="/encode")
    assert "projection" in enc[2] and "class 3" in enc[2]
    nimg, nmd = c.predict(api_name="/nearest")
    assert "distance" in nmd
    label, temp, minfo = c.predict("vae-mnist", api_name="/model_info")
    assert "vae" in minfo
    a_img = c.predict(api_name="/use_as_a")
    b_img = c.predict(api_name="/use_as_b")
    assert Image.open(a_img).format == "PNG" and Image.open(a_img).size[0] > 0
    assert np.array_equal(np.asarray(Image.open(a_img)), np.asarray(Image.open(b_img)))   # both the editor's image
    s, *_ = c.predict("A and B", "vae-mnist", "any", 0, 0, 3, "lerp", 1.0, api_name="/interpolate")
    assert len(s) == 3


def test_bad_input_through_the_api_and_server_keeps_serving(server, tmp_path):
    from gradio_client import handle_file

    c = client(server)
    bomb = tmp_path / "bomb.png"
    from test_imageinput import bomb_png

    bomb.write_bytes(bomb_png())
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "bad.json").write_text('{"model": "vae-mnist", "z": [1, 2]}')
    (tmp_path / "gone.json").write_text('{"model": "missing-model", "z": [1, 2]}')
    cases = [
        (("nope", "any", 1, 2, 1.0), "/sample", "unknown model"),
        (("vae-mnist", "any", 1, 2, 7.5), "/sample", "greater than maximum"),
        ((handle_file(str(tmp_path / "notes.txt")), "vae-mnist", "any"), "/encode", "not a picture"),
        ((handle_file(str(bomb)), "vae-mnist", "any"), "/encode", "declares"),
        ((handle_file(str(tmp_path / "bad.json")),), "/restore", "needs 4"),
        ((handle_file(str(tmp_path / "gone.json")),), "/restore", "does not have"),
        ((), "/edit", "open a sample"),
    ]
    for args, api, msg in cases:
        with pytest.raises(Exception, match=msg):
            c.predict(*args, api_name=api)
    c.predict("vae-mnist", "any", 1, 1, 1.0, api_name="/sample")
    c.predict(0, api_name="/open")
    with pytest.raises(Exception, match="slider dir1 must be between -3 and 3"):
        c.predict({"dir1": 50.0}, api_name="/edit")
    with pytest.raises(Exception, match="unknown slider 'dir99'"):
        c.predict({"dir99": 1.0}, api_name="/edit")
    with pytest.raises(Exception, match="offsets must be"):
        c.predict([1, 2], api_name="/edit")
    assert c.predict({"dir1": 1.0}, api_name="/edit")                   # still serving, same session intact
    # NaN is not JSON, so gradio_client cannot send it; a raw request can
    assert "finite" in raw_call(server, "sample", '["vae-mnist", "any", 1, 2, NaN]')
    assert "event: error" in raw_call(server, "edit", '[{"dir1": NaN}]')


def raw_call(url, api, data_json):
    """POST /gradio_api/call/<api> with hand-written JSON; -> the text of the result stream."""
    import httpx

    r = httpx.post(f"{url}gradio_api/call/{api}", content='{"data": ' + data_json + '}',
                   headers={"content-type": "application/json"}, timeout=30)
    r.raise_for_status()
    return httpx.get(f"{url}gradio_api/call/{api}/{r.json()['event_id']}", timeout=30).text


def test_sessions_do_not_share_state(server):
    a, b = client(server), client(server)
    a.predict("seed-gan-mnist", "any", 8, 1, 1.0, api_name="/sample")
    a_img = pixels(a.predict(0, api_name="/open")[0])
    with pytest.raises(Exception, match="sample a grid first"):
        b.predict(0, api_name="/open")
    with pytest.raises(Exception, match="open a sample"):
        b.predict({"dir1": 1.0}, api_name="/edit")
    b.predict("vae-mnist", "any", 9, 1, 1.0, api_name="/sample")
    b.predict(0, api_name="/open")
    assert np.array_equal(pixels(a.predict(api_name="/reset")[0]), a_img)


def test_models_listed_before_weights_load_and_requests_wait(weights):
    import sys

    from demo.image_handlers import Studio, new_state
    from demo.models import ModelRegistry

    reg = ModelRegistry(weights, background=True)
    assert "vae-mnist" in reg.image_models()            # from config.json alone
    studio = Studio(reg)
    label, _, info = studio.model_controls("dcgan-mnist")
    assert label["visible"] and ("5", "5") in label["choices"] and "8-d latent" in info
    _, info, _ = studio.sample("dcgan-mnist", "any", 0, 1, 1.0, new_state())   # waits for the load
    assert "1 samples" in info and reg.wait(0) and "broken" not in reg.image_models()
    assert "torch" in sys.modules


def test_app_module_builds_nothing_on_import(root):
    import subprocess
    import sys

    code = ("import sys, app; assert not any(m.startswith(('gradio', 'torch')) for m in sys.modules); "
            "print(app.main.__doc__ is None)")
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "app.py", "--help"], cwd=root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--port" in r.stdout and "--host" in r.stdout


def test_bounded_queue_and_per_session_state(weights):
    import gradio as gr

    from demo import ModelRegistry, build_demo

    demo = build_demo(ModelRegistry(weights), queue_size=7)
    assert demo._queue.max_size == 7
    states = [b for b in demo.blocks.values() if isinstance(b, gr.State) and isinstance(b.value, dict)]
    assert len(states) == 1 and states[0].value["base"] is None       # every session starts empty
    edit = [f for f in demo.fns.values() if f.api_name == "edit"][0]
    assert edit.trigger_mode == "always_last" and len(edit.inputs) == 2


# =================================================================== user models appear while the app runs
def test_registry_finds_user_models_while_running(weights, tmp_path, caplog):
    """New folders in the user-models folder are loaded by refresh() / add(); a name taken by a
    shipped model gets a suffix; text models are offered by text_choices(); bad folders (pickled
    weights, no config.json) are skipped with a logged reason; refresh is idempotent and safe from
    many threads at once; a removed folder is forgotten."""
    import logging
    import threading

    from demo.models import ModelRegistry

    users = tmp_path / "user_models"
    save_user_model(users / "early")                      # there before the app starts
    reg = ModelRegistry(weights, user_models=users)
    assert "early" in reg.image_models() and reg.entries["early"].user and reg.version == 0
    assert reg.refresh() == [] and reg.version == 0

    save_user_model(users / "dcgan-mnist", seed=2)       # clashes with a shipped name
    save_user_model(users / "my-poems", kind="char-lm")
    pickled = users / "pickled"
    save_user_model(pickled)
    (pickled / "model.safetensors").write_bytes(b"\x80\x04" + b"\x00" * 64)   # a pickle, not safetensors
    (users / "no-config").mkdir()
    (users / ".tmp-20990101").mkdir()                      # a model being copied in: not looked at
    caplog.set_level(logging.WARNING, logger="aigc.demo")
    results = []
    threads = [threading.Thread(target=lambda: results.append(reg.refresh())) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(n for r in results for n in r) == ["dcgan-mnist-user", "my-poems", "pickled"]   # loaded once
    assert reg.version == 1 and reg.refresh() == [] and reg.version == 1
    assert {"dcgan-mnist", "dcgan-mnist-user", "early"} <= set(reg.image_models())
    assert reg.entries["dcgan-mnist"].path.parent == weights.resolve()        # the shipped one is untouched
    assert "pickled" not in reg.image_models() and "refusing to unpickle" in reg.entries["pickled"].error
    assert "no-config" not in reg.entries
    logged = caplog.text
    assert "pickled" in logged and "refusing to unpickle" in logged and "no-config" in logged and "no config.json" in logged
    assert reg.text_choices() == ["my-poems"]
    from demo.image_handlers import text_model_choices
    upd = text_model_choices(reg, "gone")                  # what the Text tab's picker gets
    assert upd["choices"] == ["my-poems"] and upd["value"] == "my-poems"
    step = reg.text_pipeline("my-poems").generate("once", 5, temperature=0, seed=0)
    assert len(step.text) == 5
    with pytest.raises(ValueError, match="unknown text model 'dcgan-mnist'"):
        reg.text_pipeline("dcgan-mnist")

    name = reg.add(save_user_model(users / "just-finished", seed=3))   # what a finished job does
    assert name == "just-finished" and reg.entries[name].ready and reg.version == 2
    assert reg.add(users / "just-finished") == name and reg.version == 2
    assert reg.name_for(users / "just-finished") == name
    import shutil
    shutil.rmtree(users / "early")
    reg.refresh()
    assert "early" not in reg.entries and reg.version == 3


def test_image_picker_refreshes_when_models_change(weights, tmp_path):
    """The picker's handler returns new choices only when the registry changed since the page
    last looked; build_demo wires it to page load, focus and every tab's `models_changed`."""
    import types

    import gradio as gr

    from demo import build_demo
    from demo.image_handlers import Studio
    from demo.models import ModelRegistry

    users = tmp_path / "user_models"
    reg = ModelRegistry(weights, user_models=users)
    studio = Studio(reg, tmp_path / "tmp")
    upd, v = studio.model_choices("vae-mnist", reg.version)
    assert v == 0 and upd == gr.skip()                                   # nothing new: the page keeps its list
    save_user_model(users / "fresh")
    upd, v = studio.model_choices("vae-mnist", 0)
    assert v == 1 and "fresh" in upd["choices"] and upd["value"] == "vae-mnist"

    def tab(registry):
        changed = gr.Number(0, visible="hidden")
        text_picker = gr.Dropdown(["a"], allow_custom_value=True)
        return types.SimpleNamespace(models_changed=changed,
                                     model_pickers=[(lambda: gr.update(choices=["a", "b"]), None, [text_picker])])

    demo = build_demo(reg, extra_tabs={"Fine-tune": tab})
    cfg = demo.get_config_file()
    changed_id = next(b._id for b in demo.blocks.values() if isinstance(b, gr.Number) and b.visible == "hidden")
    model_id = next(b._id for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model")
    on_change = [d for d in cfg["dependencies"] if [changed_id, "change"] in [list(t) for t in d["targets"]]]
    assert any(model_id in d["outputs"] for d in on_change)              # the Image tab's picker
    assert len(on_change) >= 3                                           # + the Models table + the tab's own picker
    on_focus = [d for d in cfg["dependencies"] if [model_id, "focus"] in [list(t) for t in d["targets"]]]
    assert on_focus and model_id in on_focus[0]["outputs"]


def test_finetune_panel_shaping():
    """Curves a person can read, and the text flow's side-by-side scores (demo.finetune_view,
    demo.finetune_compare)."""
    from demo.finetune_compare import score_table
    from demo.finetune_view import loss_chart, quality_chart, short_series, smooth_rows

    rows = [{"step": i, "value": v, "series": "loss"} for i, v in enumerate([4.0, 0.0, 4.0])]
    assert [round(r["value"], 2) for r in smooth_rows(rows)] == [4.0, 2.4, 3.04]
    assert loss_chart([]) == "" and quality_chart(None) == ""                # nothing yet: no chart
    plain = loss_chart(rows)
    assert plain.count("<polyline") == 1 and 'class="legend-box"' in plain
    smooth = loss_chart(rows, smooth=True)                   # the average over the faint raw curve
    assert smooth.count("<polyline") == 2 and 'opacity="0.3"' in smooth and "loss (smoothed)" in smooth
    assert "y = 2.4" in smooth and "smoothed (moving average" in smooth
    pos = [{"step": i, "value": v, "series": "g_loss"} for i, v in enumerate([10.0, 1.0, 0.1])]
    logged = loss_chart(rows + pos, log_y=True)              # a log axis; a series reaching 0: left out
    assert "left out (not positive): loss" in logged and 'data-label="g_loss"' in logged
    assert 'data-label="loss"' not in logged and ">0.1<" in logged and ">10<" in logged
    assert "log scale" in loss_chart(rows, log_y=True)         # nothing left to draw: said, not raised
    q = quality_chart([{"step": 5, "value": 3.1, "series": "held-out cross-entropy (nats/char)"}])
    assert "held-out nats/char" in q and "<title>held-out nats/char: x = 5, y = 3.1</title>" in q
    assert short_series("held-out cross-entropy (nats/char)") == "held-out nats/char"
    table = score_table({"quality_first": {"nats_per_char": 3.2}, "quality_last": {"nats_per_char": 2.9},
                         "model_path": None})
    assert "| held-out cross-entropy" in table and "3.200 | 2.900" in table
    s = {"quality_first": {"nats_per_char": 3.2, "text_copy_rate": 0.01},
         "quality_last": {"nats_per_char": 2.9, "text_copy_rate": 0.04}}
    assert "1.0% | 4.0%" in score_table(s)
    assert score_table({"quality_first": {}, "quality_last": {}}) == ""


def test_models_tab_scales_kid_and_serves_only_samples_png(weights):
    from demo.models import ModelRegistry
    from demo.models_tab import metric_items, model_card, model_samples

    assert dict(metric_items({"kid": 0.01706, "fid": 10.39})) == {"KID×1000": "17.06", "FID": "10.39"}
    reg = ModelRegistry(weights)
    assert model_samples(reg, "vae-mnist") is None                      # none beside its weights
    assert model_samples(reg, "../../etc") is None and model_samples(reg, None) is None
    assert "](samples.png)" not in model_card(reg, "vae-mnist")


def test_clusters_endpoint_through_the_client(server):
    """The clusters view is a named endpoint (model, seed, temperature); a model without clusters
    gets one clear line (tests/test_vade_ui.py covers a VaDE)."""
    c = client(server)
    params = c.view_api(return_format="dict", print_info=False)["named_endpoints"]["/clusters"]["parameters"]
    assert [p["parameter_name"] for p in params] == ["model", "seed", "temperature"]
    with pytest.raises(Exception, match="not a VaDE"):
        c.predict("vae-mnist", 0, 1.0, api_name="/clusters")
    _, info = c.predict("vae-mnist", "any", 4, 1, 1.0, api_name="/sample")          # still serving
    assert "1 samples" in info
