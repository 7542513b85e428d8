"""The data-vs-compute study: the grid's bookkeeping (resume, never twice), its summaries and
answers, the power-law fit on synthetic data, and the upload study end to end on tiny models."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from aigc.study import fit_power_law, load_results, make_spec, plan, run_grid, study_upload
from aigc.study.summary import answers, summarize

pytestmark = pytest.mark.slow          # training runs and worker processes: the full tier (make test)

TINY = {"tasks": ["images"], "fractions": [0.01, 0.1], "augment": [True], "steps_multipliers": [1], "seeds": [0, 1],
        "images": {"base_steps": 2, "batch_size": 16, "tiny": True, "metrics": ["kid_randconv"], "eval_n": 32,
                   "corner_metrics": []}}


# -- the grid ---------------------------------------------------------------------------------------
def test_tiny_grid_records_every_cell_once_and_resumes(tmp_path, one_thread):
    events = []
    res = run_grid(tmp_path, TINY, on_progress=events.append)
    trained = [e["cell"] for e in events if e["phase"] == "cell"]
    assert len(trained) == 4 and len(res["runs"]) == 4
    rows = json.loads((tmp_path / "study.json").read_text())["cells"]
    assert {(r["fraction"], r["seed"]) for r in rows} == {(0.01, 0), (0.01, 1), (0.1, 0), (0.1, 1)}
    assert all(set(r) == {"task", "fraction", "augment", "steps_multiplier", "seed", "metric", "value"} for r in rows)
    assert all(r["metric"] == "kid_randconv" and math.isfinite(r["value"]) for r in rows)
    assert 590 <= res["runs"]["images-f0.01-aug-x1-s0"]["examples"] <= 610      # 1% of MNIST, ~60 per class
    # the summary: one group per fraction, mean and standard error over the two seeds
    groups = [g for g in res["summary"] if g["metric"] == "kid_randconv"]
    assert [g["n"] for g in groups] == [2, 2] and all(g["sem"] is not None for g in groups)
    assert any("10x more data" in s for a in res["answers"] for s in a["sentences"])
    assert res["series"]["images"]["kid_randconv"][0]["x"] == [0.01, 0.1]
    # the run drew its figure beside study.json: one SVG per task, every cell's mean a point
    svg = (tmp_path / "figures" / "images-kid_randconv.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg") and svg.count('class="point"') == 2 and svg.count('class="errorbar"') == 2
    assert any("figures in" in e["text"] for e in events if e["phase"] == "done")

    # a finished study trains nothing again
    events.clear()
    again = run_grid(tmp_path, TINY, on_progress=events.append)
    assert not [e for e in events if e["phase"] == "cell"] and again["cells"] == res["cells"]

    # an interrupted cell: trained (checkpoint and model on disk) but its result not yet recorded
    # (f0.1, s1), and one stopped after its last checkpoint, before its summary (f0.01, s1)
    study = json.loads((tmp_path / "study.json").read_text())
    for key in ("images-f0.1-aug-x1-s1", "images-f0.01-aug-x1-s1"):
        del study["runs"][key]
    study["cells"] = [r for r in study["cells"] if r["seed"] != 1]
    (tmp_path / "study.json").write_text(json.dumps(study))
    state = tmp_path / "cells" / "images-f0.1-aug-x1-s1" / "state.pt"
    before = state.stat().st_mtime_ns
    (tmp_path / "cells" / "images-f0.01-aug-x1-s1" / "summary.json").unlink()
    events.clear()
    resumed = run_grid(tmp_path, TINY, on_progress=events.append)
    assert [(e["cell"]["fraction"], e["cell"]["seed"]) for e in events if e["phase"] == "cell"] == [(0.01, 1), (0.1, 1)]
    assert state.stat().st_mtime_ns == before, "a trained cell is measured, not trained again"
    assert resumed["runs"]["images-f0.01-aug-x1-s1"]["steps"] == 2, "a resumed cell continues, not restarts"
    assert resumed["summary"] == res["summary"]

    # another recipe in the same folder is refused; load_results reads what is there
    with pytest.raises(ValueError, match="another images recipe"):
        run_grid(tmp_path, {**TINY, "images": {**TINY["images"], "base_steps": 3}})
    assert load_results(tmp_path)["runs"].keys() == res["runs"].keys()


def test_spec_checks_and_plan(tmp_path):
    with pytest.raises(ValueError, match="fractions"):
        make_spec({"fractions": [0]})
    with pytest.raises(ValueError, match="unknown study spec"):
        make_spec({"fraction": [0.1]})
    with pytest.raises(ValueError, match="unknown images field"):
        make_spec({"images": {"steps": 3}})
    with pytest.raises(ValueError, match="no study.json"):
        load_results(tmp_path)
    p = plan()
    assert p["images"]["cells"] == 3 * 2 * 2 * 3 and p["text"]["cells"] == 3 * 2 * 3


def test_answers_are_built_from_the_figures():
    rows = []
    for seed, noise in enumerate((0.0, 0.02)):
        for f, m, aug, v in [(0.01, 1, True, 10.0), (0.1, 1, True, 5.0), (0.01, 4, True, 8.0), (0.1, 4, True, 2.0),
                             (0.01, 1, False, 12.0), (0.1, 1, False, 5.0), (0.01, 4, False, 9.0), (0.1, 4, False, 2.0)]:
            rows.append({"task": "images", "fraction": f, "augment": aug, "steps_multiplier": m, "seed": seed,
                         "metric": "domain_fd", "value": v + noise})
    res = answers(summarize(rows), {"images": "domain_fd"})
    text = {a["key"]: " ".join(a["sentences"]) for a in res}
    assert "10x more data (1% -> 10%) took domain_fd from 10.01 ± 0.01 to 5.01 ± 0.01 (-50%, better" in text["more_data"]
    assert "4x the steps (1x -> 4x)" in text["more_compute"]
    assert "augmentation was clearly worth it at 1% at 1x, 1% at 4x" in text["augmentation"]
    assert "more data was worth more" in text["crossing"]
    assert "corners" not in text
    # Inception FID at the corners (one seed): its own answer, with no error bar claimed
    rows += [{"task": "images", "fraction": f, "augment": aug, "steps_multiplier": m, "seed": 0, "metric": "fid",
              "value": v} for f, m, aug, v in [(0.01, 1, True, 90.0), (0.1, 1, True, 60.0), (0.01, 4, True, 30.0),
                                               (0.1, 4, True, 20.0), (0.01, 1, False, 80.0), (0.1, 4, False, 25.0)]]
    res = answers(summarize(rows), {"images": "domain_fd"})
    corners = [a for a in res if a["key"] == "corners"]
    assert len(corners) == 1 and corners[0]["metric"] == "fid"
    said = " ".join(corners[0]["sentences"])
    assert "took fid from 90 to 60 (-33%, better; one seed, no error bar)" in said
    assert "4x the steps (1x -> 4x) took fid from 90 to 30" in said and "DiffAugment took fid from 80 to 90" in said
    assert " ".join(a["sentences"][0] for a in res if a["key"] == "more_data").startswith("images (domain_fd")


# -- the power law ----------------------------------------------------------------------------------
def test_power_law_recovers_a_known_exponent():
    rng = np.random.default_rng(0)
    n = np.array([100, 200, 400, 800, 1600, 3200, 6400])
    y = 3.0 * n ** -0.5 * np.exp(rng.normal(0, 0.02, len(n)))
    fit = fit_power_law(n, y, bootstrap=200)
    assert abs(fit.b - 0.5) < 3 * fit.b_err and fit.b_err < 0.05
    assert fit.b_ci[0] < 0.5 < fit.b_ci[1]
    assert fit.ratio(2.0) == pytest.approx(2 ** -fit.b)
    # with a floor: y = 2 n^-0.7 + 0.05
    y2 = 2.0 * n ** -0.7 + 0.05
    fit2 = fit_power_law(n, y2, offset=True)
    assert fit2.b == pytest.approx(0.7, abs=0.05) and fit2.c == pytest.approx(0.05, abs=0.01)
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2, 3], [0.1, -0.1, 0.2])
    with pytest.raises(ValueError, match="two or more different"):
        fit_power_law([5, 5], [1.0, 2.0])


# -- the upload study -------------------------------------------------------------------------------
def _zip(tmp_path):
    from test_uploads import good_members, make_zip
    return make_zip(tmp_path / "good.zip", good_members(48))


def test_upload_study_end_to_end_on_tiny_images(tmp_path, one_thread):
    p = _zip(tmp_path)
    out = tmp_path / "study"
    events = []
    res = study_upload(p, "dcgan", minutes=1, on_progress=events.append, out=out, tiny=True, max_steps=3, batch_size=8,
                       eval_n=32, resolution=32)
    assert res["with_duplicates"] is None and res["duplicates_cost"] is None       # no duplicates: no extra run
    assert [e["total"] for e in events if e["phase"] == "running"] == [4] * 4
    assert not (out / "with-duplicates").exists()
    assert res["fractions"] == [0.25, 0.5, 1.0] and res["examples"][-1] == 38      # 10 of 48 held out
    assert res["metric"] == "kid_randconv" and len(res["values"]) == 3 and res["steps"] == 3
    for k in ("exponent", "prediction_2x_data", "measured_2x_steps"):
        assert math.isfinite(res[k])
    assert res["duplicates_removed"] == 0 and len(res["copy_rates"]) == 3
    assert "doubling the images is predicted to" in res["recommendation"]
    assert json.loads((out / "study_upload.json").read_text())["recommendation"] == res["recommendation"]
    with pytest.raises(ValueError, match="already holds a data study"):
        study_upload(p, "dcgan", minutes=1, out=out, tiny=True)


def test_upload_study_prices_the_duplicates_it_removed(tmp_path, one_thread):
    from test_uploads import good_members, make_zip

    from aigc.data.uploads import prepare_image_zip
    from demo.finetune_study import study_text
    members = good_members(48)
    names = list(members)
    held = set(np.random.default_rng(0).permutation(48)[:10].tolist())     # the study's seeded held-out split
    in_pool = [i for i in range(48) if i not in held][:3]
    copies = in_pool + [min(held)]
    for k, i in enumerate(copies):
        members[f"set/cats/copy-{k}{Path(names[i]).suffix}"] = members[names[i]]
    p = make_zip(tmp_path / "dups.zip", members)
    prep = prepare_image_zip(p, resolution=32)
    assert len(prep.data) == 48 and prep.removed_of.tolist() == copies
    assert np.array_equal(prep.removed.images, prep.data.images[copies])
    events = []
    res = study_upload(p, "dcgan", minutes=1, on_progress=events.append, out=tmp_path / "study", tiny=True, max_steps=3,
                       batch_size=8, eval_n=32, resolution=32)
    assert res["duplicates_removed"] == 4 and res["examples"][-1] == 38
    dup = res["with_duplicates"]
    assert dup["examples"] == 38 + 3 and math.isfinite(dup["kid_randconv"]) and 0 <= dup["copy_rate"] <= 1
    assert [e["total"] for e in events if e["phase"] == "running"] == [5] * 5
    assert (tmp_path / "study" / "with-duplicates").is_dir()
    assert res["duplicates_cost"].startswith("left in, the 3 duplicates ") and "KID" in res["duplicates_cost"]
    assert (f"{res['copy_rates'][-1]:.2g} to {dup['copy_rate']:.2g}" in res["duplicates_cost"]
            or f"left the copy rate at {dup['copy_rate']:.2g}" in res["duplicates_cost"])
    assert any("1 duplicate of a held-out image is left out" in n for n in res["notes"])
    assert "Left in, the 3 duplicates" in study_text(res)


def test_upload_study_text_and_refusals(tmp_path, one_thread):
    txt = tmp_path / "story.txt"
    txt.write_text("Once upon a time there was a small model that learned to write. " * 40, encoding="utf-8")
    res = study_upload(txt, "char-lm", minutes=1, tiny=True, max_steps=3, batch_size=4, eval_n=16)
    assert res["metric"] == "nats_per_char" and all(v > 0 for v in res["values"])
    assert "doubling the text" in res["recommendation"]
    with pytest.raises(ValueError, match=r"too small for a data study of this upload: it needs at least [\d.]+ minutes"):
        study_upload(txt, "char-lm", minutes=0.001, tiny=True, batch_size=4)
    with pytest.raises(ValueError, match="time budget"):
        study_upload(txt, "char-lm", minutes=0, tiny=True)
    short = tmp_path / "short.txt"
    short.write_text("Once upon a time there was a small model. " * 6, encoding="utf-8")
    with pytest.raises(ValueError, match="too small for a data study|no held-out slice|is too short"):
        study_upload(short, "char-lm", minutes=1, tiny=True)


# -- the Data tab -----------------------------------------------------------------------------------
GRID = {"tasks": ["images"], "fractions": [0.01, 0.1], "augment": [True], "steps_multipliers": [1],
        "seeds": [0, 1], "images": {"base_steps": 1, "batch_size": 8, "tiny": True, "metrics": ["kid_randconv"],
                                    "eval_n": 16, "corner_metrics": []}}


def _tab(study_dir):
    import gradio as gr
    from demo.data_tab import build_data_tab
    with gr.Blocks():
        return build_data_tab(None, study_dir=study_dir)


def test_data_tab_is_built_from_study_json(tmp_path, one_thread):
    res = run_grid(tmp_path, GRID)
    tab = _tab(tmp_path)
    assert tab.message == "" and [t for t, _ in tab.plots] == ["images"]
    svg = tab.plots[0][1].value                      # the figure `aigc study figures` draws, error bars and all
    assert (tmp_path / "figures" / "images-kid_randconv.svg").read_text(encoding="utf-8") in svg
    for s in res["summary"]:                          # each point's hover title: its mean and ± 1 s.e.
        assert f"x = {s['fraction']!r}, y = {s['mean']!r} (bar {s['mean'] - s['sem']!r} to" in svg
    assert svg.count('class="errorbar"') == 2 and "1x steps, augment on" in svg and "stroke-dasharray" in svg
    said = {a["key"]: a["sentences"] for a in res["answers"]}
    assert [r.value for r in tab.readings] == [said["more_data"][-1]], "augmentation was measured on only"
    assert "10x more data" in tab.readings[0].value
    assert len(tab.table.value["data"]) == len(res["summary"])
    assert "aigc study data-vs-compute --out runs/study" in tab.commands.value


def test_data_tab_lines_per_compute_level_and_augmentation(tmp_path):
    """A sample study.json written here (made-up numbers, in a temp folder only): two compute levels,
    augmentation on and off, three data sizes."""
    from demo.data_tab import load_study, reading
    rows = [{"task": "images", "fraction": f, "augment": aug, "steps_multiplier": m, "seed": seed,
             "metric": "domain_fd", "value": v + 2 * aug + seed}
            for seed in (0, 1) for aug in (False, True) for f, m, v in [
                (0.01, 1, 90.0), (0.1, 1, 50.0), (1.0, 1, 30.0), (0.01, 4, 80.0), (0.1, 4, 40.0), (1.0, 4, 20.0)]]
    (tmp_path / "study.json").write_text(json.dumps({"format": "aigc-study/1", "cells": rows, "runs": {}, "notes": [],
                                                     "recipe": {"images": {"primary": "domain_fd"}}}))
    res, message = load_study(tmp_path)
    assert message == ""
    said = {a["key"]: a["sentences"] for a in res["answers"]}
    assert reading(res, "images", "data") == said["crossing"][-1] and "more data was worth more" in said["crossing"][-1]
    assert reading(res, "images", "augment") == said["augmentation"][-1]
    tab = _tab(tmp_path)
    svg = tab.plots[0][1].value
    legend = svg[svg.index('class="legend"'):]
    assert [t for t in ("1x steps, augment off", "1x steps, augment on", "4x steps, augment off",
                        "4x steps, augment on") if t in legend] == ["1x steps, augment off", "1x steps, augment on",
                                                                    "4x steps, augment off", "4x steps, augment on"]
    assert svg.count("<polyline") == 4 and svg.count('stroke-dasharray="7 4"/>') == 2 + 2   # lines + legend swatches
    assert svg.count('class="point"') == 12 and len(tab.readings) == 2


def test_data_tab_without_results_says_how_to_make_them(tmp_path):
    tab = _tab(tmp_path)
    assert tab.results is None and "No study results yet" in tab.message and not tab.plots
    assert "aigc study data-vs-compute --out runs/study" in tab.commands.value
    (tmp_path / "study.json").write_text("{broken")
    assert "could not be read" in _tab(tmp_path).message


def test_the_shipped_study_is_complete_and_answers_its_questions():
    """bench/study/study.json, as the Data tab and `aigc study data-vs-compute --json` read it: every
    cell of the default grid measured (3 seeds each), and each of the issue's questions answered."""
    from aigc.hub import STUDY_DIR
    from aigc.study.grid import cells, make_spec
    res = load_results(STUDY_DIR)
    spec = make_spec({k: v for k, v in res["spec"].items() if k in ("tasks", "fractions", "augment",
                                                                     "steps_multipliers", "seeds")})
    assert len(res["runs"]) == len(cells(spec)) == 54 and spec["seeds"] == [0, 1, 2]
    assert {c.key for c in cells(spec)} == set(res["runs"])
    assert all(math.isfinite(r["value"]) for r in res["cells"])
    assert {g["n"] for g in res["summary"] if g["metric"] != "fid"} == {3}
    corners = {(r["fraction"], r["augment"], r["steps_multiplier"]) for r in res["cells"] if r["metric"] == "fid"}
    assert len(corners) == 8 and {r["seed"] for r in res["cells"] if r["metric"] == "fid"} == {0}
    assert any(a["key"] == "corners" and a["metric"] == "fid" for a in res["answers"])
    assert {a["key"] for a in res["answers"]} >= {"more_data", "more_compute", "augmentation", "crossing"}
    assert res["recipe"]["images"]["config"] == make_spec()["images"]["config"]   # the default command repeats it


# -- the corners, measured after the grid on its saved models --------------------------------------
def test_corner_metrics_are_added_from_saved_models_once(tmp_path, one_thread):
    from aigc.eval.metrics import METRICS, register
    from aigc.study import merge_studies
    from aigc.study.corners import add_corner_metrics

    calls = []

    @register("probe_mean")
    def _probe(ctx):
        """mean pixel of the samples (a cheap stand-in for Inception FID in this test)"""
        calls.append(ctx.n)
        return {"probe_mean": float(ctx.images.mean())}

    try:
        run = tmp_path / "run"
        spec = {**TINY, "fractions": [0.01, 0.02, 0.1]}
        run_grid(run, spec)
        merge_studies(tmp_path / "all", [run])                 # the gathered study: no cells/ of its own
        study = add_corner_metrics(tmp_path / "all", [tmp_path / "elsewhere", run], metrics=["probe_mean"], n=8)
        corners = sorted((r["fraction"], r["seed"]) for r in study["cells"] if r["metric"] == "probe_mean")
        assert corners == [(0.01, 0), (0.1, 0)] and calls == [8, 8]        # the corner seed, outer fractions only
        assert sum(r["metric"] == "kid_randconv" for r in study["cells"]) == 6        # the grid's own rows kept
        assert study["runs"]["images-f0.01-aug-x1-s0"]["corner"] is True
        assert study["spec"]["images"]["corner_metrics"] == ["probe_mean"] and study["spec"]["images"]["corner_eval_n"] == 8
        assert json.loads((tmp_path / "all" / "study.json").read_text())["cells"] == study["cells"]
        add_corner_metrics(tmp_path / "all", [run], metrics=["probe_mean"], n=8)
        assert calls == [8, 8], "a measured corner is not measured again"
        assert any(g["metric"] == "probe_mean" for g in load_results(tmp_path / "all")["summary"])
        # a model that is not the one the study measured, or none at all, is refused with the reason
        (run / "cells" / "images-f0.1-aug-x1-s0" / "summary.json").write_text('{"steps": 99}')
        merge_studies(tmp_path / "again", [run])
        with pytest.raises(ValueError, match="trained 99 steps, the study measured 2"):
            add_corner_metrics(tmp_path / "again", [run], metrics=["probe_mean"], n=8)
        with pytest.raises(ValueError, match="no saved model for corner images-f0.1-aug-x1-s0"):   # f0.01 done above
            add_corner_metrics(tmp_path / "again", [tmp_path / "elsewhere"], metrics=["probe_mean"], n=8)
    finally:
        METRICS.pop("probe_mean", None)
