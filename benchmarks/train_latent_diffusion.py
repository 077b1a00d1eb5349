"""Train the class-conditional latent diffusion model; write data/pretrained/mnist_latent.{safetensors,json}

    python benchmarks/train_latent_diffusion.py           # ~13 minutes on one CPU thread, then ~4 of evaluation
    python benchmarks/train_latent_diffusion.py --eval-only   # re-measure the shipped model
    python benchmarks/train_latent_diffusion.py --autoencoder /tmp/ae --out /tmp/ldm   # another autoencoder

The mnist-5k train digits are encoded once by the shipped autoencoder (``load_pretrained("mnist-autoencoder")``,
scaled posterior means, unit variance) and a ``diffviz.UNet`` over the (C_lat, 7, 7) latents is trained
by the library's own ``Trainer`` with the project's recipe (``recipes.MNIST``: linear schedule, T = 1000,
ε-prediction, label dropout 0.1 for classifier-free guidance, AdamW with a 50-step warm-up and cosine
decay, EMA, min-SNR-γ 5, batch 32 → here 64), handed the latents as its dataset. The EMA weights
are exported as fp16 and reloaded; the evaluation uses the RELOADED model: 500 class-balanced DDIM-50
samples (50 per digit) at guidance scale w = 1 and w = 2, decoded, scored by class accuracy and
feature-FID against the 500 held-out test digits.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from diffviz import metrics, recipes  # noqa: E402
from diffviz.checkpoint import export_model  # noqa: E402
from diffviz.data import Dataset, load_dataset  # noqa: E402
from diffviz.latent import encode_dataset, load_autoencoder, load_latent_diffusion  # noqa: E402
from diffviz.pretrained import pretrained_path  # noqa: E402
from diffviz.training import TrainConfig, Trainer  # noqa: E402
from diffviz.unet import UNet, UNetConfig, num_parameters  # noqa: E402

LICENCE = ("trained on mnist-5k (MNIST, © Yann LeCun and Corinna Cortes), redistributed under CC BY-SA 3.0 "
           "as data/README.md explains; these weights are shared under the same terms")
OUT = Path(__file__).resolve().parent.parent / "data" / "pretrained" / "mnist_latent"


@torch.no_grad()
def evaluate(model, test_set, n=500, num_steps=50, scales=(1.0, 2.0), seed=1234) -> dict:
    """Class accuracy and feature-FID of n class-balanced DDIM samples per guidance scale."""
    y = torch.arange(n) % 10
    out = {}
    for w in scales:
        g = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        digits = model.sample((n, 1, 28, 28), sampler="ddim", num_steps=num_steps, generator=g, y=y,
                              guidance_scale=w, record=False).sample.clamp(-1, 1)
        out[f"w={w:g}"] = {"class_accuracy": metrics.class_accuracy(digits, y),
                           "feature_fid": metrics.feature_fid(digits, test_set.x),
                           "sample_seconds": round(time.perf_counter() - start, 1)}
        print(f"w={w:g}: {out[f'w={w:g}']}", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--base-channels", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-n", type=int, default=500, help="samples per guidance scale (a multiple of 10)")
    parser.add_argument("--eval-only", action="store_true", help="only re-measure the shipped model")
    parser.add_argument("--out", type=Path, default=OUT, help="file prefix (PREFIX.safetensors + PREFIX.json)")
    parser.add_argument("--autoencoder", type=Path, default=None,
                        help="the autoencoder's file prefix (default: the shipped mnist-autoencoder)")
    args = parser.parse_args(argv)
    args.autoencoder = args.autoencoder or pretrained_path("mnist-autoencoder")
    args.command = " ".join(["python benchmarks/train_latent_diffusion.py", *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(args.threads)
    train_set, test_set = load_dataset("mnist-5k", split="train"), load_dataset("mnist-5k", split="test")
    if not args.eval_only:
        train(args, train_set)
    model, schedule, meta = load_latent_diffusion(args.out, args.autoencoder)
    meta_path = Path(meta["path"])
    config = json.loads(meta_path.read_text(encoding="utf-8"))
    metadata = dict(config["metadata"])
    metadata["metrics"] = evaluate(model, test_set, n=args.eval_n)
    metadata["metrics_note"] = (f"{args.eval_n} class-balanced samples ({args.eval_n // 10} per digit), DDIM η = 0, 50 steps, trailing spacing, "
                                "generator seed 1234, decoded and clamped to [-1, 1]; feature-FID against the 500 "
                                "held-out test digits; fp16 weights reloaded")
    export_model(model.eps_model, schedule, args.out, metadata=metadata)
    print(json.dumps(metadata["metrics"], indent=1))


def latent_train_config(config, data) -> dict:
    """The TrainConfig as run: its dataset and model fields name what the Trainer was handed instead."""
    return {**asdict(config), "dataset": data.name, "model": "the UNetConfig stored under model.config",
            "model_overrides": {}}


def train(args, train_set):
    autoencoder, ae_meta = load_autoencoder(args.autoencoder)
    latents = encode_dataset(autoencoder, train_set.x)  # (N, C_lat, 7, 7), unit variance
    C = latents.shape[1]
    data = Dataset(latents, train_set.y, "mnist-5k latents", "train", 10, tuple(latents.shape[1:]))
    recipe = dict(recipes.get("mnist"), steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                  device="cpu", num_threads=args.threads, log_every=100)
    config = TrainConfig(**recipe)
    unet_config = UNetConfig(in_channels=C, image_size=latents.shape[-1], base_channels=args.base_channels,
                             channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(7,), num_classes=10,
                             num_timesteps=config.num_timesteps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        unet = UNet(unet_config)
    log = lambda e: print(f"step {e.step}  loss {e.loss:.4f}  lr {e.lr:.2e}  {e.elapsed:.0f} s", flush=True)
    trainer = Trainer(config, model=unet, dataset=data).fit(callback=log, progress=False)
    seconds = trainer.elapsed
    ae_json = json.loads(Path(f"{args.autoencoder}.json").read_text(encoding="utf-8"))
    metadata = {"source": "diffviz benchmarks/train_latent_diffusion.py", "licence": LICENCE,
                "command": args.command, "step": trainer.step, "images_seen": trainer.images_seen,
                "wall_time": seconds, "train_seconds": round(seconds, 1), "train_config": latent_train_config(config, data),
                "hardware": f"{platform.machine()} CPU ({platform.processor() or 'unknown'}), {args.threads} "
                            "thread(s), a 2-core VM shared with other jobs",
                "data": f"mnist-5k train split (4,500 digits) encoded by {Path(args.autoencoder).name} (scaled means)",
                "latent_std": latents.std().item(), "latent_mean": latents.mean().item(),
                "num_parameters": num_parameters(unet), "final_loss_mean_100": sum(trainer.losses[-100:]) / 100,
                "autoencoder": {"name": Path(args.autoencoder).name, "sha256": ae_json["weights"]["sha256"],
                                "scale_factor": ae_meta["scale_factor"]}}
    export_model(trainer.ema_model, trainer.schedule, args.out, metadata=metadata)
    print(f"trained {trainer.step} steps in {seconds:.0f} s; wrote {args.out}.json", flush=True)


if __name__ == "__main__":
    main()
