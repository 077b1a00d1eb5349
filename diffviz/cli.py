"""The ``diffviz`` command line.

    diffviz train  --dataset mnist-5k --model small --steps 20000 --checkpoint-dir runs/x --checkpoint-every 500
    diffviz train  --checkpoint-dir runs/x --resume --steps 30000      # continue a run
    torchrun --standalone --nproc_per_node=4 -m diffviz.cli train ...  # data-parallel, same options
    diffviz sample --checkpoint runs/x --out grid.png --n 16 --sampler ddim --steps 50 [--class 3 --guidance 3]
    diffviz handout notebooks/ --out handouts/ [--no-pdf]   # executed notebooks as HTML + PDF

Adding a subcommand: write ``add_<name>_command(subparsers)`` (it adds a parser and sets
``run=<function(args) -> int>``) and add it to ``SUBCOMMANDS``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields

import torch


def _train_args(parser):
    a = parser.add_argument
    a("--dataset", help="dataset name (swiss_roll, moons, gaussian_mixture, digits, mnist-5k, ...)")
    a("--n-data", dest="num_data", type=int, help="use only this many training examples")
    a("--model", help="toy, tiny, small, medium, cifar, or auto (default)")
    a("--conditional", action="store_true", default=None, help="train on class labels (for guidance)")
    a("--label-dropout", type=float, help="p(label -> null class) when conditional (default 0.1)")
    a("--schedule", help="noise schedule: linear (default), cosine, quadratic, sigmoid")
    a("--timesteps", dest="num_timesteps", type=int, help="T (default 1000)")
    a("--steps", type=int, help="total optimizer steps (a resumed run continues up to this)")
    a("--batch-size", type=int, help="examples per step (default 128)")
    a("--lr", type=float, help="AdamW learning rate (default 2e-4 for U-Nets, 1e-3 for toy)")
    a("--weight-decay", type=float, help="AdamW weight decay (default 0)")
    a("--warmup", dest="warmup_steps", type=int, help="linear warm-up steps (default 100)")
    a("--grad-clip", type=float, help="gradient norm clip (default 1.0; 0 = off)")
    a("--ema-decay", type=float, help="EMA decay (default 0.999)")
    a("--seed", type=int, help="random seed (default 0)")
    a("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    a("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast (default: on for CUDA)")
    a("--fast", action=argparse.BooleanOptionalAction, default=None,
      help="fast path: fused AdamW, whole step as a CUDA graph, ... (default: on for CUDA)")
    a("--compile", action="store_true", default=None, help="torch.compile the model (slow start)")
    a("--threads", dest="num_threads", type=int, help="CPU threads for torch")
    a("--checkpoint-dir", help="folder for checkpoints")
    a("--checkpoint-every", type=int, help="save every N steps (default: only at the end)")
    a("--keep", dest="keep_checkpoints", type=int, help="checkpoints to keep (default 3)")
    a("--resume", action="store_true", default=None,
      help="continue from --checkpoint-dir's latest checkpoint; unset options come from its config")
    a("--log-every", type=int, help="print/report every N steps (default 50)")
    a("--no-progress", action="store_true", help="no progress bar: print a line every --log-every steps")


def _train_config(args):
    """A TrainConfig from the options given; on --resume, the options not given come from the
    checkpoint's saved train config."""
    from .checkpoint import checkpoint_config, has_checkpoint
    from .training import TrainConfig

    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    base = {}
    if args.resume:
        if not args.checkpoint_dir:
            raise ValueError("--resume needs --checkpoint-dir")
        if has_checkpoint(args.checkpoint_dir):
            saved = checkpoint_config(args.checkpoint_dir).get("train_config") or {}
            machine = ("device", "num_threads", "fast", "compile")  # about this machine, not the run
            base = {k: v for k, v in saved.items() if k in names and k not in machine}
    return TrainConfig(**{**base, **given})


def run_train(args) -> int:
    """Train; under ``torchrun --nproc_per_node=N`` data-parallel (see diffviz.distributed)."""
    from .distributed import cleanup, setup
    from .training import Trainer

    config = _train_config(args)
    is_main = setup(config.device).is_main  # only rank 0 prints (and writes checkpoints)
    try:
        trainer = Trainer(config)
        if trainer.step and is_main:
            print(f"resumed from {config.checkpoint_dir} at step {trainer.step}")

        def report(event):
            if args.no_progress and is_main:
                print(f"step {event.step:>7d}  loss {event.loss:.4f}  lr {event.lr:.2e}  "
                      f"{event.images_seen / max(event.elapsed, 1e-9):.0f} img/s", flush=True)

        trainer.fit(callback=report, progress=not args.no_progress)
        where = f", checkpoint in {config.checkpoint_dir}" if config.checkpoint_dir else ""
        last = trainer.losses[-1] if trainer.losses else float("nan")
        if is_main:
            print(f"done: step {trainer.step}, last loss {last:.4f}{where}")
    finally:
        cleanup()
    return 0


def add_train_command(subparsers):
    parser = subparsers.add_parser("train", help="train a diffusion model (Ho et al. 2020, Algorithm 1)")
    _train_args(parser)
    parser.set_defaults(run=run_train)


def run_sample(args) -> int:
    from pathlib import Path

    from .checkpoint import load_checkpoint, load_model
    from .images import save_image_grid
    from .sampling import sample
    from .validate import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    path = Path(args.checkpoint)
    if path.is_dir():
        model, schedule, meta = load_checkpoint(path, device=device, ema=not args.no_ema)
    elif path.is_file() or path.with_name(path.name + ".json").is_file():
        model, schedule, meta = load_model(path, device=device)
    else:
        raise ValueError(f"--checkpoint {path}: no checkpoint folder or exported model (PREFIX.json) there")
    cfg = model.config
    if hasattr(cfg, "data_dim"):  # a 2-D toy model
        shape = (args.n, cfg.data_dim)
    else:
        shape = (args.n, cfg.in_channels, cfg.image_size, cfg.image_size)
    y = None
    if args.class_label is not None or args.guidance is not None:
        if not cfg.num_classes:
            raise ValueError("--class/--guidance need a class-conditional model; this one is unconditional")
        if args.class_label is not None and not 0 <= args.class_label < cfg.num_classes:
            raise ValueError(f"--class must be in [0, {cfg.num_classes - 1}], got {args.class_label}")
    if cfg.num_classes and args.class_label is not None:
        y = torch.full((args.n,), args.class_label)
    elif cfg.num_classes:  # by default one class after another: 0, 1, 2, ...
        y = torch.arange(args.n) % cfg.num_classes
    generator = torch.Generator(device).manual_seed(args.seed)
    traj = sample(model, schedule, shape, sampler=args.sampler, num_steps=min(args.steps, schedule.num_timesteps),
                  eta=args.eta, generator=generator, device=device, y=y, guidance_scale=args.guidance, record=False)
    out = Path(args.out)
    if out.suffix == ".npy" or len(shape) == 2:
        import numpy as np
        out = out.with_suffix(".npy")
        np.save(out, traj.sample.numpy())
    else:
        scale = args.scale or max(1, 64 // cfg.image_size)
        save_image_grid(traj.sample, out, nrow=args.nrow, scale=scale)
    print(f"wrote {out} ({args.n} samples, {args.sampler}, {args.steps} steps, step {meta.get('step', '?')} weights)")
    return 0


def add_sample_command(subparsers):
    parser = subparsers.add_parser("sample", help="sample from a checkpoint or exported model into a PNG grid")
    a = parser.add_argument
    a("--checkpoint", required=True, help="checkpoint folder (or run folder), or an exported model prefix")
    a("--out", default="samples.png", help="output PNG (or .npy: raw samples; 2-D models always write .npy)")
    a("--n", type=int, default=16, help="number of samples")
    a("--sampler", choices=("ddpm", "ddim"), default="ddim")
    a("--steps", type=int, default=50, help="sampler steps")
    a("--eta", type=float, default=0.0, help="DDIM eta (0 = deterministic)")
    a("--seed", type=int, default=0)
    a("--class", dest="class_label", type=int, help="class label for a conditional model")
    a("--guidance", type=float, help="classifier-free guidance scale w (1 = plain conditional)")
    a("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    a("--nrow", type=int, help="images per grid row (default: square grid)")
    a("--scale", type=int, help="enlarge the grid this many times (default: to >= 64 px per image)")
    a("--device", default="auto")
    a("--threads", type=int, help="CPU threads for torch")
    parser.set_defaults(run=run_sample)


def run_handout(args) -> int:
    from .handout import HandoutError, build_handouts

    try:
        build_handouts(args.paths, args.out, pdf=not args.no_pdf, timeout=args.timeout)
    except HandoutError as err:  # a failed cell, or no Chromium for the PDF
        print(f"diffviz handout: error: {err}", file=sys.stderr)
        return 1
    return 0


def add_handout_command(subparsers):
    parser = subparsers.add_parser(
        "handout", help="run notebooks and write a self-contained HTML and a PDF (system Chromium) for each")
    a = parser.add_argument
    a("paths", nargs="+", metavar="PATH", help="notebooks (.ipynb) or folders of them")
    a("--out", default="handouts", help="output folder (default: handouts)")
    a("--no-pdf", action="store_true", help="write only the HTML (no Chromium needed)")
    a("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    parser.set_defaults(run=run_handout)


SUBCOMMANDS = [add_train_command, add_sample_command, add_handout_command]  # one line per subcommand


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffviz", description="Train and sample DDPM/DDIM models.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in SUBCOMMANDS:
        add_command(subparsers)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``diffviz`` script. Returns the exit status (0 = success)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:  # bad options or a bad checkpoint: a message, not a traceback
        print(f"diffviz {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
