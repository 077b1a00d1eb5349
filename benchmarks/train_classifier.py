"""Train the digit classifier behind diffviz.metrics and write data/mnist_classifier.{safetensors,json}.

    python benchmarks/train_classifier.py            # ~1-2 minutes on one CPU thread

Data: the mnist-5k train split (4,500 images); the 500 held-out test images are used once, at the
end, to report accuracy (no early stopping or model selection on them). Augmentation: a small
random affine map per image (rotation ±10°, scale 0.9–1.1, shift ±2 px), so the classifier also
reads slightly off-centre generated digits. Everything random comes from --seed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from diffviz.data import load_dataset  # noqa: E402
from diffviz.metrics import ClassifierConfig, MnistClassifier, classifier_path  # noqa: E402


def augment(x, generator, max_degrees=10.0, max_scale=0.1, max_shift=2.0):
    """A random affine map per image; x (B, 1, 28, 28) in [-1, 1], background −1 stays −1."""
    B = x.shape[0]
    u = torch.rand(B, 4, generator=generator) * 2 - 1  # (B, 4) uniform in [-1, 1]
    angle = u[:, 0] * math.radians(max_degrees)
    scale = 1 + u[:, 1] * max_scale
    shift = u[:, 2:] * max_shift * 2 / x.shape[-1]  # pixels → grid units ([-1, 1] spans the image)
    cos, sin = angle.cos() / scale, angle.sin() / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False) - 1  # zero padding = background −1


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    return (model(x).argmax(1) == y).double().mean().item()


def train(args):
    train_set, test_set = load_dataset("mnist-5k", split="train"), load_dataset("mnist-5k", split="test")
    torch.manual_seed(args.seed)  # model init
    generator = torch.Generator().manual_seed(args.seed)  # batch order, augmentation, dropout
    model = MnistClassifier(ClassifierConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(train_set) / args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order, total = torch.randperm(len(train_set), generator=generator), 0.0
        for batch in order.split(args.batch_size):
            x, y = augment(train_set.x[batch], generator), train_set.y[batch]
            with torch.random.fork_rng(devices=[]):  # dropout draws from a seeded global RNG
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1:2d}/{args.epochs}  loss {total / len(train_set):.4f}  "
              f"{time.perf_counter() - start:5.1f} s", flush=True)
    seconds = time.perf_counter() - start
    return model, seconds, accuracy(model, train_set.x, train_set.y), accuracy(model, test_set.x, test_set.y)


def save(model, out, info):
    """Weights (float32) to OUT.safetensors, config + provenance + sha256 to OUT.json."""
    tensor_path, json_path = out.with_suffix(".safetensors"), out.with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tensor_path))
    info = {"format": "diffviz-mnist-classifier", "config": asdict(model.config), **info,
            "sha256": hashlib.sha256(tensor_path.read_bytes()).hexdigest()}
    json_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return tensor_path, json_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=classifier_path(), help="path of the .safetensors file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, seconds, train_acc, test_acc = train(args)
    print(f"train accuracy {train_acc:.4f}, held-out test accuracy {test_acc:.4f} (500 images), {seconds:.0f} s")
    command = "python benchmarks/train_classifier.py " + " ".join(sys.argv[1:] if argv is None else argv)
    info = {"test_accuracy": test_acc, "train_accuracy": train_acc, "seed": args.seed, "epochs": args.epochs,
            "batch_size": args.batch_size, "lr": args.lr, "train_seconds": round(seconds, 1),
            "threads": args.threads, "data": "mnist-5k train split (4,500); test = the 500 held out",
            "command": command.strip(), "torch": torch.__version__}
    for path in save(model, args.out, info):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
