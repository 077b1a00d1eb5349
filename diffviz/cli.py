"""The ``diffviz`` command line.

    diffviz train  --dataset mnist-5k --model small --steps 20000 --checkpoint-dir runs/x --checkpoint-every 500
    diffviz train  --checkpoint-dir runs/x --resume --steps 30000      # continue a run
    torchrun --standalone --nproc_per_node=4 -m diffviz.cli train ...  # data-parallel, same options
    diffviz sample --checkpoint runs/x --out grid.png --n 16 --sampler ddim --steps 50 [--class 3 --guidance 3]
    diffviz handout notebooks/ --out handouts/ [--no-pdf]   # executed notebooks as HTML + PDF

Exit status: 0 done; 2 a user error, printed as ONE line ``diffviz: error: ...`` (``--debug`` shows
the traceback instead); 1 the work itself failed (a NaN loss, a notebook that did not build);
130 / 143 ``train`` stopped by Ctrl-C / SIGTERM after saving a checkpoint (the line printed says
where, and the ``--resume`` command that continues it).

Adding a subcommand: write ``add_<name>_command(subparsers, common)`` (it adds a parser with
``parents=[common]`` and sets ``run=<function(args) -> int>``) and add it to ``SUBCOMMANDS``.
"""
from __future__ import annotations

import argparse
import sys
import warnings

import torch

from . import cli_options as opt


def add_train_command(subparsers, common):
    parser = subparsers.add_parser("train", parents=[common],
                                   help="train a diffusion model (Ho et al. 2020, Algorithm 1)")
    opt.train_args(parser)
    parser.set_defaults(run=run_train)


def run_train(args) -> int:
    """Train; under ``torchrun --nproc_per_node=N`` data-parallel (see diffviz.distributed).
    SIGINT / SIGTERM stop after the current step, save a checkpoint and exit 130 / 143."""
    from .distributed import cleanup, setup
    from .runs import StopOnSignal
    from .training import Trainer

    config = opt.train_config(args)
    is_main = setup(config.device).is_main  # only rank 0 prints (and writes checkpoints)
    finished = False
    try:
        trainer = Trainer(config)
        if trainer.step and is_main:
            print(f"resumed from {config.checkpoint_dir} at step {trainer.step}")

        def report(event):
            if args.no_progress and is_main:
                print(f"step {event.step:>7d}  loss {event.loss:.4f}  lr {event.lr:.2e}  "
                      f"{event.images_seen / max(event.elapsed, 1e-9):.0f} img/s", flush=True)

        with StopOnSignal(lambda: setattr(trainer, "stop_requested", True)) as stop:
            trainer.fit(callback=report, progress=not args.no_progress)
        finished = True  # every rank returned from fit (a stop is agreed on by all): the barrier is safe
        if stop.signum is not None:
            return opt.report_stop(trainer, stop.signum, is_main)
        last = trainer.losses[-1] if trainer.losses else float("nan")
        if is_main:
            print(f"done: step {trainer.step}, last loss {last:.4f}, checkpoint in {config.checkpoint_dir}")
    finally:
        cleanup(wait_for_all=finished)
    return 0


def add_sample_command(subparsers, common):
    parser = subparsers.add_parser("sample", parents=[common],
                                   help="sample from a checkpoint or exported model into a PNG/JPEG grid")
    a = parser.add_argument
    a("--checkpoint", required=True, help="checkpoint folder (or run folder), or an exported model prefix")
    a("--out", default="samples.png", help="output .png, .jpg/.jpeg, or .npy (raw samples; 2-D models: always .npy)")
    a("--n", type=opt.positive_int, default=16, help="number of samples")
    a("--sampler", choices=("ddpm", "ddim"), default="ddim")
    a("--steps", type=opt.positive_int, default=50, help="sampler steps, at most the model's T")
    a("--spacing", choices=("trailing", "leading", "linspace"), default="trailing",
      help="which timesteps the steps visit (default trailing)")
    a("--eta", type=opt.non_negative_float, default=0.0, help="DDIM eta (0 = deterministic)")
    a("--variance", choices=("fixed_small", "fixed_large", "learned_range"), default="fixed_small",
      help="DDPM's σ²: β̃ (default), β, or the model's own (learned_range; a --learn-sigma model)")
    a("--seed", type=opt.non_negative_int, default=0)
    a("--class", dest="class_label", type=int, help="class label for a conditional model")
    a("--guidance", type=opt.non_negative_float, help="classifier-free guidance scale w (1 = plain conditional)")
    a("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    a("--nrow", type=opt.positive_int, help="images per grid row (default: square grid)")
    a("--scale", type=opt.positive_int, help="enlarge the grid this many times (default: to >= 64 px per image)")
    a("--device", default="auto")
    a("--threads", type=opt.positive_int, help="CPU threads for torch")
    parser.set_defaults(run=run_sample)


def run_sample(args) -> int:
    from pathlib import Path

    from .checkpoint import load_checkpoint, load_model
    from .images import save_image_grid
    from .sampling import sample
    from .validate import check_num_steps, resolve_device

    device = resolve_device(args.device)
    out = opt.check_output_path(args.out)  # before the (slow) sampling, not after it
    if args.threads:
        torch.set_num_threads(args.threads)
    path = Path(args.checkpoint)
    if path.is_dir():
        model, schedule, meta = load_checkpoint(path, device=device, ema=not args.no_ema)
    elif path.is_file() or path.with_name(path.name + ".json").is_file():
        model, schedule, meta = load_model(path, device=device)
    else:
        raise ValueError(f"--checkpoint {path}: no checkpoint folder or exported model (PREFIX.json) there")
    num_steps = check_num_steps(args.steps, schedule.num_timesteps, name="--steps")
    cfg = model.config
    if args.variance == "learned_range" and (args.sampler != "ddpm" or not getattr(cfg, "learn_sigma", False)):
        raise ValueError("--variance learned_range needs --sampler ddpm and a model trained with --learn-sigma")
    shape = (args.n, cfg.data_dim) if hasattr(cfg, "data_dim") else (args.n, cfg.in_channels, cfg.image_size,
                                                                      cfg.image_size)
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
    traj = sample(model, schedule, shape, sampler=args.sampler, num_steps=num_steps, eta=args.eta,
                  generator=generator, device=device, y=y, guidance_scale=args.guidance, record=False,
                  timestep_spacing=args.spacing, variance=args.variance)
    if out.suffix == ".npy" or len(shape) == 2:
        import numpy as np
        if out.suffix != ".npy":
            print(f"diffviz: note: a 2-D model's samples are points, not images: writing {out.with_suffix('.npy')}")
        out = out.with_suffix(".npy")
        np.save(out, traj.sample.numpy())
    else:
        scale = args.scale or max(1, 64 // cfg.image_size)
        save_image_grid(traj.sample, out, nrow=args.nrow, scale=scale)
    print(f"wrote {out} ({args.n} samples, {args.sampler}, {len(traj.timesteps)} steps ({args.spacing}), "
          f"step {meta.get('step', '?')} weights)")
    return 0


def add_handout_command(subparsers, common):
    parser = subparsers.add_parser(
        "handout", parents=[common],
        help="run notebooks and write a self-contained HTML and a PDF (system Chromium) for each")
    a = parser.add_argument
    a("paths", nargs="+", metavar="PATH", help="notebooks (.ipynb) or folders of them")
    a("--out", default="handouts", help="output folder (default: handouts)")
    a("--no-pdf", action="store_true", help="write only the HTML (no Chromium needed)")
    a("--timeout", type=opt.positive_int, default=600, help="seconds allowed per cell (default 600)")
    parser.set_defaults(run=run_handout)


def run_handout(args) -> int:
    from .handout import HandoutError, build_handouts

    try:
        build_handouts(args.paths, args.out, pdf=not args.no_pdf, timeout=args.timeout)
    except HandoutError as err:  # failed notebooks (each built that could be), or no Chromium for the PDF
        print(f"diffviz handout: error: {err}", file=sys.stderr)
        return 1
    return 0


SUBCOMMANDS = [add_train_command, add_sample_command, add_handout_command]  # one line per subcommand


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser = opt.OneLineParser(prog="diffviz", description="Train and sample DDPM/DDIM models.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       parser_class=opt.OneLineParser)
    for add_command in SUBCOMMANDS:
        add_command(subparsers, common)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``diffviz`` script. Returns the exit status (see the module docstring)."""
    from .training import NonFiniteLossError

    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = opt.show_warning  # a warning is one line too: "diffviz: warning: ..."
        try:
            return args.run(args)
        except KeyboardInterrupt:
            print("diffviz: interrupted", file=sys.stderr)
            return 130
        except NonFiniteLossError as err:
            if args.debug:
                raise
            print(f"diffviz: error: {opt.one_line(err)}", file=sys.stderr)
            return 1
        except (ValueError, TypeError, OSError) as err:  # bad options, files, folders: a message
            if args.debug:
                raise
            print(f"diffviz: error: {opt.one_line(err)} (--debug shows the traceback)", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
