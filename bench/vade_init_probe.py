"""Can a better start lift VaDE's clustering on MNIST? An experiment beside bench/vade_fit.py (not the
shipped recipe): pretrain the MLP autoencoder on randomly rotated (+-10 degrees) and shifted (+-10%)
digits, as DEC-DA does (Guo et al. 2018), and score the codes of all 70,000 images at checkpoints by

  - the diagonal GMM the recipe fits (aigc.train.vade_init.fit_diag_gmm), and
  - spectral clustering of their 15-nearest-neighbour graph (aigc.train.vade_init.spectral_partition):
    a partition a GMM in code space cannot draw when the digits are not Gaussian blobs;

then, with --elbo N, start the prior from the spectral partition of the training codes (one M-step; with
--guide E, after E ELBO passes with q(c|x) fixed to the groups, as `--prior-guide-epochs`) and run N ELBO
epochs (the paper's Adam 2e-3, x0.9 every 5 epochs), printing the test accuracy each epoch.

    python -m bench.vade_init_probe --epochs 30 --elbo 5 [--augment 1.0] [--threads 1] [--save ae.safetensors]
    python -m bench.vade_init_probe --load ae.safetensors --elbo 5 --elbo-lr 2e-4 [--prior-lr 0] [--guide 8]

One JSON line per checkpoint / epoch (with --load, first the loaded codes' spectral groups on the training
images). Measured: see bench/README.md ("VaDE: a better start": figures from this script's first version, commit
981393a, with its own copies of the pretraining loop, the augmentation and the spectral clustering; "Guided passes
and a second start" and "The merge that joined 4 with 9": this version).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from aigc.configs.vade import PRESETS
from aigc.data.images import load_dataset
from aigc.eval.cluster import cluster_accuracy, nmi
from aigc.models.vade import VaDE, VaDEConfig
from aigc.train.vade_init import (encode_means, fit_diag_gmm, init_prior, pretrain_autoencoder,
                                  spectral_partition)
from bench.vade_fit import as_tensor, elbo_epoch, scores


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20, help="autoencoder epochs")
    p.add_argument("--augment", type=float, default=1.0, help="strength of the rotations and shifts (0: none)")
    p.add_argument("--elbo", type=int, default=0, help="ELBO epochs from the spectral start (0: none)")
    p.add_argument("--neighbours", type=int, default=15)
    p.add_argument("--checkpoints", default="5,10,20,30,45,60,80,100", help="epochs to score the codes at (and the last)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--elbo-lr", type=float, default=2e-3, help="the ELBO's Adam rate (the paper's 2e-3)")
    p.add_argument("--prior-lr", type=float, default=None, help="the mixture's own rate (default: --elbo-lr; 0: fixed)")
    p.add_argument("--guide", type=float, default=0.0,
                   help="ELBO passes with q(c|x) fixed to the spectral groups before the ELBO (as --prior-guide-epochs)")
    p.add_argument("--save", help="write the pretrained autoencoder here (.safetensors)")
    p.add_argument("--load", help="start from this pretrained autoencoder (.safetensors) instead of pretraining")
    a = p.parse_args(argv)
    checkpoints = {int(e) for e in a.checkpoints.split(",") if e.strip()}
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    x_train, x_test = as_tensor(train), as_tensor(test)
    x_all, y_all = torch.cat([x_train, x_test]), np.concatenate([train.labels, test.labels])
    model = VaDE(VaDEConfig(**PRESETS["mnist"]))
    c0 = time.process_time()

    def score_codes(epoch: int, _loss: float) -> None:
        epoch += 1
        if epoch not in checkpoints and epoch != a.epochs:
            return
        z = encode_means(model, x_all)
        gm = fit_diag_gmm(z, 10, seed=0, n_init=3).assign(z).numpy()
        spc = spectral_partition(z, 10, neighbours=a.neighbours, seed=a.seed).numpy()
        print(json.dumps({"epoch": epoch, "cpu_min": round((time.process_time() - c0) / 60, 1),
                          "gmm_acc": round(cluster_accuracy(y_all, gm), 4), "gmm_nmi": round(nmi(y_all, gm), 4),
                          "spectral_acc": round(cluster_accuracy(y_all, spc), 4),
                          "spectral_nmi": round(nmi(y_all, spc), 4)}), flush=True)

    if a.load:
        model.load_state_dict(load_file(a.load))
        z = encode_means(model, x_train)                 # the loaded codes' groups, training images only
        spc = spectral_partition(z, 10, neighbours=a.neighbours, seed=a.seed).numpy()
        print(json.dumps({"loaded": a.load, "train_spectral_acc": round(cluster_accuracy(train.labels, spc), 4)}),
              flush=True)
    else:
        pretrain_autoencoder(model, x_train, a.epochs, seed=a.seed, augment=a.augment, on_epoch=score_codes)
    if a.save:
        save_file(model.state_dict(), a.save)
    if not a.elbo:
        return
    fit = init_prior(model, x_train, seed=a.seed, method="spectral", neighbours=a.neighbours, guide_epochs=a.guide)
    print(json.dumps({"stage": "prior from the spectral partition", "guide_epochs": a.guide,
                      "groups_acc": round(cluster_accuracy(train.labels, fit.labels.numpy()), 4),
                      **scores(model, x_test, test.labels),
                      "cpu_min": round((time.process_time() - c0) / 60, 1)}), flush=True)
    prior = [q for n, q in model.named_parameters() if n.startswith("prior_")]
    body = [q for n, q in model.named_parameters() if not n.startswith("prior_")]
    prior_lr = a.elbo_lr if a.prior_lr is None else a.prior_lr
    for q in prior:
        q.requires_grad_(prior_lr > 0)
    groups = [{"params": body}] + ([{"params": prior, "lr": prior_lr}] if prior_lr > 0 else [])
    opt = torch.optim.Adam(groups, lr=a.elbo_lr, eps=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, 5, 0.9)
    for epoch in range(a.elbo):
        logs = elbo_epoch(model, opt, x_train, 100, g, False)
        sched.step()
        print(json.dumps({"elbo_epoch": epoch, **logs, **scores(model, x_test, test.labels),
                          "cpu_min": round((time.process_time() - c0) / 60, 1)}), flush=True)


if __name__ == "__main__":
    main()
