"""`aigc study`: the grid trained from the command line on a tiny spec (one line per cell, resumed
without training twice), its results as JSON, the upload study's JSON, and bad input (exit 2, one line)."""
from __future__ import annotations

import json

import pytest

import aigc.hub
from aigc.cli.commands import main

pytestmark = pytest.mark.slow          # training runs and worker processes: the full tier (make test)

CELL_KEYS = {"task", "fraction", "augment", "steps_multiplier", "seed", "metric", "value"}
TINY = {"tasks": ["images"], "fractions": [0.01, 0.1], "augment": [True], "steps_multipliers": [1], "seeds": [0],
        "images": {"base_steps": 1, "batch_size": 8, "tiny": True, "metrics": ["kid_randconv"], "eval_n": 16,
                   "corner_metrics": []}}


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["study", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_data_vs_compute_trains_resumes_and_prints_json(tmp_path, capsys, monkeypatch, one_thread):
    spec, out = tmp_path / "spec.json", tmp_path / "study"
    spec.write_text(json.dumps(TINY))
    rc, stdout, _ = _run(capsys, "data-vs-compute", "--out", out, "--spec", spec, "--threads", 1)
    assert rc == 0
    done = [ln for ln in stdout.splitlines() if ln.startswith("[") and "kid_randconv" in ln]
    assert [ln.split(":")[0] for ln in done] == ["[1/2] images-f0.01-aug-x1-s0", "[2/2] images-f0.1-aug-x1-s0"]
    assert "At equal compute, what does 10x more data buy?" in stdout
    rc, again, _ = _run(capsys, "data-vs-compute", "--out", out, "--spec", spec)
    assert rc == 0 and not [ln for ln in again.splitlines() if ln.startswith("[")], "a finished cell is not trained again"

    rc, printed, _ = _run(capsys, "data-vs-compute", "--json", "--out", out)
    res = json.loads(printed)
    assert rc == 0 and len(res["cells"]) == 2 and all(set(c) == CELL_KEYS for c in res["cells"])
    assert {c["fraction"] for c in res["cells"]} == {0.01, 0.1} and res["summary"] and res["answers"]
    monkeypatch.setattr(aigc.hub, "STUDY_DIR", out)          # the shipped study's folder, for this test
    rc, shipped, _ = _run(capsys, "data-vs-compute", "--json")
    assert rc == 0 and json.loads(shipped) == res

    # a second process's folder (another seed) merged with the first; one cell twice, or another recipe, refused
    other, other_spec = tmp_path / "study-s1", tmp_path / "s1.json"
    other_spec.write_text(json.dumps({**TINY, "fractions": [0.01], "seeds": [1]}))
    assert _run(capsys, "data-vs-compute", "--out", other, "--spec", other_spec)[0] == 0
    rc, stdout, _ = _run(capsys, "merge", "--out", tmp_path / "all", out, other)
    merged = json.loads((tmp_path / "all" / "study.json").read_text())
    assert rc == 0 and "3 cells from 2 folders" in stdout
    assert sorted((c["fraction"], c["seed"]) for c in merged["cells"]) == [(0.01, 0), (0.01, 1), (0.1, 0)]
    assert merged["spec"]["seeds"] == [0, 1] and merged["recipe"] == json.loads((out / "study.json").read_text())["recipe"]
    summary = {g["fraction"]: g["n"] for g in json.loads(_run(capsys, "data-vs-compute", "--json", "--out",
                                                                   tmp_path / "all")[1])["summary"]}
    assert summary == {0.01: 2, 0.1: 1}
    rc, _, err = _run(capsys, "merge", "--out", tmp_path / "twice", out, out)
    assert rc == 2 and "measured in two sources" in err and not (tmp_path / "twice" / "study.json").exists()
    study = json.loads((other / "study.json").read_text())
    study["recipe"]["images"]["eval_n"] = 17
    (other / "study.json").write_text(json.dumps(study))
    rc, _, err = _run(capsys, "merge", "--out", tmp_path / "mixed", out, other)
    assert rc == 2 and "recipe differs" in err


@pytest.mark.parametrize("argv, message", [
    (["data-vs-compute"], "training needs --out"),
    (["data-vs-compute", "--out", "{tmp}/s", "--spec", "{tmp}/none.json"], "no such file"),
    (["data-vs-compute", "--out", "{tmp}/s", "--spec", "{tmp}/bad.json"], "not a readable JSON file"),
    (["data-vs-compute", "--out", "{tmp}/s", "--spec", "{tmp}/list.json"], "must hold a JSON object"),
    (["data-vs-compute", "--out", "{tmp}/s", "--spec", "{tmp}/unknown.json"], "unknown study spec field"),
    (["data-vs-compute", "--out", "{tmp}/s", "--threads", "0"], "--threads must be at least 1"),
    (["data-vs-compute", "--json", "--spec", "{tmp}/unknown.json"], "--json only prints results"),
    (["data-vs-compute", "--json", "--out", "{tmp}"], "no study.json"),
    (["data-vs-compute", "--json"], "no study results shipped yet in"),
    (["corners", "--study", "{tmp}/s", "--models", "{tmp}"], "holds no measured study"),
    (["corners", "--study", "{tmp}/s", "--models", "{tmp}", "--n", "1"], "--n must be at least 2"),
    (["corners", "--study", "{tmp}/s", "--models", "{tmp}", "--metrics", "nope"], "unknown metric(s) 'nope'"),
    (["upload", "--data", "{tmp}/story.txt", "--base", "char-lm", "--minutes", "0"], "time budget"),
    (["upload", "--data", "{tmp}/none.txt", "--base", "char-lm", "--minutes", "1"], "no such data file"),
    (["upload", "--data", "{tmp}/story.txt", "--base", "char-lm", "--minutes", "1", "--batch-size", "0"],
     "--batch-size and --eval-n must be at least 1"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, argv, message):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "unknown.json").write_text('{"fraction": [0.1]}')
    (tmp_path / "story.txt").write_text("Once upon a time. " * 50)
    monkeypatch.setattr(aigc.hub, "STUDY_DIR", tmp_path / "no-study")
    rc, stdout, err = _run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert rc == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "study.json").exists()


def test_missing_required_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["study", "upload", "--data", "x.txt", "--minutes", "1"])
    assert e.value.code == 2 and "--base" in capsys.readouterr().err


def test_upload_study_prints_its_json(tmp_path, capsys, one_thread):
    txt = tmp_path / "story.txt"
    txt.write_text("Once upon a time there was a small model that learned to write. " * 40, encoding="utf-8")
    rc, stdout, err = _run(capsys, "upload", "--data", txt, "--base", "char-lm", "--minutes", 1, "--tiny",
                           "--max-steps", 3, "--batch-size", 4, "--eval-n", 16, "--json")
    res = json.loads(stdout)
    assert rc == 0 and res["fractions"] == [0.25, 0.5, 1.0] and res["metric"] == "nats_per_char"
    for key in ("values", "exponent", "prediction_2x_data", "measured_2x_steps", "recommendation"):
        assert key in res
    assert "doubling the text" in res["recommendation"] and "training on" in err, "progress goes to stderr"
