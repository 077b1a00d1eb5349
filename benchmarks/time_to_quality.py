"""Time to readable digits: diffviz's training recipe against the plain diffusers recipe, side by
side on one machine, quality measured with diffviz.metrics at fixed wall-clock marks.

    pip install diffusers            # only for this benchmark; diffviz does not depend on it
    python benchmarks/time_to_quality.py                                  # 5, 10, 20, 30 minutes
    python benchmarks/time_to_quality.py --minutes 2.5 5 7.5 10 --json benchmarks/results/time_to_quality.json
    python benchmarks/time_to_quality.py --recipes diffviz --minutes 10   # one recipe only
    python benchmarks/time_to_quality.py --smoke                          # seconds: checks the script runs

The recipes (both class-conditional, both on the mnist-5k train split, linear schedule, T = 1000,
ε-prediction, sampled the same way for the metrics):

  diffviz   ``diffviz train --dataset mnist-5k --model tiny --conditional`` with the recipe flags in
            RECIPES below (``diffviz.recipes.MNIST_FAST``): small batches, a high peak learning
            rate with a cosine decay to 0, min-SNR-γ loss weighting, EMA with warm-up.
  diffusers diffusers' ``UNet2DModel`` with the same layout and parameter count (628,393 against
            diffviz's 628,489), trained the way diffusers' ``train_unconditional.py`` example does by
            default: ``DDPMScheduler`` (linear, 1000 steps), batch 16, AdamW (lr 1e-4, β = (0.95,
            0.999), weight decay 1e-6), 500 warm-up steps then cosine over 100 epochs, gradient
            clipping at 1, ``EMAModel`` with warm-up (inv_gamma 1, power 3/4, max decay 0.9999);
            plus class labels (``num_class_embeds``), which the metric's class accuracy needs.

Each recipe runs in its own process with ``--threads`` torch threads (default 1: two recipes on a
2-core machine, one core each, started together). A process trains and, whenever its training
clock passes a mark, stores its EMA weights; the clock stops while it stores. After training it
samples every stored model: DDIM-50 (η = 0), n samples with labels 0..9 cycling, the same x_T for
every row. Columns: feature-FID against the 500 held-out test digits, its ratio to the FID of n
class-balanced real training digits (the floor at this n), class accuracy. The bar: accuracy ≥ 0.9
and FID ≤ 2 × real. "time to bar" is the first mark that meets it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from diffviz import quality  # noqa: E402
from diffviz.data import load_dataset  # noqa: E402
from diffviz import recipes  # noqa: E402
from diffviz.checkpoint_io import cpu_state_dict  # noqa: E402
from sample_quality import draw_samples, measure, reference_row  # noqa: E402
from train_throughput import DiffusersEps  # noqa: E402

BAR_ACCURACY, BAR_FID_RATIO = 0.9, 2.0
DIFFUSERS = dict(batch_size=16, lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8, warmup=500, epochs=100,
                 grad_clip=1.0, ema_max_decay=0.9999, ema_inv_gamma=1.0, ema_power=0.75)


class Marks:
    """Calls ``save(mark, step)`` the first time the training clock passes each mark (seconds); the
    clock excludes the time spent saving. The clock is this process's CPU time (``--clock cpu``,
    the default: with one thread, the seconds one free core would take, whatever else the machine
    runs) or wall time (``--clock wall``: honest only on an otherwise idle machine)."""

    def __init__(self, marks, save, clock="cpu"):
        self.now = time.process_time if clock == "cpu" else time.perf_counter
        self.marks, self.save, self.paused, self.start = list(marks), save, 0.0, self.now()
        self.wall_start, self.log = time.perf_counter(), []

    def elapsed(self) -> float:
        return self.now() - self.start - self.paused

    def check(self, step: int) -> bool:
        """Save at every passed mark; True when all marks are done (stop training)."""
        while self.marks and self.elapsed() >= self.marks[0]:
            began = self.now()
            self.log.append(dict(mark=self.marks[0], step=step, wall=time.perf_counter() - self.wall_start))
            self.save(self.marks.pop(0), step)
            self.paused += self.now() - began
        return not self.marks


def train_diffviz(marks, out: Path, smoke: bool, clock: str, device: str, recipe: str):
    from diffviz.training import TrainConfig, Trainer
    from safetensors.torch import save_file

    settings = {**recipes.get(recipe), **(dict(steps=20, batch_size=8, warmup_steps=2) if smoke else {})}
    # On a GPU a host sync every step would slow the fast path; marks are then checked every 10 steps.
    trainer = Trainer(TrainConfig(**settings, device=device, log_every=1 if device == "cpu" else 10))
    clock = Marks(marks, lambda mark, step: save_file(
        cpu_state_dict(trainer.ema_model), out / f"{mark:09.1f}s-step{step}.safetensors"), clock)
    trainer.fit(callback=lambda event: setattr(trainer, "stop_requested", clock.check(event.step)), progress=False)
    for mark in clock.marks:  # the recipe finished before these marks: its final model stands for them
        clock.log.append(dict(mark=mark, step=trainer.step, wall=time.perf_counter() - clock.wall_start, finished=True))
        clock.save(mark, trainer.step)
    return clock.log


def diffusers_unet():
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(24, 48, 48),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8,
                       attention_head_dim=48, num_class_embeds=10)


def train_diffusers(marks, out: Path, smoke: bool, clock: str, device: str):
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel
    from safetensors.torch import save_file

    cfg = {**DIFFUSERS, **(dict(batch_size=8, warmup=2) if smoke else {})}
    data = load_dataset("mnist-5k", split="train")
    torch.manual_seed(0)
    model = diffusers_unet().to(device).train()
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=cfg["betas"],
                                  weight_decay=cfg["weight_decay"], eps=cfg["eps"])
    steps_per_epoch = -(-len(data.x) // cfg["batch_size"])
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, cfg["warmup"], steps_per_epoch * cfg["epochs"])
    ema = EMAModel(model.parameters(), decay=cfg["ema_max_decay"], use_ema_warmup=True,
                   inv_gamma=cfg["ema_inv_gamma"], power=cfg["ema_power"])
    ema_copy = diffusers_unet().to(device)

    def save(mark, step):
        ema.copy_to(ema_copy.parameters())
        save_file(cpu_state_dict(ema_copy), out / f"{mark:09.1f}s-step{step}.safetensors")

    clock, step, g = Marks(marks, save, clock), 0, torch.Generator().manual_seed(0)
    while True:
        for idx in torch.randperm(len(data.x), generator=g).split(cfg["batch_size"]):  # one epoch, shuffled
            x0, y = data.x[idx].to(device), data.y[idx].to(device)
            noise = torch.randn(x0.shape, generator=g).to(device)
            t = torch.randint(0, 1000, (len(idx),), generator=g).to(device)
            loss = F.mse_loss(model(scheduler.add_noise(x0, noise, t), t, class_labels=y).sample, noise)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
            optimizer.step()
            lr_schedule.step()
            ema.step(model.parameters())
            step += 1
            if clock.check(step):
                return clock.log


def evaluate(recipe: str, folder: Path, n: int, device: str = "cpu"):
    """Metrics of every stored model of one recipe."""
    from diffviz.schedules import get_schedule
    from diffviz.unet import UNet, preset
    from safetensors.torch import load_file

    data = quality.Reference()
    model = (UNet(preset("tiny", num_classes=10)) if recipe == "diffviz" else DiffusersEps(diffusers_unet())).to(device).eval()
    labels, rows = torch.arange(n) % 10, []
    for path in sorted(folder.glob("*.safetensors")):
        mark, step = path.stem.split("s-step")
        state = load_file(str(path))
        (model if recipe == "diffviz" else model.unet).load_state_dict(state)
        images = draw_samples(model, get_schedule("linear", 1000), ("ddim", 50, None), n, labels, 0, 100)
        found = measure(images, labels, data)
        rows.append(dict(recipe=recipe, minutes=float(mark) / 60, step=int(step), fid=found["fid"],
                         accuracy=found["accuracy"]))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"


def worker(args):
    torch.set_num_threads(args.threads)
    out = Path(args.out) / args.worker
    out.mkdir(parents=True, exist_ok=True)
    marks = [60 * m for m in args.minutes]
    if args.worker == "diffviz":
        log = train_diffviz(marks, out, args.smoke, args.clock, args.device, args.diffviz_recipe)
    else:
        log = train_diffusers(marks, out, args.smoke, args.clock, args.device)
    rows = evaluate(args.worker, out, args.n, args.device)
    for row, entry in zip(rows, log):  # rows and log entries are both in mark order
        row["wall_minutes"], row["finished"] = entry["wall"] / 60, entry.get("finished", False)
    (out / "rows.json").write_text(json.dumps(rows))


def parse_args(argv=None):
    """The command line, with what --smoke and --device imply applied."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipes", nargs="+", choices=("diffviz", "diffusers"), default=["diffviz", "diffusers"])
    p.add_argument("--minutes", type=float, nargs="+", default=[5, 10, 20, 30], help="wall-clock marks (training time)")
    p.add_argument("--n", type=int, default=200, help="samples per measurement (class-balanced)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per recipe process")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="what the marks count: process CPU time (default; fair on a shared machine) or wall time")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--out", help="folder for the stored models (default: a temporary folder)")
    p.add_argument("--smoke", action="store_true", help="seconds-long marks, 20 samples: checks the script runs")
    p.add_argument("--device", default="cpu", help="train and sample here; cuda implies --clock wall")
    p.add_argument("--diffviz-recipe", default="mnist-fast", choices=list(recipes.RECIPES),
                   help="the diffviz recipe (default mnist-fast, the CPU recipe)")
    p.add_argument("--worker", choices=("diffviz", "diffusers"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.minutes, args.n = [0.05, 0.1], 20
    if args.device != "cpu":
        args.clock = "wall"  # CPU time says nothing about GPU work
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    if "diffusers" in args.recipes:
        try:
            import diffusers  # noqa: F401
        except ImportError:
            sys.exit("the diffusers recipe needs diffusers: pip install diffusers (or pass --recipes diffviz)")
    out = Path(args.out or tempfile.mkdtemp(prefix="time_to_quality-"))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    common = ["--minutes", *map(str, args.minutes), "--n", str(args.n), "--threads", str(args.threads), "--out", str(out),
              "--clock", args.clock, "--device", args.device, "--diffviz-recipe", args.diffviz_recipe]
    print(f"training {', '.join(args.recipes)} side by side on {args.device}, {args.threads} thread(s) each, marks at "
          f"{', '.join(f'{m:g}' for m in args.minutes)} min of {args.clock} time; models in {out}", flush=True)
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", r, *common, *(["--smoke"] if args.smoke else [])],
                              env=env) for r in args.recipes]
    if any(proc.wait() for proc in procs):
        sys.exit("a recipe process failed (its error is printed above)")
    real = reference_row(args.n, 0, quality.Reference())["fid"]
    rows = [row for r in args.recipes for row in json.loads((out / r / "rows.json").read_text())]
    print(f"\nn = {args.n}, DDIM-50, w = 1; real digits (n = {args.n}, class-balanced): FID {real:.1f}; "
          f"bar: accuracy ≥ {BAR_ACCURACY}, FID ≤ {BAR_FID_RATIO:g} × real = {BAR_FID_RATIO * real:.1f}\n")
    print(f"| recipe | {args.clock} minutes | wall minutes | steps | feature-FID | FID / real | class accuracy | at bar |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    first = {}
    for row in rows:
        row["fid_ratio"] = row["fid"] / real
        row["at_bar"] = row["accuracy"] >= BAR_ACCURACY and row["fid_ratio"] <= BAR_FID_RATIO
        if row["at_bar"]:
            first.setdefault(row["recipe"], row["minutes"])
        done = " (finished)" if row.get("finished") else ""
        print(f"| {row['recipe']} | {row['minutes']:g} | {row.get('wall_minutes', float('nan')):.1f} | {row['step']}{done} | {row['fid']:.1f} | {row['fid_ratio']:.2f} | "
              f"{row['accuracy']:.3f} | {'yes' if row['at_bar'] else 'no'} |")
    last = max(args.minutes)
    times = {r: first.get(r) for r in args.recipes}
    print("\ntime to bar: " + "; ".join(f"{r} {'> ' + format(last, 'g') if t is None else format(t, 'g')} min"
                                        for r, t in times.items()))
    if times.get("diffviz") and "diffusers" in times:
        other = times["diffusers"]
        ratio = f"{other / times['diffviz']:.1f}×" if other else f"> {last / times['diffviz']:.1f}×"
        print(f"diffviz reaches the bar {ratio} sooner")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(dict(n=args.n, threads=args.threads, minutes=args.minutes, real_fid=real,
                                                   clock=args.clock, rows=rows, time_to_bar=times, machine=os.uname().machine,
                                                   device=device_name(args.device), diffviz_recipe=args.diffviz_recipe,
                                                   torch=torch.__version__,
                                                   cpus=os.cpu_count()), indent=1))


if __name__ == "__main__":
    main()
