"""Sampler explorer: sampler, steps, spacing, η, class, guidance, x̂₀ bound and schedule at inference,
with x_T and the seed fixed, so only the knob changes the picture.

    knobs(controls) ──► result(inputs, **knobs): sample + PNG (cached) ──► to_static / filmstrip / widget
    widget: a move shows "computing …" at once; sampling runs in a worker thread (``background``),
    the newest setting wins, and picture and caption (``describe``) change together, from the knobs
    the picture was made with.

Timesteps are 0-based: code t = k is the paper's t = k + 1.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure

from torch import nn

from .. import plots, viz
from ..diffusion import predict_x0
from ..sampling import SAMPLERS
from ..schedules import get_schedule
from ..validate import check_num_steps, finite_number, one_of
from .common import SPACINGS, cache_put
from .sampler_captions import describe, describe_bound, describe_schedule  # noqa: F401 (all three public here)

STEP_CHOICES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)  # the steps slider's stops (those ≤ T)
GUIDANCE_MAX = 20.0  # the guidance slider's range is [0, GUIDANCE_MAX]
BOUNDS = ("none", "clip", "dynamic")  # the "x̂₀ bound" knob: nothing, clip_sample, thresholding
DYNAMIC = {"dynamic_thresholding_ratio": 0.995, "sample_max_value": 3.0}  # the "dynamic" bound's settings
AT_INFERENCE = ("as trained", "linear", "cosine")  # the "schedule at inference" knob: whose ᾱ the chain follows
PREVIEW_SECONDS = 0.25  # while sampling, the busy caption and the x̂₀ preview change at most this often
BUSY_CLASS = "diffviz-busy"  # the picture's CSS class while it is not yet the selected setting's
BUSY_CSS = f"<style>.{BUSY_CLASS} {{opacity: 0.4; filter: grayscale(1);}}</style>"


@dataclass
class SamplerInputs:
    """What stays fixed while the knobs move, and the results sampled so far."""

    model: object  # ε_θ(x_t, t[, y])
    schedule: object  # NoiseSchedule
    x_T: torch.Tensor  # (N, C, H, W): where every run starts
    seed: int  # seeds each run's generator afresh
    num_classes: int | None  # None: an unconditional model
    nrow: int | None = None
    results: OrderedDict = field(default_factory=OrderedDict)  # {knobs: result}, the latest 64


def inputs(model, schedule, shape=None, num_classes=None, seed=0, nrow=None) -> SamplerInputs:
    """Draw x_T with ``seed``. shape (N, C, H, W), default 16 images of ``model.config``'s size;
    ``num_classes`` defaults to ``model.config.num_classes``."""
    config = getattr(model, "config", None)
    if shape is None and hasattr(config, "image_size"):
        shape = (16, config.in_channels, config.image_size, config.image_size)
    if shape is None or len(shape) != 4:
        raise ValueError(f"shape must be (N, C, H, W) (or a model with a UNetConfig), got {shape!r}")
    num_classes = num_classes if num_classes is not None else getattr(config, "num_classes", None)
    x_T = torch.randn(tuple(shape), generator=viz.generator(seed))
    return SamplerInputs(model, schedule, x_T, seed, num_classes, nrow)


def knobs(inp: SamplerInputs, sampler="ddim", num_steps=20, spacing="trailing", eta=0.0, cls=None,
          guidance_scale=1.0, bound="none", at_inference="as trained") -> dict:
    """The ``sample`` arguments for these control values. cls: "mixed" (0, 1, 2, … in turn; the default
    for a conditional model), "none" (unconditional, no guidance) or a class index; η only counts for DDIM;
    bound (x̂₀ before each step): "none", "clip" (``clip_sample``) or "dynamic" (``thresholding`` with
    ``DYNAMIC``'s ratio and maximum); at_inference: "as trained" or a schedule name, whose ᾱ (same T) the
    chain follows at the nearest trained timesteps (``inference_schedule``, ``diffviz.schedule_mapping``)."""
    cls = cls if cls is not None else ("mixed" if inp.num_classes else "none")
    if cls != "none" and not inp.num_classes:
        raise ValueError(f"cls={cls!r} needs a class-conditional model (num_classes), this one has none")
    y = None if cls == "none" else (torch.arange(inp.x_T.shape[0]) % inp.num_classes if cls == "mixed" else int(cls))
    return {"sampler": sampler, "num_steps": num_steps, "timestep_spacing": spacing,
            "eta": eta if sampler == "ddim" else 0.0, "y": y, "guidance_scale": None if y is None else guidance_scale,
            "clip_sample": bound == "clip", "thresholding": bound == "dynamic",
            **(DYNAMIC if bound == "dynamic" else {}), "inference_schedule": None if at_inference == "as trained"
            else get_schedule(at_inference, inp.schedule.num_timesteps)}


class StepWatch:
    """``model`` as ``sample`` calls it, calling ``on_step(i, x_t, t, ε̂)`` after the first model call of
    each sampler step i = 0, 1, … (with guidance that first call is ε(x_t, t, ∅)). ``on_step`` may raise
    to stop the sampling."""

    def __init__(self, model, on_step):
        self.model, self.on_step, self.step, self.t = model, on_step, -1, None

    def __call__(self, x_t, t, *y):
        eps = self.model(x_t, t, *y)
        if int(t[0]) != self.t:
            self.step, self.t = self.step + 1, int(t[0])
            self.on_step(self.step, x_t, self.t, eps)
        return eps


def result(inp: SamplerInputs, on_step=None, **kn) -> dict:
    """Sample for these knobs (cached) with ``viz.run_sampler``: {"sample" (N, C, H, W), "timesteps",
    "seconds", "png"}. on_step(i, x_t, t, ε̂): called after each step's first model call (``StepWatch``)."""
    key = repr(sorted((k, v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in kn.items()))
    if key not in inp.results:
        start, model = time.perf_counter(), inp.model
        params = list(model.parameters()) if isinstance(model, nn.Module) else []
        training = isinstance(model, nn.Module) and model.training
        if training:  # sample() does it for an nn.Module, not for the StepWatch around one
            model.eval()
        try:
            traj = viz.run_sampler(model if on_step is None else StepWatch(model, on_step), inp.schedule, inp.x_T,
                                   seed=inp.seed, device=params[0].device if params else None,
                                   cuda_graph=False if on_step else None, **kn)
        finally:
            if training:
                model.train()
        sample_ = traj.sample.numpy()
        cache_put(inp.results, key, {"sample": sample_, "timesteps": traj.timesteps.numpy(),
                                     "seconds": time.perf_counter() - start,
                                     "png": plots.image_png(sample_, inp.nrow)}, max_items=64)
    return inp.results[key]


def preview_png(inp: SamplerInputs, x_t, t: int, eps) -> bytes:
    """x̂₀ = predict_x0(x_t, ε̂) at step t, as the PNG the picture shows while sampling."""
    return plots.image_png(predict_x0(inp.schedule, x_t, t, eps).float().cpu().clamp(-1, 1).numpy(), inp.nrow)


def steps_values(inp: SamplerInputs, values, default) -> list:
    """``values`` checked against T (each in [1, T]); without them, the ``default`` ones that fit T."""
    T = inp.schedule.num_timesteps
    if values is None:
        return [s for s in default if s <= T]
    return [check_num_steps(s, T) for s in values]


def to_static(inp: SamplerInputs, kn: dict, num_steps_values=None) -> go.Figure:
    """Frames over the number of steps (default 1, 2, 5, 10, 20, 50), the other knobs as in ``kn``."""
    values = steps_values(inp, num_steps_values, (1, 2, 5, 10, 20, 50))
    pngs = [result(inp, **{**kn, "num_steps": s})["png"] for s in values]
    title = f"{kn['sampler'].upper()} samples · {describe_schedule(kn)}"
    fig = plots.image_panels_figure([title], pngs[:1], height=360)
    traces = [(s, [go.Image(source=plots.data_uri(p))]) for s, p in zip(values, pngs)]
    return plots.add_slider_frames(fig, traces, [0], prefix="steps = ")


def filmstrip(inp: SamplerInputs, kn: dict, num_steps_values=None) -> Figure:
    """Rows DDPM and DDIM, columns numbers of steps (default 1, 5, 10, 50), the other knobs as in ``kn``."""
    values = steps_values(inp, num_steps_values, (1, 5, 10, 50))
    rows = [[plots.png_to_array(result(inp, **{**kn, "sampler": name, "num_steps": s})["png"]) for s in values]
            for name in SAMPLERS]
    names = [f"DDPM · {describe_schedule(kn)}", f"DDIM η={kn['eta']:g} · {describe_schedule(kn)}"]
    return plots.image_filmstrip(rows, names, [f"{s} steps" for s in values])


def sampler_explorer(model, schedule, shape=None, num_classes=None, seed=0, sampler="ddim", num_steps=20, eta=0.0,
                     guidance_scale=1.0, nrow=None, spacing="trailing", bound="none", at_inference="as trained"):
    """Sample with the chosen sampler (DDPM / DDIM), number of steps, timestep spacing, η and, for a
    class-conditional model (``num_classes`` or ``model.config.num_classes``), class and guidance
    scale w in [0, 20]; the "x̂₀ bound" knob (``bound``: "none", "clip", "dynamic") bounds x̂₀ before
    each step (``diffviz.thresholding``; "dynamic" uses ``DYNAMIC``); the "schedule at inference" knob
    (``at_inference``: "as trained", "linear", "cosine") runs the chain along that schedule's ᾱ, at the
    nearest trained timesteps (``diffviz.schedule_mapping``). x_T and the sampler's generator are
    fixed by ``seed``; results are cached per setting. Sliders act on release. The first picture is
    drawn at once; after that a move dims the picture and says "computing …" at once, a worker thread
    samples (showing x̂₀ as it fills in), the newest setting wins (older work is dropped), and picture
    and caption change together; the caption names every knob of the picture shown. Returns an
    ``Explorer`` (sampler, steps_slider, spacing, eta_slider, class_dropdown, guidance_slider,
    bound_buttons, schedule_dropdown, image, readout, inputs, x_T, knobs(), runner (``background.LatestWins``:
    submitted / completed / abandoned counts), wait(timeout) → True once the newest setting is shown)."""
    import ipywidgets as W

    from .background import LatestWins
    from .base import Explorer

    inp = inputs(model, schedule, shape, num_classes, seed, nrow)
    T = schedule.num_timesteps
    one_of("sampler", sampler, SAMPLERS)
    one_of("spacing", spacing, SPACINGS)
    one_of("bound", bound, BOUNDS)
    one_of("at_inference", at_inference, AT_INFERENCE)
    num_steps = check_num_steps(num_steps, T)
    eta = finite_number("eta", eta, low=0, high=1)
    guidance_scale = finite_number("guidance_scale", guidance_scale, low=0, high=GUIDANCE_MAX)
    n_cls = inp.num_classes
    sampler_buttons = W.ToggleButtons(options=[("DDPM", "ddpm"), ("DDIM", "ddim")], value=sampler,
                                      style={"button_width": "60px"})
    steps_slider = W.SelectionSlider(options=sorted({s for s in STEP_CHOICES if s <= T} | {num_steps, T}),
                                     value=num_steps, description="steps", continuous_update=False)
    spacing_menu = W.Dropdown(options=list(SPACINGS), value=spacing, description="spacing",
                              layout=W.Layout(width="200px"))
    eta_slider = W.FloatSlider(eta, min=0, max=1, step=0.1, description="η (DDIM)", continuous_update=False)
    labels = [("mixed (0, 1, 2, …)", "mixed"), ("unconditional ∅", "none")] + [(str(k), k) for k in range(n_cls or 0)]
    class_dropdown = W.Dropdown(options=labels, value="mixed" if n_cls else "none", description="class",
                                disabled=not n_cls, layout=W.Layout(width="220px"))
    guidance_slider = W.FloatSlider(guidance_scale, min=0, max=GUIDANCE_MAX, step=0.5, description="guidance w",
                                    continuous_update=False, disabled=not n_cls)
    bound_buttons = W.ToggleButtons(options=list(BOUNDS), value=bound, description="x̂₀ bound",
                                    style={"button_width": "80px"})
    schedule_dropdown = W.Dropdown(options=list(AT_INFERENCE), value=at_inference, description="schedule at inference",
                                   style={"description_width": "initial"}, layout=W.Layout(width="260px"))
    image, line = W.Image(format="png"), W.HTML()
    shown = {}  # the picture on show: {"png", "caption"}

    def current_knobs() -> dict:
        """The sample() arguments the controls select."""
        return knobs(inp, sampler_buttons.value, steps_slider.value, spacing_menu.value, eta_slider.value,
                     class_dropdown.value, guidance_slider.value, bound_buttons.value, schedule_dropdown.value)

    def show(kn: dict, r: dict):
        """Picture, caption and ``.current`` of one finished setting, together."""
        visits = ", ".join(map(str, r["timesteps"][:10])) + (", …" if len(r["timesteps"]) > 10 else "")
        if len(r["timesteps"]) != kn["num_steps"]:  # steps mapped onto one trained timestep run once
            visits += f" — {len(r['timesteps'])} distinct"
        shown.update(png=r["png"], caption=f"{describe(kn, inp.seed)} · visiting t = {visits} ({plots.T_NOTE})"
                                           f" · sampled in {r['seconds']:.2f} s")
        image.value, line.value = r["png"], shown["caption"]
        image.remove_class(BUSY_CLASS)

    def done(kn: dict, r: dict):  # the worker's result for the newest setting
        show(kn, r)
        explorer.current = {**kn, **r}
        explorer.show_error(None)

    def busy(kn: dict, step: int = 0, png: bytes | None = None):
        image.add_class(BUSY_CLASS)
        if png is not None:
            image.value = png
        what = f"x̂₀ at step {step}" if png is not None else "not yet this setting's"
        line.value = (f"<b style='color:#c60'>computing</b> {describe(kn, inp.seed)} … "
                      f"step {step}/{kn['num_steps']} (dimmed picture: {what})")

    def work(kn: dict, job) -> dict:
        last = [time.perf_counter()]

        def on_step(i, x_t, t, eps):
            job.check()  # a newer setting was requested: drop this one (raises Abandoned)
            if time.perf_counter() - last[0] >= PREVIEW_SECONDS and i + 1 < kn["num_steps"]:
                png = preview_png(inp, x_t, t, eps)
                job.report(lambda: busy(kn, i + 1, png))
                last[0] = time.perf_counter()

        return result(inp, on_step=on_step, **kn)

    def failed(kn: dict, err: Exception):
        image.value, line.value = shown.get("png", b""), shown.get("caption", "")
        image.remove_class(BUSY_CLASS)
        explorer.show_error(err)

    runner = LatestWins(work, busy, done, failed)

    def render(w):
        eta_slider.disabled = sampler_buttons.value != "ddim"
        guidance_slider.disabled = class_dropdown.value == "none"
        kn = current_knobs()
        if not shown:  # the first picture: drawn at once, so the explorer never opens empty
            r = result(inp, **kn)
            show(kn, r)
            return {**kn, **r}
        runner.submit(kn)  # busy at once; the worker shows the newest setting's picture when done
        return None

    controls = [sampler_buttons, steps_slider, spacing_menu, eta_slider, class_dropdown, guidance_slider,
                bound_buttons, schedule_dropdown]
    explorer = Explorer("SamplerExplorer", "Samplers (fixed x_T and seed: only the knob changes)", controls,
                        [W.HTML(BUSY_CSS), line, image], render,
                        note="guidance: w = 0 unconditional, 1 conditional, > 1 stronger · x̂₀ bound: clip = "
                             "clip_sample, dynamic = thresholding (Saharia et al. 2022) · schedule at inference: "
                             "that schedule's ᾱ, at the nearest trained t",
                        static=lambda w, num_steps_values=None: to_static(inp, current_knobs(), num_steps_values),
                        filmstrip=lambda w, num_steps_values=None: filmstrip(inp, current_knobs(), num_steps_values),
                        parts=dict(sampler=sampler_buttons, steps_slider=steps_slider, spacing=spacing_menu,
                                   eta_slider=eta_slider, class_dropdown=class_dropdown,
                                   guidance_slider=guidance_slider, bound_buttons=bound_buttons,
                                   schedule_dropdown=schedule_dropdown, image=image,
                                   readout=line, inputs=inp, x_T=inp.x_T, knobs=current_knobs, runner=runner,
                                   wait=runner.wait))
    return explorer
