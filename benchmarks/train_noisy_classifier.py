"""Train the noise-aware digit classifier for classifier guidance; write data/pretrained/mnist_noisy_classifier.*

    python benchmarks/train_noisy_classifier.py          # ~5 minutes on one CPU thread

Data: the mnist-5k train split (4,500 digits); each batch is noised to a uniform random t with the
shipped U-Net's schedule (linear, T = 1000). The 500 held-out test digits are used once, at the end,
to measure accuracy against t (no model selection on them). Everything random comes from --seed.
The weights are exported as fp16 safetensors + JSON (``diffviz.checkpoint.export_model``) and
loaded with ``diffviz.load_pretrained("mnist-noisy-classifier")``; the reported accuracies are
those of the exported fp16 weights, reloaded.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from diffviz.checkpoint import export_model, load_model  # noqa: E402
from diffviz.classifier import NoisyClassifier, NoisyClassifierConfig, accuracy_at, train_noisy_classifier  # noqa: E402
from diffviz.data import load_dataset  # noqa: E402
from diffviz.schedules import linear_schedule  # noqa: E402

EVAL_TIMESTEPS = (0, 100, 250, 500, 750, 999)
LICENCE = ("trained on mnist-5k (MNIST, © Yann LeCun and Corinna Cortes), redistributed under CC BY-SA 3.0 "
           "as data/README.md explains; these weights are shared under the same terms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate, cosine-decayed to 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data" / "pretrained"
                        / "mnist_noisy_classifier", help="file prefix (PREFIX.safetensors + PREFIX.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_set, test_set = load_dataset("mnist-5k", split="train"), load_dataset("mnist-5k", split="test")
    schedule = linear_schedule(1000)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)  # the initial weights
        model = NoisyClassifier(NoisyClassifierConfig())
    generator = torch.Generator().manual_seed(args.seed)  # batches, t and noise
    start = time.perf_counter()
    losses = train_noisy_classifier(model, schedule, train_set.x, train_set.y, steps=args.steps,
                                    batch_size=args.batch_size, lr=args.lr, generator=generator, log_every=100)
    seconds = time.perf_counter() - start
    command = "python benchmarks/train_noisy_classifier.py " + " ".join(sys.argv[1:] if argv is None else argv)
    metadata = {"source": "diffviz benchmarks/train_noisy_classifier.py", "licence": LICENCE,
                "command": command.strip(), "seed": args.seed, "steps": args.steps, "batch_size": args.batch_size,
                "lr": args.lr, "train_seconds": round(seconds, 1), "threads": args.threads,
                "hardware": f"{platform.machine()} CPU, {args.threads} thread(s)",
                "data": "mnist-5k train split (4,500); accuracy on the 500 held-out test digits",
                "final_loss_mean_100": sum(losses[-100:]) / 100,
                "num_parameters": sum(p.numel() for p in model.parameters())}
    export_model(model, schedule, args.out, metadata=metadata)
    reloaded = load_model(args.out).model
    eval_generator = torch.Generator().manual_seed(1234)
    table = {str(t): accuracy_at(reloaded, schedule, test_set.x, test_set.y, t, eval_generator) for t in EVAL_TIMESTEPS}
    metadata["test_accuracy_by_t"] = table
    metadata["test_accuracy_note"] = "500 test digits noised once per t (generator seed 1234), fp16 weights reloaded"
    out = export_model(model, schedule, args.out, metadata=metadata)
    print(f"trained {args.steps} steps in {seconds:.0f} s; wrote {out}")
    for t, acc in table.items():
        print(f"t = {t:>4}: accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
