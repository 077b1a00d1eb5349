"""Train the latent-diffusion autoencoder; write data/pretrained/mnist_autoencoder.{safetensors,json}

    python benchmarks/train_autoencoder.py          # ~7 minutes on one CPU thread

Data: the mnist-5k train split (4,500 digits in [-1, 1]). After training, the scale factor is set to
1 / std of the training latents (``fit_scale_factor``), the weights are exported as fp16 and reloaded,
and the RELOADED model is measured on the 500 held-out test digits (used for nothing else): the class
accuracy of its reconstructions by ``diffviz.metrics.class_accuracy`` (the bar is ≥ 0.97) and the
reconstruction error per class. Everything random comes from --seed.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from diffviz import metrics  # noqa: E402
from diffviz.data import load_dataset  # noqa: E402
from diffviz.latent_autoencoder import (Autoencoder, AutoencoderConfig, export_autoencoder, fit_scale_factor,  # noqa: E402
                                        kl_divergence, load_autoencoder, train_autoencoder)

LICENCE = ("trained on mnist-5k (MNIST, © Yann LeCun and Corinna Cortes), redistributed under CC BY-SA 3.0 "
           "as data/README.md explains; these weights are shared under the same terms")


@torch.no_grad()
def evaluate(model, train_x, test_x, test_y) -> dict:
    """Reconstruction metrics of ``model`` on the test digits (and the latent statistics on train)."""
    recon = model.decode(model.encode(test_x))  # (N, 1, 28, 28)
    per_image = (recon - test_x).pow(2).flatten(1).mean(1)  # (N,)
    mean, logvar = model.posterior(test_x)
    z_train = model.encode(train_x)
    return {"recon_class_accuracy": metrics.class_accuracy(recon.clamp(-1, 1), test_y),
            "real_class_accuracy": metrics.class_accuracy(test_x, test_y),
            "recon_mse": per_image.mean().item(),
            "recon_mse_by_class": {str(c): per_image[test_y == c].mean().item() for c in range(10)},
            "kl_per_element": kl_divergence(mean, logvar).mean().item(),
            "train_latent_std": z_train.std().item(), "train_latent_mean": z_train.mean().item()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate, cosine-decayed to 0")
    parser.add_argument("--channels", type=int, default=24)
    parser.add_argument("--latent-channels", type=int, default=4)
    parser.add_argument("--kl-weight", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data" / "pretrained"
                        / "mnist_autoencoder", help="file prefix (PREFIX.safetensors + PREFIX.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_set, test_set = load_dataset("mnist-5k", split="train"), load_dataset("mnist-5k", split="test")
    config = AutoencoderConfig(latent_channels=args.latent_channels, channels=args.channels, kl_weight=args.kl_weight)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)  # the initial weights
        model = Autoencoder(config)
    generator = torch.Generator().manual_seed(args.seed)  # batches and z samples
    start = time.perf_counter()
    losses = train_autoencoder(model, train_set.x, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                               generator=generator)
    scale = fit_scale_factor(model, train_set.x)
    seconds = time.perf_counter() - start
    command = "python benchmarks/train_autoencoder.py " + " ".join(sys.argv[1:] if argv is None else argv)
    metadata = {"source": "diffviz benchmarks/train_autoencoder.py", "licence": LICENCE, "command": command.strip(),
                "seed": args.seed, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                "train_seconds": round(seconds, 1), "threads": args.threads,
                "hardware": f"{platform.machine()} CPU ({platform.processor() or 'unknown'}), {args.threads} thread(s), "
                            "a 2-core VM shared with other jobs",
                "data": "mnist-5k train split (4,500); metrics on the 500 held-out test digits",
                "num_parameters": sum(p.numel() for p in model.parameters()), "scale_factor": scale,
                "final_loss_mean_100": sum(losses[-100:]) / 100}
    export_autoencoder(model, args.out, metadata)
    reloaded, _ = load_autoencoder(args.out)  # measure the shipped fp16 weights
    metadata["metrics"] = evaluate(reloaded, train_set.x, test_set.x, test_set.y)
    metadata["metrics_note"] = "fp16 weights reloaded; encode = scaled posterior mean; recon clamped to [-1, 1]"
    path = export_autoencoder(model, args.out, metadata)
    for key, value in metadata["metrics"].items():
        print(f"{key}: {value}")
    print(f"trained in {seconds:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
