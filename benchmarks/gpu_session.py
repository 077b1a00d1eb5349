"""One GPU session as one command: the CUDA rows of benchmarks/README.md and the shipped digit model.

    python benchmarks/gpu_session.py --out OUT --budget 540      # on a CUDA machine; OUT collects results
    python benchmarks/gpu_session.py --out /tmp/s --smoke         # on a CPU, in a few minutes: checks the plumbing

A lent GPU comes for minutes, once, so everything that needs one runs here in a fixed order, each
stage bounded by the time left, and each stage's results are written to OUT as soon as it ends:

 1. ``train_throughput.py`` (variants plain, eager, graph)       → OUT/throughput.json
 2. ``time_to_quality.py --device cuda`` (the diffviz ``mnist`` recipe against the plain diffusers
    recipe, side by side, wall-clock marks)                         → OUT/time_to_quality.json
 3. the shipped model: ``diffviz train --recipe mnist-gpu`` (batch 256), its number of steps given
    by --steps or set from stage 1's measured speed so that it finishes in the time left (a stopped
    run still saves its checkpoint), 8 snapshots
 4. ``export_pretrained.py``, ``sample_quality.py`` (n = 500, every default row),
    ``export_progress.py`` (the snapshots and their metrics), ``quality_vs_steps.py``
                                                                    → OUT/model.tar
OUT/log.txt says what ran when, with the end of each stage's output; OUT/logs.tar holds it whole.
Samples use CPU generators for their noise, so every metric here can be re-measured on a CPU and
agree to float precision. The shipped model was made with
``--budget 405 --stages train post throughput --steps 12000``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = 8  # checkpoints per run, besides step 0
STAGES = {"throughput": 60, "time_to_quality": 110, "train": 150, "post": 90}  # seconds to keep for each


class Session:
    def __init__(self, out: Path, budget: float, smoke: bool):
        self.out, self.budget, self.smoke, self.start = out, budget, smoke, time.perf_counter()
        self.device = "cpu" if smoke else "cuda"
        self.log = open(out / "log.txt", "a", buffering=1)
        self.logs = Path(tempfile.mkdtemp(prefix="gpu_session_logs-"))  # OUT takes few files: not one per stage

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def say(self, text: str):
        line = f"[{time.perf_counter() - self.start:6.0f} s] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")

    def start_process(self, name: str, argv: list[str]):
        self.say(f"{name}: {' '.join(argv)}")
        log = open(self.logs / f"{name}.log", "w")
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path})
        proc.name, proc.began = name, time.perf_counter()
        return proc

    def finish(self, proc, timeout: float) -> int:
        """Wait up to ``timeout`` s, then SIGTERM (training saves a checkpoint on it), then SIGKILL."""
        try:
            code = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            self.say(f"{proc.name}: out of time, stopping it")
            proc.terminate()
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        self.say(f"{proc.name}: exit {code} after {time.perf_counter() - proc.began:.0f} s")
        tail = (self.logs / f"{proc.name}.log").read_text(errors="replace").splitlines()[-15:]
        self.log.write("".join(f"    | {line}\n" for line in tail))
        with tarfile.open(self.out / "logs.tar", "w") as tar:
            tar.add(self.logs, arcname="logs")
        return code

    def run(self, name: str, argv: list[str], timeout: float) -> int:
        return self.finish(self.start_process(name, argv), timeout)


def throughput(s: Session, seconds: float):
    argv = ["benchmarks/train_throughput.py", "--json", str(s.out / "throughput.json")]
    argv += ["--smoke"] if s.smoke else ["--variants", "plain", "eager", "graph", "--repeats", "3",
                                         "--sizes", "default", "gray", "rgb"]
    s.run("throughput", argv, seconds if not s.smoke else 120)


def steps_per_second(s: Session) -> float | None:
    """Training steps per second of ``diffviz train``'s default path (tiny U-Net, batch 128), from stage 1."""
    try:
        rows = json.loads((s.out / "throughput.json").read_text())["train"]
        rates = [r["img_per_s"] / r["batch"] for r in rows if r["size"] == "default" and r.get("img_per_s")]
        return max(rates) if rates else None
    except (OSError, KeyError, ValueError, TypeError):
        return None


def time_to_quality(s: Session):
    minutes = ["0.05", "0.1"] if s.smoke else ["0.25", "0.5", "1"]
    argv = ["benchmarks/time_to_quality.py", "--device", s.device, "--diffviz-recipe", "mnist", "--minutes", *minutes,
            "--n", "20" if s.smoke else "200", "--json", str(s.out / "time_to_quality.json"),
            "--out", tempfile.mkdtemp(prefix="ttq-models-")]
    s.run("time_to_quality", argv, 110 if not s.smoke else 300)


def train(s: Session, run: Path, reserve: float, fixed_steps: int | None) -> Path:
    """Train the shipped model's recipe into the checkpoint folder ``run``; the steps fit the time left."""
    seconds = s.left() - reserve
    rate = steps_per_second(s)
    if s.smoke:
        steps = 16
    elif fixed_steps:
        steps = fixed_steps
    elif rate is None:
        steps = 12000
    else:  # ~40 s for start-up (data, CUDA graph capture) and the checkpoints; 0.75 for what else slows it
        steps = max(4000, int(0.75 * rate * (seconds - 40) / 800) * 800)
    s.say(f"training: {seconds:.0f} s left for it, measured {rate} steps/s → {steps} steps")
    argv = ["-m", "diffviz.cli", "train", "--recipe", "mnist-gpu", "--steps", str(steps), "--device", s.device,
            "--checkpoint-dir", str(run), "--checkpoint-every", str(max(1, steps // SNAPSHOTS)), "--keep", "100",
            "--no-progress", "--log-every", "4" if s.smoke else "500"]
    if s.smoke:
        argv += ["--batch-size", "8", "--warmup", "2", "--threads", "1"]
    code = s.run("train", argv, seconds)
    if code != 0 and not (run / "latest").exists() and s.left() - reserve > 120:
        s.say("train failed with nothing saved: once more without the fast path")
        shutil.rmtree(run, ignore_errors=True)
        s.run("train_nofast", [*argv, "--no-fast"], s.left() - reserve)
    return run


def post_process(s: Session, run: Path, work: Path, reserve: float):
    """Export the run's EMA weights and snapshots and measure them, in ``work``; then pack it into OUT/model.tar
    (with the run's last checkpoint instead if the snapshots could not be exported)."""
    hardware = "smoke" if s.smoke else "1 NVIDIA H200 (CUDA graph, bf16 autocast)"
    prefix, n_small = work / "mnist_unet", "10" if s.smoke else "200"
    steps = [
        ("export", ["data/export_pretrained.py", str(run), "--out", str(prefix), "--hardware", hardware]),
        ("quality", ["benchmarks/sample_quality.py", "--checkpoint", str(prefix), "--n", "20" if s.smoke else "500",
                     "--device", s.device, "--json", str(work / "sample_quality.json"),
                     *(["--rows", "ddim-5", "ddim-5@w0"] if s.smoke else [])]),
        ("progress", ["data/export_progress.py", str(run), "--out", str(work / "progress"), "--n", n_small,
                      "--device", s.device, "--hardware", hardware]),
        ("steps", ["benchmarks/quality_vs_steps.py", "--checkpoint", str(prefix), "--n", n_small, "--device", s.device,
                   "--out", str(work / "quality_vs_steps.json"), *(["--steps", "2", "3"] if s.smoke else ["--ddpm-1000"])]),
    ]
    for name, argv in steps:
        if s.left() - reserve > 15:
            s.run(name, argv, s.left() - reserve - 10)
    tar_path = s.out / "model.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(work, arcname="model")
        if not (work / "progress" / "progress.json").exists() and (run / "latest").exists():
            tar.add((run / "latest").resolve(), arcname="model/latest")
    s.say(f"packed {tar_path} ({tar_path.stat().st_size / 2**20:.1f} MiB)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=540, help="seconds for the whole session")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES),
                        help="which stages, in this order (default: %(default)s)")
    parser.add_argument("--steps", type=int, help="training steps (default: what fits, from stage 1's speed)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    s = Session(args.out, args.budget, args.smoke)
    s.say(f"python {sys.version.split()[0]}, budget {args.budget:.0f} s, device {s.device}")
    work = Path(tempfile.mkdtemp(prefix="gpu_session-"))
    run = work / "run"
    (work / "model").mkdir()
    for i, stage in enumerate(args.stages):
        later = args.stages[i + 1:]
        reserve = sum(STAGES[name] for name in later)
        if stage == "throughput":
            throughput(s, s.left() - reserve - 5)
        elif stage == "time_to_quality":
            time_to_quality(s)
        elif stage == "train":
            train(s, run, reserve, args.steps)
        elif stage == "post":
            post_process(s, run, work / "model", reserve)
    s.say("done")


if __name__ == "__main__":
    main()
