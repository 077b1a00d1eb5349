"""Median Python time of one control update, per widget helper, at the sizes of the Widgets issue:
a 4×4 grid of 28×28 images and one 128×128 RGB image (budget: ≤ 30 ms per slider move).

An update is timed from ``slider.value = v`` until the observer returns (all Python work: compute,
PNG encoding, trace updates); the browser's drawing is not included. Models have random weights —
what a slider scrubs is precomputed, so their cost shows in "build", not in "update".

The second table times the sampler explorer the way a student meets it: the pretrained MNIST model,
16 digits, the steps slider moved three stops in a row (a burst of key presses). From the last move:
time until the caption says "computing" and until the final picture's caption is shown (median over
repeats; each repeat starts with an empty cache). "burst" is from the first move to the final picture.
An explorer without a busy state shows "never".

    .venv/bin/python benchmarks/widget_latency.py [--repeats 3] [--threads 1] [--sampler-only]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not
import diffviz as dv  # noqa: E402
from diffviz import data, widgets  # noqa: E402
from diffviz.toy import ToyMLP  # noqa: E402
from diffviz.training import TrainEvent  # noqa: E402
from diffviz.unet import UNet, preset  # noqa: E402

BUDGET_MS = 30.0


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def slider_times(slider, values, repeats, widget=None):
    """Seconds per ``slider.value = v`` over ``values``, ``repeats`` passes (later passes may hit a
    cache; the table's "1st pass" column is the first pass alone). With ``widget``: until it has
    settled (an explorer that samples in a worker thread shows the picture later)."""
    times = []
    for _ in range(repeats):
        for v in values:
            if slider.value == v:
                continue
            start = time.perf_counter()
            slider.value = v
            if widget is not None:
                settle(widget)
            times.append(time.perf_counter() - start)
        times.append(None)  # end of a pass
    return times


def seeded(module_fn, seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return module_fn().eval()


def cases(repeats):
    """Yield (helper, input, build seconds, update times (None ends a pass), widget)."""
    sched = dv.linear_schedule(1000)
    cat = data.load_image("cat", size=128)  # (3, 128, 128)
    digits = data.load_dataset("mnist-5k", n=16).x  # (16, 1, 28, 28): a 4×4 grid
    inputs = {"4×4 of 28×28": digits, "128×128 RGB": cat[None]}
    sweep = list(range(0, 1000, 41))

    for name, x in inputs.items():
        w, build = timed(lambda: widgets.forward_explorer(x, ["linear", "cosine"]))
        yield "forward_explorer", name + " (2 schedules)", build, slider_times(w.t_slider, sweep, repeats), w

    w, build = timed(lambda: widgets.schedule_explorer())
    times = slider_times(w.T_slider, [10, 50, 100, 1000, 2000], repeats)[:-1]
    times += slider_times(w.steps_slider, [5, 10, 20, 50], repeats)
    yield "schedule_explorer", "4 schedules, T and steps sliders", build, times, w

    for name, x in inputs.items():
        oracle = dv.GaussianMixtureDenoiser(x.reshape(x.shape[0], -1), 0.2, schedule=sched)
        traj = dv.sample(oracle, sched, tuple(x.shape), sampler="ddim", num_steps=50,
                         generator=torch.Generator().manual_seed(0))
        w, build = timed(lambda: widgets.trajectory_explorer(traj))
        times = slider_times(w.step_slider, range(50), repeats)
        yield "trajectory_explorer", name + ", 50 DDIM steps", build, times, w

    for name, x in inputs.items():
        C, H = x.shape[1], x.shape[2]
        unet = seeded(lambda: UNet(preset("tiny", in_channels=C, image_size=H)))
        w, build = timed(lambda: widgets.noise_prediction_explorer(unet, x, sched, num_frames=25))
        times = slider_times(w.t_slider, w.timesteps, repeats)
        yield "noise_prediction_explorer", name + ", tiny UNet, 25 t", build, times, w

    mix = data.gaussian_mixture_params()
    oracle2d = dv.GaussianMixtureDenoiser(mix.means, mix.stds, mix.weights, sched)
    points = data.load_dataset("gaussian_mixture", n=1000).x
    toy = seeded(ToyMLP)
    w, build = timed(lambda: widgets.toy2d_explorer(points, sched, oracle=oracle2d, model=toy, num_steps=100))
    yield ("toy2d_explorer", "1000 points, oracle + ToyMLP, 100 steps", build,
           slider_times(w.t_slider, [v for _, v in w.t_slider.options][::4], repeats), w)

    unet = seeded(lambda: UNet(preset("tiny", in_channels=1, image_size=28)))
    w, build = timed(lambda: widgets.sampler_explorer(unet, sched, shape=(16, 1, 28, 28), num_steps=10))
    fresh = slider_times(w.steps_slider, [1, 2, 5], 1, w)  # new settings: really samples (1–5 steps, on release)
    yield "sampler_explorer", "4×4 of 28×28, tiny UNet, fresh 1-5 steps", build, fresh, w
    cached = slider_times(w.steps_slider, [1, 2, 5, 10], repeats, w)
    yield "sampler_explorer", "4×4 of 28×28, cached setting", 0.0, cached, w

    mon, build = timed(lambda: widgets.training_monitor(min_interval=0.0))
    samples = digits.clone()
    times = []
    for i in range(1, 20 * repeats + 1):
        event = TrainEvent(10 * i, 1.0 / i, 1e-3, 640 * i, 0.4 * i, samples if i % 5 == 0 else None)
        times.append(timed(lambda: mon.callback(event))[1])
    yield "training_monitor", "callback, unthrottled; samples every 5th", build, times, mon


SAMPLER_CASES = (  # (name, guidance w, steps slider stops of the burst: the last one is the setting timed)
    ("DDIM-20", 1.0, [5, 10, 20]),
    ("DDIM-200", 1.0, [50, 100, 200]),
    ("guidance w=3, DDIM-50", 3.0, [10, 20, 50]),
)


def settle(w, timeout=600.0):
    """Until the explorer shows its newest setting (an explorer without a worker is always settled)."""
    wait = getattr(w, "wait", None)
    if wait is not None and not wait(timeout):
        raise TimeoutError(f"{w.kind} still busy after {timeout} s")


def burst_times(w, stops, repeats):
    """[(to "computing" s or None, to final picture s, burst s, completed/submitted or "")] per repeat."""
    marks = []  # (time, caption), from whichever thread sets it
    w.readout.observe(lambda change: marks.append((time.perf_counter(), change["new"])), names="value")
    rows = []
    for _ in range(repeats):
        w.inputs.results.clear()
        w.steps_slider.value = 2
        settle(w)
        runner = getattr(w, "runner", None)
        counts = (runner.submitted, runner.completed) if runner else (0, 0)
        first = time.perf_counter()
        for v in stops:
            last = time.perf_counter()
            w.steps_slider.value = v
        settle(w)
        after = [(t - last, text) for t, text in marks if t >= last]
        busy = next((t for t, text in after if "computing" in text), None)
        final = next(t for t, text in after if f" · {stops[-1]} steps" in text and "computing" not in text)
        shown = f"{runner.completed - counts[1]}/{runner.submitted - counts[0]}" if runner else ""
        rows.append((busy, final, final + last - first, shown))
    return rows


def sampler_cases(repeats):
    """Yield (case, rows of ``burst_times``, last error) for the sampler explorer on the pretrained model."""
    model, sched, _ = dv.load_pretrained("mnist")
    for name, w_scale, stops in SAMPLER_CASES:
        w = widgets.sampler_explorer(model, sched, shape=(16, 1, 28, 28), num_steps=2, guidance_scale=w_scale)
        settle(w)
        yield name, burst_times(w, stops, repeats), w.last_error


def print_sampler_table(repeats):
    print(f"\nsampler explorer, pretrained MNIST, 16 digits; steps slider moved 3 stops quickly, {repeats} repeats")
    print(f"{'case':<24} {'stops':<14} {'to computing ms':>16} {'to final s':>11} {'burst s':>8} {'shown/moves':>12}")
    for (name, _, stops), (_, rows, error) in zip(SAMPLER_CASES, sampler_cases(repeats)):
        busy = [r[0] for r in rows if r[0] is not None]
        busy_ms = f"{np.median(busy) * 1e3:16.1f}" if len(busy) == len(rows) else f"{'never':>16}"
        shown = rows[-1][3] or "-"
        print(f"{name:<24} {'→'.join(map(str, stops)):<14} "
              f"{busy_ms} {np.median([r[1] for r in rows]):11.2f} {np.median([r[2] for r in rows]):8.2f} "
              f"{shown:>12}" + (f"  error: {error}" if error else ""), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="passes over each slider's values")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--sampler-only", action="store_true", help="only the sampler explorer's table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.sampler_only:
        return print_sampler_table(args.repeats)
    print(f"torch {torch.__version__}, {args.threads} thread(s); budget {BUDGET_MS:.0f} ms per update\n")
    print(f"{'helper':<26} {'input':<42} {'build s':>8} {'median ms':>10} {'1st pass':>9} {'p90 ms':>7} {'n':>4}  ok")
    for helper, name, build, times, w in cases(args.repeats):
        first = np.asarray(times[: times.index(None)] if None in times else times) * 1e3
        ms = np.asarray([t for t in times if t is not None]) * 1e3
        ok = "yes" if max(np.median(ms), np.median(first)) <= BUDGET_MS else "NO"
        err = f"  error: {w.last_error}" if w.last_error else ""
        print(f"{helper:<26} {name:<42} {build:8.2f} {np.median(ms):10.1f} {np.median(first):9.1f} "
              f"{np.percentile(ms, 90):7.1f} {len(ms):4d}  {ok}{err}", flush=True)
    print_sampler_table(args.repeats)


if __name__ == "__main__":
    main()
