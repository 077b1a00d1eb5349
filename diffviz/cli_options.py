"""The options of ``diffviz`` and their checks: every value is checked when it is parsed (or, for
paths and folders, before any work), so a bad one is a one-line error, never a silent fallback."""
from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from .images import FORMATS
from .recipes import RECIPES

IMAGE_SUFFIXES = (*FORMATS, ".npy")  # what save_image_grid writes, and raw arrays
MACHINE = ("device", "num_threads", "fast", "compile")  # about this machine, not the run: never inherited


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line: ``diffviz: error: ... (see diffviz train --help)``."""

    def error(self, message):
        self.exit(2, f"diffviz: error: {message} (see `{self.prog} --help`)\n")


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"diffviz: warning: {one_line(message)}", file=sys.stderr)


# ----- value types: argparse names the option in its message ("argument --lr: ...") -----
def _number(text: str, cast, low: float, low_open: bool, high: float | None, what: str):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    bad_low = value <= low if low_open else value < low
    if not math.isfinite(value) or bad_low or (high is not None and value >= high):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text):
    return _number(text, int, 1, False, None, "an int >= 1")


def non_negative_int(text):
    return _number(text, int, 0, False, None, "an int >= 0")


def positive_float(text):
    return _number(text, float, 0.0, True, None, "a finite number > 0")


def non_negative_float(text):
    return _number(text, float, 0.0, False, None, "a finite number >= 0")


def unit_interval(text):
    return _number(text, float, 0.0, False, 1.0, "a number in [0, 1)")


def train_args(parser):
    a = parser.add_argument
    a("--recipe", choices=tuple(RECIPES),
      help="start from a measured recipe (diffviz.recipes); the options given here override it")
    a("--dataset", help="dataset name (swiss_roll, moons, gaussian_mixture, digits, mnist-5k, ...); default digits")
    a("--n-data", dest="num_data", type=positive_int, help="use only this many training examples")
    a("--model", help="toy, tiny, small, medium, cifar, or auto (default)")
    a("--conditional", action="store_true", default=None, help="train on class labels (for guidance)")
    a("--label-dropout", type=unit_interval, help="p(label -> null class) when conditional (default 0.1)")
    a("--schedule", help="noise schedule: linear (default), cosine, quadratic, sigmoid")
    a("--timesteps", dest="num_timesteps", type=positive_int, help="T (default 1000)")
    a("--steps", type=positive_int, help="total optimizer steps (a resumed run continues up to this)")
    a("--batch-size", type=positive_int, help="examples per step (default 128)")
    a("--lr", type=positive_float, help="AdamW learning rate (default 2e-4 for U-Nets, 1e-3 for toy)")
    a("--weight-decay", type=non_negative_float, help="AdamW weight decay (default 0)")
    a("--warmup", dest="warmup_steps", type=non_negative_int, help="linear warm-up steps (default 100)")
    a("--lr-schedule", choices=("constant", "cosine"), help="after warm-up: constant (default) or cosine to 0")
    a("--loss-type", choices=("l2", "l1", "huber"),
      help="the ε error: l2 (default, Ho et al. 2020), l1, or huber (smooth L1, as the Annotated Diffusion notebook)")
    a("--min-snr-gamma", type=positive_float, help="min-SNR-γ loss weighting (Hang et al. 2023; e.g. 5); default off")
    a("--learn-sigma", action="store_true", default=None,
      help="also learn the variance (Nichol & Dhariwal Eq. 15), trained with L_hybrid; sample with --variance learned_range")
    a("--grad-clip", type=non_negative_float, help="gradient norm clip (default 1.0; 0 = off)")
    a("--ema-decay", type=unit_interval, help="EMA decay (default 0.999)")
    a("--seed", type=non_negative_int, help="random seed (default 0)")
    a("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    a("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast (default: on for CUDA)")
    a("--fast", action=argparse.BooleanOptionalAction, default=None,
      help="fast path: fused AdamW, whole step as a CUDA graph, ... (default: on for CUDA)")
    a("--compile", action="store_true", default=None, help="torch.compile the model (slow start)")
    a("--threads", dest="num_threads", type=positive_int, help="CPU threads for torch")
    a("--checkpoint-dir", help="folder for checkpoints (default: a new runs/DATASET-MODEL-TIME/)")
    a("--checkpoint-every", type=non_negative_int, help="save every N steps (default: at the end and when stopped)")
    a("--keep", dest="keep_checkpoints", type=positive_int, help="checkpoints to keep (default 3)")
    a("--resume", action="store_true", default=None,
      help="continue from --checkpoint-dir's latest checkpoint; unset options come from its config")
    a("--overwrite", action="store_true", default=None,
      help="start again in a --checkpoint-dir that holds checkpoints (deletes them)")
    a("--log-every", type=positive_int, help="print/report every N steps (default 50)")
    a("--no-progress", action="store_true", help="no progress bar: print a line every --log-every steps")


def train_config(args):
    """A TrainConfig from the options given; on --resume, the options not given come from the
    checkpoint's saved train config. Without --checkpoint-dir a new run folder is made (and named)."""
    from .checkpoint import checkpoint_config
    from .distributed import launched_by_torchrun
    from .runs import RunLock, check_fresh, check_usable, has_checkpoints
    from .training import TrainConfig

    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run, or start it again")
    if args.resume:
        if args.recipe:
            raise ValueError("--recipe starts a run; a --resume continues one with its saved settings: drop --recipe")
        if not args.checkpoint_dir:
            raise ValueError("--resume needs --checkpoint-dir (the run folder to continue)")
        if not has_checkpoints(args.checkpoint_dir):
            raise ValueError(f"--resume: {args.checkpoint_dir!r} holds no checkpoint (is the folder name right?); "
                             f"drop --resume to start a new run there")
        saved = checkpoint_config(args.checkpoint_dir)
        step, base = saved["meta"].get("step", 0), saved.get("train_config") or {}
        steps = args.steps if args.steps is not None else base.get("steps", 0)
        if steps <= step:
            raise ValueError(f"--steps {steps}: the run in {args.checkpoint_dir} is already at step {step}; "
                             f"pass --steps > {step} to continue it")
        base = {k: v for k, v in base.items() if k in names and k not in MACHINE}
        return TrainConfig(**{**base, **given})
    if args.recipe:
        from .recipes import get
        given = {**get(args.recipe), **given}
        args.dataset, args.model = given["dataset"], given["model"]
    if not args.dataset:
        print("diffviz: note: no --dataset given: training on 'digits' (8x8 handwritten digits)", file=sys.stderr)
    if not args.checkpoint_dir:
        if launched_by_torchrun():
            raise ValueError("under torchrun, pass --checkpoint-dir (every process must name the same folder)")
        given["checkpoint_dir"] = default_run_folder(args.dataset or "digits", args.model or "auto")
        print(f"diffviz: note: no --checkpoint-dir given: saving the run in {given['checkpoint_dir']}", file=sys.stderr)
    config = TrainConfig(**given)
    if not launched_by_torchrun() or int(os.environ.get("RANK", "0")) == 0:  # before any slow work
        check_usable(config.checkpoint_dir)
        with RunLock(config.checkpoint_dir):
            check_fresh(config.checkpoint_dir, overwrite=bool(args.overwrite))
    return config


def default_run_folder(dataset: str, model: str) -> str:
    """runs/DATASET-MODEL-YYYYmmdd-HHMMSS (with -2, -3, ... if that one exists)."""
    base = f"runs/{dataset}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, n = base, 1
    while os.path.exists(folder):
        n += 1
        folder = f"{base}-{n}"
    return folder


def report_stop(trainer, signum: int, is_main: bool) -> int:
    """After SIGINT/SIGTERM: one line with the checkpoint and the --resume command; 128 + signum."""
    from .checkpoint import resolve_checkpoint
    from .runs import append_log

    name, folder = signal.Signals(signum).name, trainer.config.checkpoint_dir
    if is_main:
        saved = trainer.last_checkpoint or resolve_checkpoint(folder)
        append_log(folder, f"stopped by {name} at step {trainer.step}; saved {saved}")
        print(f"diffviz: stopped by {name} at step {trainer.step}; checkpoint saved in {saved}; continue with: "
              f"diffviz train --checkpoint-dir {shlex.quote(str(folder))} --resume", file=sys.stderr, flush=True)
    return 128 + signum


def check_output_path(out) -> Path:
    """``--out``: a known suffix, not a folder, in a folder we can write (made if missing)."""
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; name a file in it, e.g. {str(out / 'samples.png')!r}")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"--out {str(out)!r}: unknown file type {out.suffix or '(none)'!r}; use "
                         f"{', '.join(IMAGE_SUFFIXES)}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", suffix=".tmp", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"--out {str(out)!r}: cannot write in {str(out.parent)!r} ({err.strerror or err})") from None
    return out
