"""Train VaDE on MNIST with the paper's recipe (Jiang et al. 2017) sized for a small CPU, and print
unsupervised clustering accuracy and NMI on the 10,000 test images after the GMM initialisation
and after every ELBO epoch.

    python bench/vade_fit.py [--arch mlp|conv] [--pretrain-epochs 10] [--epochs 40] [--threads 2]
                             [--limit N] [--recipe cpu]

The steps: pretrain the body as an autoencoder (Adam), fit a diagonal GMM to the codes and copy it
into the prior, then maximise the ELBO with Adam and a step decay of the rate. `--limit` trains on
the first N training images only (timing runs). One JSON line per stage; the last line is a summary
with the seconds per pretrain and per ELBO epoch, wall clock and CPU time (on a shared machine
the CPU time of a one-thread run is the uncontended wall time).

Measured (one thread, CPU seconds per epoch over 60,000 images; timing runs on 12,000): mlp body
pretrain 23.5, ELBO 25.5; conv body pretrain 158, ELBO 129; the GMM fit (3 starts) ~10.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from aigc.configs.vade import PRESETS, RECIPES
from aigc.data.images import load_dataset
from aigc.eval.cluster import cluster_accuracy, nmi
from aigc.models.vade import VaDE, VaDEConfig
from aigc.train.vade_init import init_prior, pretrain_autoencoder


def as_tensor(data) -> torch.Tensor:
    return torch.from_numpy(data.images.copy()).permute(0, 3, 1, 2).contiguous()     # uint8 N x C x H x W


def scores(model, images: torch.Tensor, labels) -> dict:
    model.eval()
    pred = model.predict(images.float().div(255.0)).numpy()
    model.train()
    return {"acc": round(cluster_accuracy(labels, pred), 4), "nmi": round(nmi(labels, pred), 4)}


def elbo_epoch(model, opt, images: torch.Tensor, batch_size: int, g: torch.Generator, binarize: bool) -> dict:
    model.train()
    order = torch.randperm(images.shape[0], generator=g)
    sums = {"loss": 0.0, "rec": 0.0, "kl": 0.0}
    for i in range(0, len(order), batch_size):
        x = images[order[i:i + batch_size]].float().div(255.0)
        if binarize:
            x = torch.bernoulli(x, generator=g)
        eps = torch.randn(x.shape[0], model.latent_dim, generator=g)
        out = model(x, eps=eps)
        loss = (out["rec"] + out["kl"]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for k, v in (("loss", loss), ("rec", out["rec"].mean()), ("kl", out["kl"].mean())):
            sums[k] += v.item() * x.shape[0]
    return {k: round(v / images.shape[0], 2) for k, v in sums.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="cpu", choices=sorted(RECIPES))
    p.add_argument("--arch", choices=["mlp", "conv"])
    p.add_argument("--pretrain-epochs", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="train on the first N images only (timing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--binarize", action="store_true", help="dynamically binarise the ELBO's targets")
    a = p.parse_args(argv)
    r = dict(RECIPES[a.recipe])
    for key in ("arch", "pretrain_epochs", "epochs", "batch_size", "lr"):
        if getattr(a, key) is not None:
            r[key] = getattr(a, key)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train = as_tensor(load_dataset("mnist", "train"))
    if a.limit:
        train = train[:a.limit]
    test = load_dataset("mnist", "test")
    test_x, test_y = as_tensor(test), test.labels
    model = VaDE(VaDEConfig(**{**PRESETS["mnist"], "arch": r["arch"]}))
    t0, c0 = time.perf_counter(), time.process_time()
    pre = pretrain_autoencoder(model, train, r["pretrain_epochs"], batch_size=r["pretrain_batch_size"],
                               lr=r["pretrain_lr"], seed=a.seed,
                               on_epoch=lambda e, v: print(json.dumps({"pretrain_epoch": e, "loss": round(v, 2)}),
                                                           flush=True))
    t_pre, c_pre = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    fit = init_prior(model, train, seed=a.seed, n_init=r["gmm_n_init"])
    t_gmm, c_gmm = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"stage": "gmm", "seconds": round(t_gmm, 1), "gmm_ll": round(fit.log_likelihood, 3),
                      **scores(model, test_x, test_y)}), flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=r["lr"], eps=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, r["lr_decay_every"], r["lr_decay_gamma"])
    g = torch.Generator().manual_seed(a.seed + 1)
    t_elbo, c_elbo, last = 0.0, 0.0, {}
    for epoch in range(r["epochs"]):
        t0, c0 = time.perf_counter(), time.process_time()
        logs = elbo_epoch(model, opt, train, r["batch_size"], g, a.binarize)
        sched.step()
        t_elbo, c_elbo = t_elbo + time.perf_counter() - t0, c_elbo + time.process_time() - c0
        last = scores(model, test_x, test_y)
        print(json.dumps({"epoch": epoch, **logs, **last, "lr": sched.get_last_lr()[0]}), flush=True)
    n_pre, n_elbo = max(1, r["pretrain_epochs"]), max(1, r["epochs"])
    print(json.dumps({"summary": True, "recipe": r, "train_images": int(train.shape[0]), "threads": a.threads,
                      "s_per_pretrain_epoch": round(t_pre / n_pre, 1), "s_gmm": round(t_gmm, 1),
                      "s_per_elbo_epoch": round(t_elbo / n_elbo, 1),
                      "cpu_s": {"pretrain_epoch": round(c_pre / n_pre, 1), "gmm": round(c_gmm, 1),
                                "elbo_epoch": round(c_elbo / n_elbo, 1)},
                      "pretrain_loss": round(pre[-1], 2) if pre else None, **last}), flush=True)


if __name__ == "__main__":
    main()
