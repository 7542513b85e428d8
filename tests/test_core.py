"""The foundation: models, checkpoints, training runs, resumption, the CLI."""
import contextlib
import io
import json
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from aigc import checkpoint as ckpt
from aigc.data import ImageData, load_dataset, read_idx
from aigc.pipelines.image import ImagePipeline
from aigc.kinds import KINDS, build
from aigc.train.loop import TrainOptions, train

ROOT = Path(__file__).resolve().parents[1]
IMAGE_KINDS = [k for k, v in KINDS.items() if v.modality == "image"]
SHIPPED = ["vae-mnist", "dcgan-mnist", "seed-gan-mnist", "vae-fashion", "dcgan-fashion", "seed-gan-fashion"]


def small_data(n=64, res=28, ch=1, classes=10):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, res, res, ch), dtype=np.uint8)
    labels = np.arange(n) % classes
    return ImageData("toy", images, labels, [str(i) for i in range(classes)])


def cli(*args, cwd=ROOT):
    """`python -m aigc ARGS` run in this process (no interpreter start-up, so the quick tier stays
    quick): exit status and what it printed. tests/test_cli.py runs the real command in a process."""
    from aigc.cli.commands import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:             # argparse's own refusals
            rc = e.code if isinstance(e.code, int) else 2
    return types.SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())


# -- data ------------------------------------------------------------------------------------------
def test_datasets_load_with_classes():
    for name, n_train in [("mnist", 60000), ("fashion-mnist", 60000)]:
        tr, te = load_dataset(name, "train"), load_dataset(name, "test")
        assert tr.images.shape == (n_train, 28, 28, 1) and te.images.shape == (10000, 28, 28, 1)
        assert tr.num_classes == 10 and set(np.unique(te.labels)) == set(range(10))
    assert load_dataset("fashion-mnist", "test").class_names[9] == "Ankle boot"
    with pytest.raises(ValueError):
        load_dataset("cifar")


def test_idx_reader_rejects_truncated(tmp_path):
    good = ROOT / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    import gzip
    raw = gzip.open(good).read()
    bad = tmp_path / "bad-idx1-ubyte"
    bad.write_bytes(raw[:100])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(bad)


# -- models ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", IMAGE_KINDS)
@pytest.mark.parametrize("res,ch", [(28, 1), (32, 3), (64, 3)])
def test_model_shapes(kind, res, ch):
    m = build(kind, tiny=True, resolution=res, channels=ch)
    x = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, ch, res, res)
    assert 0 <= x.min() and x.max() <= 1


def test_seed_gan_is_the_article_architecture():
    m = build("seed-gan")
    g = [type(l).__name__ for l in m.generator]
    d = [type(l).__name__ for l in m.discriminator]
    assert g == ["Linear", "ReLU", "Dropout", "Linear", "Sigmoid"]
    assert d == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert m.generator[0].in_features == 100 and m.generator[0].out_features == 128
    assert m.generator[3].out_features == 784 and m.discriminator[1].out_features == 512
    assert m.generator[2].p == 0.3 and m.discriminator[3].p == 0.3


@pytest.mark.parametrize("res", [28, 32, 64])
def test_dcgan_dense_head_sees_the_whole_image(res):
    """d_head="dense" ends D with a conv whose kernel covers the whole final map: changing one
    corner pixel moves the score even at 64x64 (the "sum" head's receptive field is smaller)."""
    m = build("dcgan", tiny=True, resolution=res, d_head="dense")
    d = m.discriminator.eval()
    x = torch.zeros(1, 1, res, res)
    y = x.clone()
    y[0, 0, 0, 0] = 1.0
    with torch.no_grad():
        assert d(x, torch.tensor([3])).shape == (1,)
        assert d(x, torch.tensor([3])).item() != d(y, torch.tensor([3])).item()
    with pytest.raises(ValueError, match="d_head"):
        build("dcgan", tiny=True, d_head="mean")


def test_saved_config_without_a_newer_field_keeps_its_old_meaning(tmp_path):
    """A dcgan saved before d_head existed (no such key in config.json) loads with the "sum" head
    it was trained with, whatever the current default."""
    m = build("dcgan", tiny=True, d_head="sum")
    ckpt.save_pretrained(m, tmp_path / "old", meta={"dataset": "mnist"})
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["config"]["d_head"]
    cfg_path.write_text(json.dumps(cfg))
    assert ckpt.from_pretrained(tmp_path / "old").config.d_head == "sum"


def test_conditional_labels_checked():
    m = build("dcgan", tiny=True)
    with pytest.raises(ValueError):
        m.sample(2, labels=torch.tensor([0, 10]))
    with pytest.raises(ValueError):
        build("vae", tiny=True).sample(2, labels=torch.tensor([0, 1]))


# -- checkpoints -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_save_load_round_trip(kind, tmp_path):
    m = build(kind, tiny=True)
    ckpt.save_pretrained(m, tmp_path / "m", meta={"dataset": "mnist"})
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"config.json", "model.safetensors", "README.md", "metrics.json"}
    m2 = ckpt.from_pretrained(tmp_path / "m")
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    assert torch.equal(m.eval().sample(6, generator=g()), m2.sample(6, generator=g()))


def _saved(tmp_path):
    d = tmp_path / "m"
    ckpt.save_pretrained(build("vae", tiny=True), d, meta={"dataset": "mnist"})
    return d


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(Path(d).iterdir())}


def test_pickle_checkpoint_refused_without_unpickling(tmp_path):
    d = _saved(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    (d / "model.safetensors").write_bytes(pickle.dumps(Evil()))
    torch.save({"x": torch.zeros(2)}, tmp_path / "t.pt")
    before = _snapshot(d)
    with pytest.raises(ckpt.CheckpointError, match="this is a pickled torch checkpoint, not safetensors; refusing to unpickle it$"):
        ckpt.from_pretrained(d)
    assert not marker.exists()
    (d / "model.safetensors").write_bytes((tmp_path / "t.pt").read_bytes())
    with pytest.raises(ckpt.CheckpointError, match="this is a pickled torch checkpoint, not safetensors; refusing to unpickle it$"):
        ckpt.from_pretrained(d)
    assert _snapshot(d).keys() == before.keys()


def test_truncated_and_wrong_shape_and_nan_refused(tmp_path):
    d = _saved(tmp_path)
    raw = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ckpt.CheckpointError, match="safetensors"):
        ckpt.from_pretrained(d)
    # wrong shapes: weights of a wider model under this config
    from safetensors.torch import save_file
    other = build("vae", tiny=True, latent_dim=6)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(d / "model.safetensors"))
    before = _snapshot(d)
    with pytest.raises(ckpt.CheckpointError, match="shape"):
        ckpt.from_pretrained(d)
    assert _snapshot(d) == before
    m = build("vae", tiny=True)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    next(iter(sd.values()))[0] = float("nan")
    save_file(sd, str(d / "model.safetensors"))
    with pytest.raises(ckpt.CheckpointError, match="NaN"):
        ckpt.from_pretrained(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ckpt.CheckpointError, match="JSON"):
        ckpt.from_pretrained(d)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.json"
    ckpt.atomic_write_json(p, {"a": 1})
    with pytest.raises(RuntimeError):
        with ckpt.atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert json.loads(p.read_text()) == {"a": 1}
    assert [x.name for x in tmp_path.iterdir()] == ["f.json"]


# -- training --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_two_step_run_writes_run_folder(kind, tmp_path):
    out = tmp_path / "run"
    model_dir = train(TrainOptions(model=kind, data="toy", out=str(out), max_steps=2, batch_size=16, tiny=True,
                                   log_every=1, sample_every=2, progress=False), data=small_data())
    assert (out / "options.json").is_file() and (out / "state.pt").is_file()
    stats = [json.loads(l) for l in (out / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [1, 2]
    assert (out / "samples" / "step-0000002.png").is_file()
    m = ckpt.from_pretrained(model_dir)
    assert m.meta["trained_steps"] == 2
    with pytest.raises(ValueError, match="already holds a run"):
        train(TrainOptions(model=kind, data="toy", out=str(out), max_steps=2, batch_size=16, tiny=True,
                           progress=False), data=small_data())


@pytest.mark.parametrize("kind", ["vae", "dcgan"])
def test_resume_continues_at_the_right_step_with_the_same_state(kind, tmp_path):
    common = dict(model=kind, data="toy", batch_size=16, tiny=True, log_every=1, progress=False, lr_decay=False)
    straight = train(TrainOptions(out=str(tmp_path / "a"), max_steps=4, **common), data=small_data())
    train(TrainOptions(out=str(tmp_path / "b"), max_steps=2, **common), data=small_data())
    resumed = train(TrainOptions(out=str(tmp_path / "b"), max_steps=4, **common), data=small_data(),
                    resume=str(tmp_path / "b"))
    a, b = ckpt.load_weights(straight / "model.safetensors"), ckpt.load_weights(resumed / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_resume_of_a_run_that_predates_a_config_field(tmp_path):
    """New runs record the value of every field whose default changed (d_head); a run folder from
    before the field existed resumes with the old value instead of failing on mismatched weights.
    The same for training options (mode_seeking)."""
    common = dict(model="dcgan", data="toy", batch_size=16, tiny=True, log_every=1, progress=False)
    train(TrainOptions(out=str(tmp_path / "r"), max_steps=1, config={"d_head": "sum"}, **common), data=small_data())
    opts_path = tmp_path / "r" / "options.json"
    saved = json.loads(opts_path.read_text())
    assert saved["config"] == {"d_head": "sum"}
    del saved["config"]["d_head"]                      # as written before the field existed
    opts_path.write_text(json.dumps(saved))
    out = train(TrainOptions(out=str(tmp_path / "r"), max_steps=2, **common), data=small_data(),
                resume=str(tmp_path / "r"))
    assert ckpt.from_pretrained(out).config.d_head == "sum"
    new = train(TrainOptions(out=str(tmp_path / "n"), max_steps=1, **common), data=small_data())
    assert json.loads((tmp_path / "n" / "options.json").read_text())["config"] == {"d_head": "dense"}
    # an option whose default changed (mode_seeking) resumes with its old value when not recorded
    opts_path = tmp_path / "n" / "options.json"
    saved = json.loads(opts_path.read_text())
    assert saved["mode_seeking"] == 0.2
    del saved["mode_seeking"]
    opts_path.write_text(json.dumps(saved))
    train(TrainOptions(out=str(tmp_path / "n"), max_steps=2, **common), data=small_data(), resume=str(tmp_path / "n"))
    stats = [json.loads(l) for l in (tmp_path / "n" / "stats.jsonl").read_text().splitlines()]
    assert "ms_ratio" in stats[0] and "ms_ratio" not in stats[-1]
    assert json.loads(opts_path.read_text())["mode_seeking"] == 0.0
    assert ckpt.from_pretrained(new).config.d_head == "dense"


def test_a_run_records_its_learning_rate_and_an_older_dcgan_folder_resumes_with_2e4(tmp_path):
    """New runs write the learning rate they resolved (the kind's default) into options.json, so a
    later change of the default cannot change how they resume; a dcgan folder that says "lr": null
    was started when the default was 2e-4 and resumes with that."""
    from aigc.train.loop import Run
    from aigc.train.objectives import GAN_LR
    common = dict(model="dcgan", data="toy", batch_size=16, tiny=True, log_every=1, progress=False)
    train(TrainOptions(out=str(tmp_path / "g"), max_steps=1, **common), data=small_data())
    opts_path = tmp_path / "g" / "options.json"
    saved = json.loads(opts_path.read_text())
    assert saved["lr"] == GAN_LR == 4e-4 and saved["lr_d"] is None
    again = Run(TrainOptions(out=str(tmp_path / "g"), max_steps=2, **common), data=small_data(),
                resume=str(tmp_path / "g"))
    assert again.objective.base_lr == {"g": 4e-4, "d": 4e-4}
    saved["lr"] = None                                  # as written before runs recorded it
    opts_path.write_text(json.dumps(saved))
    old = Run(TrainOptions(out=str(tmp_path / "g"), max_steps=2, **common), data=small_data(),
              resume=str(tmp_path / "g"))
    assert old.objective.base_lr == {"g": 2e-4, "d": 2e-4} and old.opts.lr == 2e-4
    # a rate given on the command line is kept, and other kinds record their own default
    train(TrainOptions(out=str(tmp_path / "x"), max_steps=1, lr=1e-4, **common), data=small_data())
    assert json.loads((tmp_path / "x" / "options.json").read_text())["lr"] == 1e-4
    train(TrainOptions(out=str(tmp_path / "v"), max_steps=1, **{**common, "model": "vae"}), data=small_data())
    assert json.loads((tmp_path / "v" / "options.json").read_text())["lr"] == 1e-3


def test_resume_continues_the_clock_of_a_time_budget(tmp_path):
    """--max-minutes counts the whole run: the checkpoint records the time spent, and a resume whose
    budget that time already exhausts stops after a single step instead of starting a new clock."""
    common = dict(model="vae", data="toy", batch_size=16, tiny=True, log_every=1, progress=False)
    train(TrainOptions(out=str(tmp_path / "r"), max_steps=3, **common), data=small_data())
    spent = ckpt.load_state(tmp_path / "r" / "state.pt")["elapsed_s"]
    assert spent > 0
    train(TrainOptions(out=str(tmp_path / "r"), max_steps=1000, max_minutes=spent / 60, **common),
          data=small_data(), resume=str(tmp_path / "r"))
    stats = [json.loads(l) for l in (tmp_path / "r" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in stats] == [1, 2, 3, 4]
    assert stats[3]["time_s"] >= spent                       # the log's clock continues too
    assert ckpt.load_state(tmp_path / "r" / "state.pt")["elapsed_s"] > spent


def test_dcgan_non_saturating_loss_with_lazy_r1(tmp_path):
    """--gan-loss ns --r1 G: the logistic loss, and the R1 penalty on every r1_every-th step only
    (logged as r1), which changes the discriminator's update; an unknown loss is refused."""
    common = dict(model="dcgan", data="toy", batch_size=16, tiny=True, log_every=1, progress=False,
                  max_steps=4, diffaug=False)
    plain = train(TrainOptions(out=str(tmp_path / "ns"), gan_loss="ns", **common), data=small_data())
    r1 = train(TrainOptions(out=str(tmp_path / "r1"), gan_loss="ns", r1=10.0, r1_every=2, **common),
               data=small_data())
    stats = [json.loads(l) for l in (tmp_path / "r1" / "stats.jsonl").read_text().splitlines()]
    assert [("r1" in s) for s in stats] == [True, False, True, False]   # steps 0 and 2 of 0..3
    assert all(s["r1"] > 0 for s in stats if "r1" in s)
    plain_stats = [json.loads(l) for l in (tmp_path / "ns" / "stats.jsonl").read_text().splitlines()]
    assert not any("r1" in s for s in plain_stats)
    # step 0 is the same forward pass in both runs: the loss differs by exactly the scaled penalty
    assert stats[0]["d_loss"] == pytest.approx(plain_stats[0]["d_loss"] + 0.5 * 10.0 * 2 * stats[0]["r1"], rel=1e-4)
    a = ckpt.load_weights(plain / "model.safetensors")
    b = ckpt.load_weights(r1 / "model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("discriminator"))
    noisy = TrainOptions(out=str(tmp_path / "noisy"), gan_loss="ns", instance_noise=0.5, **common)
    train(noisy, data=small_data())
    noisy_stats = [json.loads(l) for l in (tmp_path / "noisy" / "stats.jsonl").read_text().splitlines()]
    assert noisy_stats[0]["d_loss"] != plain_stats[0]["d_loss"]     # D saw noisy images
    with pytest.raises(ValueError, match="unknown GAN loss"):
        train(TrainOptions(out=str(tmp_path / "bad"), gan_loss="wasserstein", **common), data=small_data())


def test_dcgan_mode_seeking_pairs_share_a_class_and_change_the_generator(tmp_path):
    """--mode-seeking L adds MSGAN's term to G's loss (logged as ms_ratio, the image distance over
    the latent distance of same-class pairs); G's update differs from the plain run's, D's first
    step does not (the term is G's only)."""
    common = dict(model="dcgan", data="toy", batch_size=16, tiny=True, log_every=1, progress=False,
                  max_steps=2, diffaug=False)
    plain = train(TrainOptions(out=str(tmp_path / "plain"), mode_seeking=0.0, **common), data=small_data())
    ms = train(TrainOptions(out=str(tmp_path / "ms"), mode_seeking=1.0, **common), data=small_data())
    stats = [json.loads(l) for l in (tmp_path / "ms" / "stats.jsonl").read_text().splitlines()]
    plain_stats = [json.loads(l) for l in (tmp_path / "plain" / "stats.jsonl").read_text().splitlines()]
    assert all(s["ms_ratio"] > 0 for s in stats) and not any("ms_ratio" in s for s in plain_stats)
    assert stats[0]["d_loss"] == plain_stats[0]["d_loss"]
    # step 0 is the same forward pass at weights 1 and 2: the G losses differ by exactly 1/ratio
    train(TrainOptions(out=str(tmp_path / "ms2"), mode_seeking=2.0, **common), data=small_data())
    stats2 = [json.loads(l) for l in (tmp_path / "ms2" / "stats.jsonl").read_text().splitlines()]
    assert stats2[0]["ms_ratio"] == stats[0]["ms_ratio"]
    assert stats2[0]["g_loss"] - stats[0]["g_loss"] == pytest.approx(1.0 / (stats[0]["ms_ratio"] + 1e-5), rel=1e-4)
    a = ckpt.load_weights(plain / "model.safetensors")
    b = ckpt.load_weights(ms / "model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("generator"))


def test_dcgan_minibatch_std_sees_how_varied_a_batch_is():
    """d_mbstd=G appends the batch's spread as a channel: a batch of one image repeated (a collapsed
    generator) and a varied batch with that image in it score that image differently; without
    the layer D scores each image on its own."""
    x = torch.rand(8, 1, 28, 28)
    same = x[:1].expand(8, 1, 28, 28).clone()
    labels = torch.zeros(8, dtype=torch.long)
    for mbstd, differs in ((4, True), (0, False)):
        torch.manual_seed(0)
        d = build("dcgan", tiny=True, d_mbstd=mbstd).discriminator.eval()
        with torch.no_grad():
            a, b = d(x, labels)[0].item(), d(same, labels)[0].item()
        assert (a != pytest.approx(b, abs=1e-6)) == differs
    with torch.no_grad():        # batches not divisible by the group fall back to a smaller group
        assert build("dcgan", tiny=True, d_mbstd=4).discriminator(torch.rand(6, 1, 28, 28), labels[:6]).shape == (6,)


def test_group_by_class_lays_out_groups_of_one_class(tmp_path):
    """With d_mbstd=G a conditional D compares G images of one class: the real batch is reordered
    so that images j, j+m, ... share a class (leftovers dropped), and training runs that way."""
    from aigc.train.objectives import group_by_class
    y = torch.tensor([0, 1, 0, 2, 1, 0, 3, 1, 2, 2, 0, 5, 1])
    x = torch.arange(len(y)).float().view(-1, 1, 1, 1)
    for g in (2, 3):
        xg, yg = group_by_class(x, y, g)
        m = len(yg) // g
        assert len(yg) == g * m and m == sum(int((y == c).sum()) // g for c in range(6))
        assert all(len({int(yg[j + i * m]) for i in range(g)}) == 1 for j in range(m))
        assert all(int(y[int(xg[k])]) == int(yg[k]) for k in range(len(yg)))     # images kept their labels
        assert len(set(xg.flatten().tolist())) == len(xg)                         # no image twice
    assert len(group_by_class(x[:3], torch.tensor([0, 1, 2]), 2)[0]) == 0
    run = train(TrainOptions(model="dcgan", data="toy", batch_size=16, tiny=True, log_every=1, progress=False,
                             max_steps=2, out=str(tmp_path / "pairs"), config={"d_mbstd": 2}), data=small_data())
    assert (run / "model.safetensors").is_file()


def test_vae_kl_warmup_fits_the_run(tmp_path):
    """A short run from scratch ramps the KL weight over its first fifth and ends on the full ELBO;
    a fine-tune from trained weights uses the full ELBO from the first step."""
    common = dict(model="vae", data="toy", batch_size=16, tiny=True, log_every=1, progress=False)
    new = train(TrainOptions(out=str(tmp_path / "new"), max_steps=10, **common), data=small_data())
    betas = [json.loads(l)["beta"] for l in (tmp_path / "new" / "stats.jsonl").read_text().splitlines()]
    assert betas[0] == 0.5 and betas[1:] == [1.0] * 9
    train(TrainOptions(out=str(tmp_path / "ft"), max_steps=3, init_from=str(new), **common), data=small_data())
    betas = [json.loads(l)["beta"] for l in (tmp_path / "ft" / "stats.jsonl").read_text().splitlines()]
    assert betas == [1.0, 1.0, 1.0]
    assert json.loads((tmp_path / "ft" / "options.json").read_text())["kl_warmup"] == 0


def test_a_fine_tune_records_what_it_started_from(tmp_path):
    """A model trained with init_from names its base (path, weights hash, the base's own train
    record) in config.json and keeps it through a resume even after the base folder is
    overwritten; its card tells the chain. A model saved before the record existed gets it from
    its run folder, but only while the base folder still holds older weights than its own (not,
    say, a copy of the model itself); shipping keeps each base's training record when the base is
    still what was recorded."""
    import shutil
    from scripts.shiputil import keep_lineage
    from aigc.finetune.cards import lineage_lines, write_card
    common = dict(model="vae", data="toy", batch_size=16, tiny=True, log_every=1, progress=False)
    a = train(TrainOptions(out=str(tmp_path / "a"), max_steps=2, **common), data=small_data())
    b = train(TrainOptions(out=str(tmp_path / "b"), max_steps=3, init_from=str(a), ckpt_every=1, **common),
              data=small_data())
    c = train(TrainOptions(out=str(tmp_path / "c"), max_steps=1, init_from=str(b), **common), data=small_data())
    hash_a, hash_b = ckpt.weights_hash(a), ckpt.weights_hash(b)
    rec = ckpt.read_config(b)["train"]["init_from"]
    assert rec["path"] == str(a) and rec["weights"] == hash_a and rec["train"]["steps"] == 2
    chain = ckpt.lineage(ckpt.read_config(c)["train"])
    assert [(r["path"], r["weights"]) for r in chain] == [(str(b), hash_b), (str(a), hash_a)]
    lines = lineage_lines(ckpt.read_config(c)["train"])
    assert lines[0].startswith(f"- fine-tuned from `{b}`, weights sha256 prefix `{hash_b}`: 3 steps")
    assert lines[1].startswith(f"- which was fine-tuned from `{a}`, weights sha256 prefix `{hash_a}`: 2 steps")
    assert lines[2] == "- in all: 6 steps over 3 stages" and len(lines) == 3
    assert lineage_lines({"steps": 4}) == []

    def strip(model):
        cfg = ckpt.read_config(model)
        cfg["train"].pop("init_from", None)
        ckpt.atomic_write_json(model / "config.json", cfg)
    # older models (no record in config.json): the run folders around them still say
    strip(b), strip(c)
    assert [(r["path"], r["weights"]) for r in ckpt.lineage(ckpt.train_record(c))] == [(str(b), hash_b), (str(a), hash_a)]
    staged = tmp_path / "staged"
    shutil.copytree(c, staged)
    keep_lineage(c, staged)
    assert len(ckpt.lineage(ckpt.read_config(staged)["train"])) == 2
    assert (staged / "training" / "base-1" / "stats.jsonl").is_file()
    assert json.loads((staged / "training" / "base-2" / "options.json").read_text())["out"] == str(tmp_path / "a")
    write_card(staged, title="t", summary="s", train_command="python -m aigc train", eval_command="e", hardware="h")
    assert f"- which was fine-tuned from `{a}`" in (staged / "README.md").read_text()

    # the base folder is overwritten with other weights
    train(TrainOptions(out=str(tmp_path / "a2"), max_steps=1, seed=5, **common), data=small_data())
    shutil.rmtree(a)
    shutil.copytree(tmp_path / "a2" / "model", a)
    os.utime(a / "model.safetensors")                      # written after b, as a replacement would be
    assert ckpt.weights_hash(a) != hash_a
    assert "init_from" not in ckpt.train_record(b)         # an older model: the chain stops, no guess
    assert "holds other weights now" in lineage_lines(ckpt.read_config(staged)["train"])[1]
    again = tmp_path / "again"
    shutil.copytree(c, again)
    shutil.copy2(staged / "config.json", again / "config.json")    # a model with the full record
    keep_lineage(c, again)
    assert not (again / "training" / "base-2").exists()    # a's folder is not a's any more
    # b resumes: it still names the weights it began with (from its saved state)
    train(TrainOptions(out=str(tmp_path / "b"), max_steps=4, **common), data=small_data(), resume=str(tmp_path / "b"))
    assert ckpt.read_config(b)["train"]["init_from"]["weights"] == hash_a
    # a run folder whose base path now holds a copy of the model itself: no loop
    (tmp_path / "x").mkdir()
    shutil.copytree(c, tmp_path / "x" / "model")
    shutil.copytree(c, tmp_path / "w")
    (tmp_path / "x" / "options.json").write_text(json.dumps({"init_from": str(tmp_path / "w")}))
    assert "init_from" not in ckpt.train_record(tmp_path / "x" / "model")
    # a base that is a shipped model: its training/ folder travels with the new one
    shipped = tmp_path / "weights" / "s"
    shutil.copytree(b, shipped)
    (shipped / "training").mkdir()
    (shipped / "training" / "stats.jsonl").write_text('{"step": 1}\n')
    m = tmp_path / "m"
    shutil.copytree(c, m)
    cfg = ckpt.read_config(m)
    cfg["train"]["init_from"] = ckpt.base_record(shipped)
    ckpt.atomic_write_json(m / "config.json", cfg)
    out = tmp_path / "m-staged"
    shutil.copytree(m, out)
    keep_lineage(m, out)
    assert (out / "training" / "base-1" / "stats.jsonl").read_text() == '{"step": 1}\n'
    # the ship scripts load what they import from shiputil; swap_in replaces a folder whole
    from scripts import ship_image, ship_text
    for script in (ship_image, ship_text):
        with pytest.raises(SystemExit) as e:
            script.main(["--help"])
        assert e.value.code == 0
    from scripts.shiputil import swap_in
    dest = tmp_path / "dest"
    for src in (out, m):
        swap_in(Path(shutil.copytree(src, tmp_path / "next")), dest)
        assert ckpt.weights_hash(dest) == ckpt.weights_hash(src) and not (tmp_path / "next").exists()
    assert not (tmp_path / ".dest.old").exists()


def test_vae_iwae_bound_trains_and_matches_the_nll_estimator(tmp_path):
    """--iwae-k k trains on the importance-weighted bound; the training forward's weights are the
    ones log_likelihood (the test-NLL estimator) averages, so the two agree on the same noise; the
    bound rises with k on average; bad k or a GAN with k > 1 is refused before any folder appears."""
    torch.manual_seed(0)
    vae = build("vae", tiny=True).eval()
    x = (torch.rand(6, 1, 28, 28) > 0.5).float()
    g = torch.Generator().manual_seed(3)
    ll = vae.log_likelihood(x, k=12, chunk=5, generator=g)
    g = torch.Generator().manual_seed(3)
    eps = torch.cat([torch.randn((n, 6, vae.latent_dim), generator=g) for n in (5, 5, 2)])
    with torch.no_grad():
        out = vae(x, eps=eps)
        w = out["log_px"] + out["log_ratio"]
        assert w.shape == (12, 6)
        assert torch.allclose(torch.logsumexp(w, 0) - np.log(12), ll, atol=1e-4)
        many = vae(x, eps=torch.randn(200, 6, vae.latent_dim, generator=g))
        wm = many["log_px"] + many["log_ratio"]
    k1 = wm.mean(0)                                         # the ELBO, averaged over 200 draws
    k50 = torch.stack([torch.logsumexp(c, 0) - np.log(50) for c in wm.split(50)]).mean(0)
    assert (k50 > k1).all()
    common = dict(model="vae", data="toy", batch_size=16, tiny=True, log_every=1, progress=False)
    run = train(TrainOptions(out=str(tmp_path / "iw"), max_steps=3, iwae_k=4, **common), data=small_data())
    rows = [json.loads(l) for l in (tmp_path / "iw" / "stats.jsonl").read_text().splitlines()]
    assert [r["iwae_k"] for r in rows] == [4, 4, 4] and all(np.isfinite(r["loss"]) for r in rows)
    assert json.loads((tmp_path / "iw" / "options.json").read_text())["iwae_k"] == 4
    assert (run / "model.safetensors").is_file()
    for bad, opts in ((0, common), (2.5, common), (2, {**common, "model": "dcgan"})):
        with pytest.raises(ValueError, match="iwae"):
            train(TrainOptions(out=str(tmp_path / "bad"), max_steps=1, iwae_k=bad, **opts), data=small_data())
        assert not (tmp_path / "bad").exists()


def test_same_seed_same_samples():
    m = build("dcgan", tiny=True)
    pipe = ImagePipeline(m, name="t")
    a, b, c = pipe(n=8, seed=3), pipe(n=8, seed=3), pipe(n=8, seed=4)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert list(a.labels) == [0, 1, 2, 3, 4, 5, 6, 7]


# -- shipped models --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_loads_samples_and_has_a_card(name):
    d = ROOT / "weights" / name
    pipe = ImagePipeline.from_pretrained(name)
    s = pipe(n=4, seed=0)
    assert s.images.shape == (4, 28, 28, 1) and s.images.std() > 5
    card = (d / "README.md").read_text()
    metrics = json.loads((d / "metrics.json").read_text())
    assert "fid" in metrics and f"{metrics['fid']:.2f}" in card
    assert "python -m aigc train" in card and "python -m aigc eval" in card


# -- CLI -------------------------------------------------------------------------------------------
def test_cli_sample_png_and_npz(tmp_path):
    d = tmp_path / "m"
    ckpt.save_pretrained(build("dcgan", tiny=True), d, meta={"dataset": "mnist"})
    r = cli("sample", str(d), "--n", "6", "--seed", "1", "--out", str(tmp_path / "a.npz"), "--label", "3")
    assert r.returncode == 0, r.stderr
    f = np.load(tmp_path / "a.npz")
    assert f["images"].shape == (6, 28, 28, 1) and f["images"].dtype == np.uint8 and list(f["labels"]) == [3] * 6
    cli("sample", str(d), "--n", "6", "--seed", "1", "--out", str(tmp_path / "b.npz"), "--label", "3")
    assert np.array_equal(f["images"], np.load(tmp_path / "b.npz")["images"])
    assert cli("sample", str(d), "--n", "4", "--out", str(tmp_path / "g.png")).returncode == 0
    assert (tmp_path / "g.png").stat().st_size > 0


@pytest.mark.parametrize("args,msg", [
    (["sample", "no-such-model", "--out", "x.png"], "no saved model"),
    (["sample", "dcgan-mnist", "--out", "x.gif"], ".png"),
    (["sample", "dcgan-mnist", "--out", "x.png", "--label", "11"], "label"),
    (["sample", "dcgan-mnist", "--out", "x.png", "--n", "0"], "n must be"),
    (["train", "--model", "nope", "--data", "mnist", "--out", "r", "--max-steps", "1"], "unknown model kind"),
    (["train", "--model", "vae", "--data", "cifar", "--out", "r", "--max-steps", "1"], "unknown dataset"),
    (["train", "--model", "vae", "--data", "mnist", "--out", "r"], "budget"),
    (["train", "--resume", "/nonexistent"], "state.pt"),
    (["eval", "vae-mnist", "--metrics", "bogus", "--n", "10"], "bogus"),
])
def test_cli_bad_input_exits_2_with_one_line(args, msg, tmp_path):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], r.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "x.png").exists()


def test_cli_list_json():
    r = cli("list", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    names = {row["name"] for row in rows}
    assert set(SHIPPED) <= names
    for row in rows:
        assert {"name", "kind", "modality", "dataset", "metrics"} <= set(row)


@pytest.mark.slow          # a process of its own (interpreter + torch start-up): the full tier
def test_ctrl_c_saves_a_checkpoint_before_exiting(tmp_path):
    import signal
    import time
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    args = ["-m", "aigc", "train", "--model", "vae", "--data", "mnist", "--tiny", "--out", str(out),
            "--max-steps", "100000", "--batch-size", "16", "--log-every", "1", "--ckpt-every", "100000",
            "--no-progress"]
    # a background shell (`nohup make test &`) starts children with SIGINT ignored, which survives exec:
    # a small launcher restores the default, as a terminal's Ctrl-C would find it (no preexec_fn: it is
    # unsafe while this process has threads)
    launcher = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")
    p = subprocess.Popen([sys.executable, "-c", launcher, *args], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not ((out / "stats.jsonl").exists() and (out / "stats.jsonl").read_text().count("\n") >= 3):
            if p.poll() is not None:
                pytest.fail(f"the run ended before Ctrl-C (returncode {p.returncode}): {p.stderr.read()[-2000:]}")
            time.sleep(0.2)
        lines = (out / "stats.jsonl").read_text().count("\n") if (out / "stats.jsonl").exists() else 0
        p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not end within 120 s of Ctrl-C (it had logged {lines} steps when "
                        f"the signal was sent; returncode {p.poll()})")
    finally:
        p.kill()
    assert p.returncode == 130 and "saving a checkpoint" in err, err
    state = ckpt.load_state(out / "state.pt")
    assert state["step"] >= 3
    assert ckpt.from_pretrained(out / "model").meta["trained_steps"] == state["step"]
