"""aigc.legacy: shipped weights and files written by older versions still load and resume."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from aigc import checkpoint as ckpt
from aigc import legacy
from aigc.data import ImageData
from aigc.kinds import get_kind, make_config
from aigc.train.loop import TrainOptions, train

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.parent.name for p in (ROOT / "weights").glob("*/config.json"))


def small_data(n=32):
    rng = np.random.default_rng(0)
    return ImageData("toy", rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), np.arange(n) % 10,
                     [str(i) for i in range(10)])


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_builds_the_network_its_weights_fit(name):
    """Each weights/<name>/config.json, upgraded, builds a module whose tensors have exactly the
    names and shapes stored in model.safetensors (read from the header, no weights loaded)."""
    d = ROOT / "weights" / name
    cfg = ckpt.read_config(d)
    config = make_config(cfg["kind"], **legacy.upgrade_model_config(cfg["kind"], cfg["config"]))
    expected = {k: tuple(v.shape) for k, v in get_kind(cfg["kind"]).model_cls(config).state_dict().items()}
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert stored == expected


def test_a_hand_written_old_config_json_loads_with_its_old_meaning(tmp_path):
    """A dcgan config.json from before d_head and d_mbstd existed: the sum head, no minibatch std."""
    from safetensors.torch import save_file
    torch.manual_seed(0)
    model = get_kind("dcgan").model_cls(make_config("dcgan", tiny=True, d_head="sum"))
    (tmp_path / "old").mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "old" / "model.safetensors"))
    old = {"format": "aigc-model/1", "kind": "dcgan", "modality": "image", "aigc_version": "0.1.0",
           "dataset": "mnist", "config": {"resolution": 28, "channels": 1, "latent_dim": 8, "ngf": 8, "ndf": 8,
                                          "num_classes": 10, "class_names": [], "embed_dim": 4}}
    (tmp_path / "old" / "config.json").write_text(json.dumps(old))
    loaded = ckpt.from_pretrained(tmp_path / "old")
    assert loaded.config.d_head == "sum" and loaded.config.d_mbstd == 0
    z = torch.zeros(2, 8)
    assert torch.equal(loaded.decode(z, torch.tensor([1, 2])), model.eval().decode(z, torch.tensor([1, 2])))


def test_a_hand_written_old_run_folder_resumes(tmp_path):
    """options.json as an older version wrote it ("lr": null, total_steps and steps_per_epoch
    saved, no mode_seeking, no d_head) and a state.pt without the run clock: the run resumes with
    the values it was started with, and options.json is rewritten in the current layout."""
    run = tmp_path / "r"
    train(TrainOptions(model="dcgan", data="toy", out=str(run), max_steps=1, batch_size=16, tiny=True, lr=2e-4,
                       mode_seeking=0.0, config={"d_head": "sum"}, progress=False), data=small_data())
    old = {"model": "dcgan", "data": "toy", "out": str(run), "epochs": None, "max_steps": 1, "max_minutes": None,
           "batch_size": 16, "lr": None, "lr_scale": True, "lr_decay": True, "warmup": 0, "kl_warmup": None,
           "iwae_k": 1, "ema_decay": 0.999, "diffaug": True, "diffaug_policy": "color,translation,cutout",
           "lr_d": None, "gan_loss": "hinge", "r1": 0.0, "r1_every": 4, "adam_beta1": None, "instance_noise": 0.0,
           "device": "cpu", "precision": "auto", "compile": False, "channels_last": False, "seed": 0,
           "log_every": 50, "sample_every": 500, "ckpt_every": 1000, "eval_every": 0, "eval_metric": "domain_fd",
           "eval_n": 2000, "eval_budget": 0.0, "eval_at_start": False, "target": None, "stop_at_target": False,
           "tiny": True, "config": {}, "init_from": None, "progress": False, "total_steps": 1, "steps_per_epoch": 2}
    (run / "options.json").write_text(json.dumps(old))
    state = ckpt.load_state(run / "state.pt")
    del state["elapsed_s"]
    ckpt.save_state(run / "state.pt", state)
    out = train(TrainOptions(max_steps=2), data=small_data(), resume=str(run))
    saved = json.loads((run / "options.json").read_text())
    assert saved["lr"] == 2e-4 and saved["mode_seeking"] == 0.0 and saved["config"] == {"d_head": "sum"}
    assert "total_steps" not in saved and "steps_per_epoch" not in saved
    assert ckpt.from_pretrained(out).config.d_head == "sum" and ckpt.load_state(run / "state.pt")["step"] == 2
    (run / "options.json").write_text(json.dumps({**old, "no_such_option": 1}))
    with pytest.raises(ValueError, match="no_such_option"):
        train(TrainOptions(max_steps=3), data=small_data(), resume=str(run))


def test_run_folder_base_names_what_an_old_model_was_started_from(tmp_path):
    (tmp_path / "model").mkdir()
    assert legacy.run_folder_base(tmp_path / "model") is None
    (tmp_path / "options.json").write_text(json.dumps({"init_from": "weights/vae-mnist"}))
    assert legacy.run_folder_base(tmp_path / "model") == "weights/vae-mnist"
    assert legacy.run_folder_base(tmp_path) is None            # only a run folder's model/ qualifies
