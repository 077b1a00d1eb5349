"""Training throughput of the diffviz U-Net and of diffusers' UNet2DModel, and sampling speed.

    python benchmarks/train_throughput.py                  # on a CUDA machine: every table (see README)
    python benchmarks/train_throughput.py --smoke          # on a CPU, in seconds: tiny sizes, "n/a" for CUDA-only
    python benchmarks/train_throughput.py --sizes gray --variants eager graph --json out.json

A step is exactly what ``diffviz train`` runs: a random batch from data already on the device
(uniform in [-1, 1], never zeros), random t and ε, the forward pass (bf16 autocast on CUDA),
ε-prediction MSE, backward, gradient clipping, fused AdamW and the EMA update. Both networks run
through the same ``Trainer``; only the network differs (diffusers' is wrapped to take (x_t, t)).

Variants:  plain          ``Trainer.train_step``, the path before diffviz.fast (per-tensor AdamW and EMA,
                          and q_sample's timestep check copies t to the CPU: a sync every step)
           eager          the fast path without a graph: fused AdamW, foreach EMA, channels_last, no syncs
           graph          eager, captured once as a CUDA graph and replayed (``diffviz train``'s default on CUDA)
           compile        eager with torch.compile(model)
           compile+graph  both
Timing: warm-up steps, then ``--repeats`` runs of ``--steps`` steps between CUDA events; the median.
FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over one step's forward and backward.
Peak: a bf16 8192×8192 matmul timed in the same run; "% peak" is achieved TFLOP/s over that.
Sampling: ``diffviz.sample``, DDPM over all 1000 steps for 16 images, trajectory recorded.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import diffviz  # noqa: E402
from diffviz.fast import FastTrainStep  # noqa: E402
from diffviz.training import TrainConfig, Trainer  # noqa: E402
from diffviz.unet import UNet, UNetConfig, num_parameters, preset  # noqa: E402

SIZES = {  # name → U-Net preset, example shape (C, H, W), batch size
    "gray": dict(preset="medium", shape=(1, 28, 28), batch=128),  # 3.8M parameters
    "rgb": dict(preset="cifar", shape=(3, 32, 32), batch=128),  # 35.7M: the DDPM CIFAR-10 model
    "default": dict(preset="tiny", shape=(1, 28, 28), batch=128),  # what `diffviz train --dataset mnist-5k` builds
    "smoke": dict(preset="tiny", shape=(1, 8, 8), batch=4, overrides=dict(base_channels=8, groups=4)),
}
VARIANTS = ("plain", "eager", "graph", "compile", "compile+graph")


class DiffusersEps(torch.nn.Module):
    """diffusers' UNet2DModel behind diffviz's ε-model interface (x_t, t, y) → ε̂, as ``Trainer`` and
    ``sample`` call it (y: class labels for a model built with ``num_class_embeds``, else None)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, y=None):
        return self.unet(x, t, class_labels=y, return_dict=False)[0]


def diffusers_like(config: UNetConfig, tolerance: float = 0.10):
    """A diffusers ``UNet2DModel`` with the layout of ``config`` (levels, blocks per level, attention
    at the same resolutions, one head) whose parameter count is within ±tolerance of the diffviz
    U-Net's: the base width is the multiple of ``groups`` nearest ``base_channels`` that fits.
    Returns: (DiffusersEps model, its parameter count)."""
    from diffusers import UNet2DModel

    target = num_parameters(UNet(config))
    attention = [size in config.attention_resolutions for size in config.level_sizes()]

    def build(base):
        return UNet2DModel(
            sample_size=config.image_size, in_channels=config.in_channels, out_channels=config.out_channels,
            layers_per_block=config.num_res_blocks, block_out_channels=tuple(base * m for m in config.channel_mults),
            down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
            up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
            norm_num_groups=config.groups, attention_head_dim=None, dropout=config.dropout)

    widths = range(config.groups, 4 * config.base_channels + 1, config.groups)
    for base in sorted(widths, key=lambda b: abs(b - config.base_channels)):
        model = build(base)
        if abs(num_parameters(model) - target) <= tolerance * target:
            return DiffusersEps(model), num_parameters(model)
    raise ValueError(f"no UNet2DModel width within ±{tolerance:.0%} of {target} parameters")


def diffviz_unet(size) -> UNet:
    C, H, _ = size["shape"]
    return UNet(preset(size["preset"], in_channels=C, image_size=H, **size.get("overrides", {})))


def make_step(model, size, variant, device):
    """(trainer, step function) for one variant; random data on the device, never zeros."""
    data = SimpleNamespace(x=torch.rand(4096, *size["shape"]) * 2 - 1, y=None, num_classes=None)
    config = TrainConfig(dataset="random", batch_size=size["batch"], device=str(device),
                         fast=variant != "plain", compile="compile" in variant)
    trainer = Trainer(config, model=model, dataset=data)
    if variant == "plain":
        return trainer, lambda: trainer.train_step(*trainer.next_batch())
    return trainer, FastTrainStep(trainer, capture="graph" in variant)


def step_flops(trainer) -> int:
    """FLOPs of one step's forward and backward (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.compute_loss(*trainer.next_batch()).backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def seconds_per_call(fn, device, warmup, calls, repeats) -> float:
    """Median over ``repeats`` of the time of ``calls`` calls, per call (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000 / calls)
        else:
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def bf16_matmul_tflops(device, n=8192) -> float | None:
    """The bf16 matmul rate measured here (TFLOP/s): the ceiling the table compares with."""
    if device.type != "cuda":
        return None
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    seconds = seconds_per_call(lambda: a @ b, device, warmup=5, calls=10, repeats=5)
    return 2 * n**3 / seconds / 1e12


def train_rows(args, device, peak, on_row=lambda rows: None):
    """One row per (size, model, variant); ``on_row(rows)`` after each, so a stopped run keeps what it measured."""
    rows = []
    for size_name in args.sizes:
        size = SIZES[size_name]
        models = {"diffviz": lambda: diffviz_unet(size)}
        if not args.no_diffusers and size_name != "default":
            try:
                diffusers_like(diffviz_unet(size).config)
                models["diffusers"] = lambda: diffusers_like(diffviz_unet(size).config)[0]
            except ImportError:
                print("diffusers is not installed: no diffusers rows (see benchmarks/README.md)")
        variants = ["graph"] if size_name == "default" and device.type == "cuda" else args.variants
        for model_name, build in models.items():
            flops = None
            for variant in variants:
                row = dict(size=size_name, model=model_name, variant=variant, batch=size["batch"])
                skip = "needs CUDA" if "graph" in variant and device.type != "cuda" else \
                    "skipped in --smoke" if "compile" in variant and args.smoke else None
                if skip:
                    rows.append({**row, "note": skip})
                    continue
                torch.manual_seed(0)
                trainer, step = make_step(build(), size, variant, device)
                flops = flops or step_flops(trainer)
                seconds = seconds_per_call(step, device, args.warmup, args.steps, args.repeats)
                tflops = flops / seconds / 1e12
                rows.append({**row, "params": num_parameters(trainer.model), "img_per_s": size["batch"] / seconds,
                             "ms_per_step": 1000 * seconds, "tflops": tflops,
                             "pct_peak": None if peak is None else 100 * tflops / peak})
                on_row(rows)
                del trainer, step
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                torch._dynamo.reset()
    return rows


def sampling_rows(args, device):
    """diffviz.sample, DDPM, trajectory recorded; with and without the CUDA graph."""
    if args.smoke:
        model, schedule, what = diffviz_unet(SIZES["smoke"]), diffviz.get_schedule("linear"), "tiny (untrained)"
        shape, y, steps = (2, 1, 8, 8), None, 20
    else:
        model, schedule, _ = diffviz.load_pretrained("mnist")
        shape, y, steps, what = (16, 1, 28, 28), torch.arange(16) % 10, 1000, 'load_pretrained("mnist")'
    model = model.to(device)
    rows = []
    for cuda_graph in ((False, True) if device.type == "cuda" else (False,)):
        generator = torch.Generator(device).manual_seed(0)

        def run():
            diffviz.sample(model, schedule, shape, sampler="ddpm", num_steps=steps, generator=generator,
                           device=device, y=None if y is None else y.to(device), record=True, cuda_graph=cuda_graph)

        seconds = seconds_per_call(run, device, warmup=1, calls=1, repeats=3)
        rows.append(dict(model=what, steps=steps, n=shape[0], cuda_graph=cuda_graph, seconds=seconds))
    return rows


def fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


def print_tables(train, sample, peak, device):
    print(f"\ntraining steps on {device} (bf16 matmul peak measured here: {fmt(peak, '.0f')} TFLOP/s)")
    print(f"{'size':8} {'model':10} {'variant':14} {'params':>7} {'batch':>5} {'img/s':>9} {'ms/step':>8} "
          f"{'TFLOP/s':>8} {'% peak':>7}")
    for r in train:
        params = fmt(r.get("params") and r["params"] / 1e6, ".2f") + ("M" if r.get("params") else "")
        print(f"{r['size']:8} {r['model']:10} {r['variant']:14} {params:>7} {r['batch']:>5} "
              f"{fmt(r.get('img_per_s'), '.0f'):>9} {fmt(r.get('ms_per_step'), '.2f'):>8} "
              f"{fmt(r.get('tflops'), '.3g'):>8} {fmt(r.get('pct_peak'), '.1f'):>7}  {r.get('note', '')}")
    print(f"\nsampling (DDPM, trajectory recorded) on {device}")
    print(f"{'model':26} {'steps':>5} {'n':>3} {'cuda_graph':>10} {'seconds':>8}")
    for r in sample:
        print(f"{r['model']:26} {r['steps']:>5} {r['n']:>3} {str(r['cuda_graph']):>10} {r['seconds']:>8.2f}")


def check_targets(train, sample):
    """The issue's targets, as PASS/FAIL lines (CUDA runs only)."""
    def best(size, model, variants):
        rates = [r["img_per_s"] for r in train if r["size"] == size and r["model"] == model
                 and r["variant"] in variants and "img_per_s" in r]
        return max(rates) if rates else None

    lines, fast_variants = [], ("compile", "graph", "compile+graph")
    for size in ("gray", "rgb"):
        eager, theirs = best(size, "diffusers", ("eager",)), best(size, "diffusers", fast_variants)
        for label, ours in (("default (graph)", best(size, "diffviz", ("graph",))),
                            ("best variant", best(size, "diffviz", fast_variants))):
            if ours and eager:
                lines.append(f"{size}: diffviz {label} {ours / eager:.2f}x diffusers eager (target >= 1.5)")
            if ours and theirs:
                lines.append(f"{size}: diffviz {label} {ours / theirs:.2f}x diffusers' best variant (target >= 1.0)")
    for r in train:
        if r["size"] == "rgb" and r["model"] == "diffviz" and r.get("pct_peak") and r["variant"] != "plain":
            lines.append(f"rgb: diffviz {r['variant']} at {r['pct_peak']:.1f}% of the bf16 matmul rate (target >= 20%)")
    for r in train:
        if r["size"] == "default" and r.get("img_per_s"):
            lines.append(f"`diffviz train` defaults (tiny U-Net, batch {r['batch']}): {r['img_per_s']:.0f} img/s, "
                         f"{r['pct_peak']:.1f}% of the bf16 matmul rate")
    graphed = [r for r in sample if r["cuda_graph"]]
    if graphed:
        lines.append(f"sampling: {graphed[0]['seconds']:.2f} s for 1000 DDPM steps x 16 images (target <= 3 s)")
    print("\n" + "\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, a few steps: checks the script")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), help="default: gray rgb default")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (graph capture, compiling)")
    parser.add_argument("--no-diffusers", action="store_true")
    parser.add_argument("--no-sampling", action="store_true")
    parser.add_argument("--json", help="also write every number to this file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.steps, args.repeats, args.warmup = ["smoke"], 2, 1, 1
    args.sizes = args.sizes or ["gray", "rgb", "default"]
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)
    versions = {"torch": torch.__version__, "diffviz": diffviz.__version__,
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    try:
        import diffusers
        versions["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    print("  ".join(f"{k} {v}" for k, v in versions.items()))
    peak = bf16_matmul_tflops(device)

    def write(train, sample=(), partial=True):
        if args.json:
            Path(args.json).write_text(json.dumps({"versions": versions, "peak_tflops": peak, "train": train,
                                                   "sampling": list(sample), "partial": partial}, indent=2))

    def on_row(rows):
        print("measured: " + json.dumps(rows[-1]), flush=True)
        write(rows)

    train = train_rows(args, device, peak, on_row)
    sample = [] if args.no_sampling else sampling_rows(args, device)
    print_tables(train, sample, peak, device)
    if device.type == "cuda":
        check_targets(train, sample)
    write(train, sample, partial=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
