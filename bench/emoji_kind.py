"""Issue 5, target 1: are a model's samples *clearly of the upload's kind*? A judge trained for it.

    python bench/emoji_kind.py MODEL_DIR [MODEL_DIR ...] [--n 500]

The colour benchmark's upload is 500 emoji faces and heads (bench/make_colour_upload.py). The
random-conv KID tracked during training separates "noise / wrong palette" from "right kind" but
saturates early and rewards texture statistics over shape (a speckled GAN beats a blurry but
recognisable VAE on it), so this script asks a different question with a classifier:

  * positives: emoji faces and heads (the same rule as the upload: "face-*" smileys, cat and monkey
    faces, "person" and "person-role" emoji with their skin tones); negatives: every other Noto emoji
    (food, objects, places, animals, symbols, flags, activities, hands and bodies ...);
  * more negatives: the upload's own images cut into 16 tiles and shuffled (same colours and local
    texture, no face layout), so that palette alone does not pass;
  * trained on the 500 upload images and half of the negatives, tested on the 290 faces that are NOT
    in the upload, on the other half of the negatives and on scrambled held-out faces;
  * blur (sigma 0-1.5 px), shifts and flips are applied to both classes in training, so blur is not
    a cue and a blurry picture is judged by its shapes and colours.

It prints the judge's accuracy on held-out real emoji, then for each model the share of N fresh
samples (seed 1) it calls a face or head, with the same figure for held-out real faces and for
other emoji as the scale. With --inception N, also the standard Inception network's KID against
the upload, for N samples of each model and, as the scale, for faces not in the upload (the level
of new pictures of the same kind) and for other emoji. Nothing is downloaded: the npm tarball must be in runs/colour/ (see
make_colour_upload.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

from make_colour_upload import VERSION, emoji_images, flatten, wanted  # noqa: E402

from aigc.checkpoint import from_pretrained  # noqa: E402
from aigc.eval import generate_samples  # noqa: E402


def load_emoji(tarball: Path):
    """(names, 32x32x3 uint8 images flattened on white, is_face) for every Noto emoji and skin tone."""
    names, imgs, face = [], [], []
    for e, f, raw in emoji_images(tarfile.open(tarball)):
        imgs.append(flatten(raw))
        names.append(f)
        face.append(wanted(e))
    return names, np.stack(imgs), np.array(face)


class Judge(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(0.3), nn.Linear(128, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random blur (sigma 0-1.5), shift (+-3 px, white fill) and horizontal flip, per image."""
    n = x.shape[0]
    out = torch.empty_like(x)
    for i in range(n):
        xi = x[i:i + 1]
        sigma = float(torch.rand((), generator=g)) * 1.5
        if sigma > 0.2:
            r = 3
            k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
            k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
            xi = F.pad(xi, (r, r, 0, 0), mode="replicate")
            xi = F.conv2d(xi, k, groups=3)
            xi = F.pad(xi, (0, 0, r, r), mode="replicate")
            xi = F.conv2d(xi, k.transpose(2, 3), groups=3)
        dx, dy = (int(v) for v in torch.randint(-3, 4, (2,), generator=g))
        xi = torch.roll(F.pad(xi, (3, 3, 3, 3), value=1.0), (dy, dx), (2, 3))[:, :, 3:-3, 3:-3]
        if torch.rand((), generator=g) < 0.5:
            xi = xi.flip(3)
        out[i] = xi[0]
    return out


def scramble(images: np.ndarray, seed: int) -> np.ndarray:
    """Each image cut into a 4x4 grid of 8x8 tiles, the tiles shuffled: the same colours and local
    texture as a face, but not its layout. As negatives they make the judge look at structure."""
    rng = np.random.default_rng(seed)
    n = len(images)
    tiles = images.reshape(n, 4, 8, 4, 8, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, 16, 8, 8, 3)
    out = np.stack([t[rng.permutation(16)] for t in tiles])
    return np.ascontiguousarray(out.reshape(n, 4, 4, 8, 8, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, 32, 32, 3))


def train_judge(pos: np.ndarray, neg: np.ndarray, epochs: int = 25, seed: int = 0) -> Judge:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = to_tensor(np.concatenate([pos, neg]))
    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
    w = torch.where(y > 0, len(neg) / len(pos), 1.0)          # balance the two classes
    judge = Judge()
    opt = torch.optim.AdamW(judge.parameters(), lr=2e-3, weight_decay=1e-4)
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for s in range(0, len(x), 64):
            idx = perm[s:s + 64]
            loss = F.binary_cross_entropy_with_logits(judge(augment(x[idx], g)), y[idx], weight=w[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return judge.eval()


@torch.no_grad()
def face_rate(judge: Judge, images: np.ndarray) -> tuple[float, float]:
    """(share judged a face or head, mean probability)."""
    p = torch.sigmoid(torch.cat([judge(to_tensor(images[s:s + 256])) for s in range(0, len(images), 256)]))
    return float((p > 0.5).float().mean()), float(p.mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="model folders (a run's model/, a user model)")
    ap.add_argument("--zip", default=str(ROOT / "runs" / "colour" / "emoji-faces-500.zip"), help="the upload")
    ap.add_argument("--tarball", default=str(ROOT / "runs" / "colour" / f"emoji-datasource-google-{VERSION}.tgz"))
    ap.add_argument("--n", type=int, default=500, help="fresh samples per model (seed 1)")
    ap.add_argument("--epochs", type=int, default=25, help="the judge's training epochs")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--inception", type=int, default=0, metavar="N",
                    help="also Inception KID against the upload for N samples per model (0: skip; ~8 images/s on a CPU)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if not Path(a.tarball).is_file():
        print(f"{a.tarball}: missing; see bench/make_colour_upload.py", file=sys.stderr)
        return 2
    names, imgs, face = load_emoji(Path(a.tarball))
    upload = set(zipfile.ZipFile(a.zip).namelist())
    in_upload = np.array([n in upload for n in names])
    if in_upload.sum() != len(upload):
        print(f"only {in_upload.sum()} of the {len(upload)} upload files found in the tarball", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    neg_idx = rng.permutation(np.flatnonzero(~face))
    neg_train, neg_test = neg_idx[: len(neg_idx) // 2], neg_idx[len(neg_idx) // 2:]
    pos_train, pos_test = np.flatnonzero(in_upload), np.flatnonzero(face & ~in_upload)
    print(f"emoji: {len(names)} images ({face.sum()} faces and heads, {(~face).sum()} other); "
          f"judge trained on the {len(pos_train)} upload images + {len(neg_train)} other emoji, "
          f"tested on {len(pos_test)} faces not in the upload + {len(neg_test)} other emoji")
    judge = train_judge(imgs[pos_train], np.concatenate([imgs[neg_train], scramble(imgs[pos_train], 1)]),
                        epochs=a.epochs)
    tp, _ = face_rate(judge, imgs[pos_test])
    fp, _ = face_rate(judge, imgs[neg_test])
    fs, _ = face_rate(judge, scramble(imgs[pos_test], 2))
    out = {"judge": {"heldout_faces_called_face": tp, "heldout_other_called_face": fp,
                     "heldout_scrambled_faces_called_face": fs,
                     "train_pos": int(len(pos_train)), "train_neg": int(len(neg_train)),
                     "test_pos": int(len(pos_test)), "test_neg": int(len(neg_test))}, "models": {}}
    print(f"judge on held-out real emoji: {100 * tp:.1f}% of faces/heads called a face, "
          f"{100 * fp:.1f}% of other emoji and {100 * fs:.1f}% of tile-scrambled held-out faces called a face")
    for m in a.models:
        model = from_pretrained(m)
        s, _ = generate_samples(model, a.n, seed=1)
        rate, mean_p = face_rate(judge, s)
        out["models"][m] = {"called_face": rate, "mean_p": mean_p, "n": a.n}
        print(f"  {m}: {100 * rate:.1f}% of {a.n} samples (seed 1) called a face or head (mean p {mean_p:.3f})")
    if a.inception:
        # the second judge: Inception KID against the upload, on a scale from "new faces of the same
        # kind" (the held-out faces) to "other emoji"
        from aigc.eval.frechet import kernel_inception_distance
        from aigc.eval.inception import inception_features
        n_ref = min(len(pos_test), a.inception)
        sets = {"upload": imgs[pos_train],
                f"{n_ref} held-out faces (same kind, not in the upload)": imgs[pos_test[:n_ref]],
                f"{n_ref} other emoji": imgs[neg_test[:n_ref]]}
        for m in a.models:
            sets[m] = generate_samples(from_pretrained(m), a.inception, seed=1)[0]
        feats = {k: inception_features(v) for k, v in sets.items()}
        out["inception_kid_x1000"] = {}
        print(f"Inception KID x 1000 against the {len(pos_train)} upload images (subsets of "
              f"{min(n_ref, a.inception)}, 100 subsets; samples: {a.inception}, seed 1):")
        for k, f in feats.items():
            if k == "upload":
                continue
            mean, std, size = kernel_inception_distance(f, feats["upload"], subsets=100, subset_size=n_ref)
            out["inception_kid_x1000"][k] = {"mean": 1000 * mean, "std": 1000 * std, "subset": size}
            print(f"  {k}: {1000 * mean:.2f} +- {1000 * std:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
