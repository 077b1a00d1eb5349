"""The reverse process: run a sampler from pure noise to data, keeping every step.

``sample`` works with ANY ε-predictor ``eps_model(x_t, t)`` (or ``eps_model(x_t, t, y)`` when a
class label ``y`` is given): a trained U-Net, a toy MLP, or the exact denoiser of a known
distribution (``diffviz.oracle``). It returns a ``Trajectory`` holding the input x_t, the predicted
noise ε̂ and the predicted clean sample x̂_0 at every step — the "full noise removal" view.

Timesteps are 0-based in [0, T−1]; code t = k is the paper's t = k + 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .diffusion import check_schedule, ddim_step_unchecked, ddpm_step_unchecked, predict_x0_unchecked
from .graphed import GraphedModel
from .guidance import check_classifier_guidance, make_guidance
from .thresholding import threshold_spec
from .variances import VARIANCE_TYPES, split_model_output
from .schedule_mapping import timesteps_for_schedule
from .schedules import respace, sampling_timesteps
from .validate import (check_bool, check_generator, check_guidance_scale, check_labels, check_num_steps, check_shape,
                       finite_number, float_tensor, label_tensor, one_of, resolve_device)

SAMPLERS = ("ddpm", "ddim")


@dataclass
class Trajectory:
    """One sampling run. S = number of sampler steps; shapes follow the ``shape`` asked for.

    ``x_t[i]`` is the input of step i, at training timestep ``timesteps[i]`` — the t the model was
    called with (also for DDPM with fewer than T steps, whose respaced chain runs at these
    timesteps); explorers read them here rather than recomputing them. ``eps[i]`` is the (guided)
    noise the model predicted there and ``x0_hat[i]`` the clean sample that removing all of that
    noise gives (``predict_x0``). All tensors live on the CPU, in float32. With ``record=False``
    only ``timesteps`` and ``sample`` are kept (x_t, eps, x0_hat are None). The last fields name
    the knobs that made the run, for captions.
    """

    timesteps: torch.Tensor  # (S,) int64, descending training timesteps visited
    x_t: Optional[torch.Tensor]  # (S, *shape) input of each step
    eps: Optional[torch.Tensor]  # (S, *shape) predicted noise ε̂ at each step
    x0_hat: Optional[torch.Tensor]  # (S, *shape) predicted clean sample x̂_0 at each step
    sample: torch.Tensor  # (*shape) the final sample x_0
    sampler: str = "ddpm"  # "ddpm" or "ddim"
    timestep_spacing: str = "trailing"  # how the timesteps were picked ("trailing", "leading", "linspace")
    eta: float = 0.0  # DDIM's η (0 for DDPM)
    guidance_scale: Optional[float] = None  # w of classifier-free guidance; None without labels
    classifier_scale: Optional[float] = None  # s of classifier guidance; None without a classifier

    def __len__(self):
        return self.timesteps.numel()


def guided_eps(eps_model, x_t, t, y=None, guidance_scale=None):
    """The ε̂ the sampler uses. Without ``y``: ``eps_model(x_t, t)``. With ``y`` and a scale w,
    classifier-free guidance (Ho & Salimans 2022, Eq. 6, written with w' = 1 + w):
    ε̂ = ε(x_t, t, ∅) + w · (ε(x_t, t, y) − ε(x_t, t, ∅)),
    so w = 0 is unconditional, w = 1 is plain conditional and w > 1 pushes towards the class.
    ∅ is passed as ``y=None``. ``guidance_scale`` is None or a finite number; it needs ``y``.
    A learned-variance model's v is split off (``guided_eps_and_variance`` keeps it).
    """
    guidance_scale = check_guidance_scale(guidance_scale, y)
    return guided_eps_and_variance(eps_model, x_t, t, y, guidance_scale)[0]


def guided_eps_and_variance(eps_model, x_t, t, y=None, guidance_scale=None):
    """(ε̂, v) for checked arguments: ε̂ as ``guided_eps``; v, the raw variance output of a
    ``learn_sigma`` model (None for a model that outputs ε̂ only), is not guided: it comes from the
    conditional call, or the unconditional one at w = 0 (as GLIDE guides a learned-variance model)."""
    if y is None:
        return split_model_output(eps_model(x_t, t), x_t)
    if guidance_scale is None or guidance_scale == 1:
        return split_model_output(eps_model(x_t, t, y), x_t)
    uncond, v_uncond = split_model_output(eps_model(x_t, t, None), x_t)
    if guidance_scale == 0:
        return uncond, v_uncond
    cond, v = split_model_output(eps_model(x_t, t, y), x_t)
    return uncond + guidance_scale * (cond - uncond), v


def _model_device(eps_model, device):
    if device is not None:
        return resolve_device(device)
    if isinstance(eps_model, nn.Module):
        for p in eps_model.parameters():
            return p.device
    return torch.device("cpu")


def _check_x_T(x_T, shape):
    float_tensor("x_T", x_T)
    if tuple(x_T.shape) != shape:
        raise ValueError(f"x_T must have shape {shape}, got {tuple(x_T.shape)}")
    if not torch.isfinite(x_T).all():
        raise ValueError("x_T holds NaN or inf values; start from finite noise, e.g. torch.randn(shape)")


def _check_against_model(eps_model, schedule, y, variance):
    """What the model's own config says (``num_timesteps``, ``num_classes``, ``learn_sigma``), checked
    once here."""
    config = getattr(getattr(eps_model, "_orig_mod", eps_model), "config", None)
    if variance == "learned_range" and getattr(config, "learn_sigma", True) is False:
        raise ValueError("variance='learned_range' needs a model that outputs ε̂ and v (learn_sigma=True); "
                         "this one was built with learn_sigma=False: use 'fixed_small' or 'fixed_large'")
    model_T = getattr(config, "num_timesteps", None)
    if model_T is not None and schedule.num_timesteps > model_T:
        raise ValueError(f"the schedule has T = {schedule.num_timesteps} timesteps but the model was "
                         f"trained with num_timesteps={model_T}")
    if y is None or config is None or not hasattr(config, "num_classes"):
        return None
    if config.num_classes is None:
        raise ValueError("y was given but the model is unconditional (num_classes=None); pass y=None")
    return config.num_classes


def _check_arguments(eps_model, schedule, shape, sampler, num_steps, eta, generator, y, guidance_scale, x_T,
                     variance, classifier, classifier_scale, **flags):
    """``sample``'s checks, all in one place. Returns the normalised (shape, num_steps, eta,
    guidance_scale, classifier_scale, y): y as None, an int or an int64 tensor, in the label range of
    the model (when it takes y) and of the classifier (when its config names one)."""
    if not callable(eps_model):
        raise TypeError(f"eps_model must be callable as eps_model(x_t, t[, y]), got {type(eps_model).__name__}")
    check_schedule(schedule)
    shape = check_shape(shape)
    one_of("sampler", sampler, SAMPLERS)
    num_steps = check_num_steps(num_steps, schedule.num_timesteps)
    eta = finite_number("eta", eta, low=0)
    check_generator(generator)
    one_of("variance", variance, VARIANCE_TYPES)
    if variance == "learned_range" and sampler != "ddpm":
        raise ValueError("variance='learned_range' is DDPM's σ_t; DDIM's σ comes from eta (pass sampler='ddpm')")
    for name, flag in flags.items():
        check_bool(name, flag)
    if x_T is not None:
        _check_x_T(x_T, shape)
    guidance_scale = check_guidance_scale(guidance_scale, y)
    classifier_scale, y = check_classifier_guidance(classifier, classifier_scale, y, shape[0])
    y_model = y if classifier is None or guidance_scale is not None else None  # else y is the classifier's
    num_classes = _check_against_model(eps_model, schedule, y_model, variance)
    return shape, num_steps, eta, guidance_scale, classifier_scale, check_labels(y, shape[0], num_classes)


def _learned_variance(variance, v):
    """v for "learned_range" (a model without a v output is an error here, at its first step)."""
    if variance != "learned_range":
        return None
    if v is None:
        raise ValueError("variance='learned_range' needs a model that outputs ε̂ and v stacked on dim 1 "
                         "(2C channels, learn_sigma=True); this model returned ε̂ only")
    return v


def _plan(schedule, sampler, num_steps, spacing, inference_schedule=None):
    """The steps to run: the visited timesteps, a list of (step index, DDIM's previous timestep) and the
    schedule the steps use. The visited timesteps are ``sampling_timesteps`` of the training schedule, or,
    with an ``inference_schedule``, the training timesteps nearest its ᾱ (``timesteps_for_schedule``;
    ``num_steps`` then counts its steps, None = all of them)."""
    T = schedule.num_timesteps
    if inference_schedule is None:
        kept = sampling_timesteps(T, num_steps, spacing)  # (S,) descending
    else:
        kept = timesteps_for_schedule(schedule, inference_schedule, num_steps, spacing).timesteps  # (K,)
    if sampler == "ddim":
        prev = torch.cat([kept[1:], torch.tensor([-1])])
        return kept, [(int(t), int(p)) for t, p in zip(kept, prev)], schedule
    # DDPM: with fewer steps, run the respaced chain whose betas come from the kept ᾱ values.
    step_schedule = schedule if kept.numel() == T else respace(schedule, kept)
    indices = torch.arange(kept.numel() - 1, -1, -1)  # step i of the respaced chain ↔ kept[...]
    return kept, [(int(i), None) for i in indices], step_schedule


@torch.no_grad()
def sample(eps_model, schedule, shape, sampler="ddpm", num_steps=None, eta=0.0, generator=None,
           device=None, y=None, guidance_scale=None, record=True, *, timestep_spacing="trailing",
           variance="fixed_small", clip_sample=False, thresholding=False, dynamic_thresholding_ratio=0.995,
           sample_max_value=1.0, x_T=None, progress=False, cuda_graph=None, classifier=None,
           classifier_scale=None, inference_schedule=None) -> Trajectory:
    """Generate samples by running the reverse process from x_T ~ N(0, I).

    "ddpm": ancestral sampling (Ho et al. 2020, Algorithm 2), σ² from ``variance``; with
    ``num_steps`` < T the chain is respaced (Nichol & Dhariwal 2021, Sec. 4). "learned_range" takes
    v from a ``learn_sigma`` model and interpolates between the β̃ and β of the chain being run
    (the respaced one with fewer steps, as improved-diffusion does); DDIM uses only ε̂.
    "ddim": Song et al. 2020, Eq. 12 with σ(η) from Eq. 16 (η = ``eta``), over ``num_steps``.
    ``timestep_spacing`` ("trailing", "leading", "linspace") picks the visited timesteps as in
    diffusers; "trailing" starts at t = T − 1, where x_T ~ N(0, I) is the right start.
    ``inference_schedule`` (a NoiseSchedule; None = the training one, as before) runs the chain along
    ITS ᾱ: each timestep it would visit (``num_steps`` of its steps, None = all of them, at most the
    training T; with this spacing) is mapped to the training timestep nearest in log-SNR
    (``diffviz.schedule_mapping``: duplicates kept once, ᾱ beyond the training range mapped to t = 0
    or T − 1), and those run as with fewer steps; ``Trajectory.timesteps`` are the mapped ones.

    Args: eps_model(x_t (B, ...), t (B,) int64[, y (B,) int64 or None]) → ε̂ (B, ...);
          shape (B, ...) of the samples; generator: a torch.Generator for every random draw;
          y: class labels (int or (B,)) for a conditional model; guidance_scale: w for guidance;
          record: keep x_t, ε̂, x̂_0 of every step (on the CPU); x_T: the starting noise;
          clip_sample / thresholding (+ dynamic_thresholding_ratio, sample_max_value): bound x̂_0
          before each step, statically or dynamically (``diffviz.thresholding``; diffusers' names);
          cuda_graph: replay the model call from a CUDA graph (``diffviz.graphed.GraphedModel``; same
          numbers, far fewer launches); None = on for an ``nn.Module`` on a CUDA device;
          classifier(x_t, t) → logits (B, K) and classifier_scale s ≥ 0 (default 1): classifier guidance,
          ε̂ − s·√(1 − ᾱ_t)·∇ log p_φ(y | x_t) (``diffviz.guidance``; y = the target classes). The
          ε-model is then called with y=None, or with y and w when guidance_scale is given too.
    Returns: Trajectory.
    On CUDA the loop never waits for the GPU: recorded steps are copied into pinned CPU buffers
    without blocking, and the one sync comes at the end.

    Every argument is checked here, once (labels y in [0, num_classes − 1] and T against the
    model's config when it has one); the steps then run unchecked, and a model's own per-call value
    checks (``check_values``) are switched off for the loop.
    """
    steps_asked = num_steps  # with an inference_schedule, None means all of ITS steps (not T)
    shape, num_steps, eta, guidance_scale, classifier_scale, y = _check_arguments(
        eps_model, schedule, shape, sampler, num_steps, eta, generator, y, guidance_scale, x_T, variance,
        classifier, classifier_scale, record=record, progress=progress)
    threshold = threshold_spec(clip_sample, thresholding, dynamic_thresholding_ratio, sample_max_value)
    if cuda_graph is not None:
        check_bool("cuda_graph", cuda_graph)
    kept, steps, step_schedule = _plan(schedule, sampler, num_steps if inference_schedule is None else steps_asked,
                                       timestep_spacing, inference_schedule)
    device = _model_device(eps_model, device)
    if cuda_graph and device.type != "cuda":
        raise ValueError(f"cuda_graph=True needs a CUDA device, got {device}")
    if cuda_graph is None:
        cuda_graph = device.type == "cuda" and isinstance(eps_model, nn.Module)
    model_fn = GraphedModel(eps_model) if cuda_graph else eps_model
    guidance = make_guidance(classifier, classifier_scale, y, shape[0], device)
    y = None if guidance is not None and guidance_scale is None else label_tensor(y, shape[0], device)

    if x_T is None:
        noise_device = generator.device if generator is not None else device
        x_T = torch.randn(shape, generator=generator, device=noise_device)
    x = x_T.to(device=device, dtype=torch.float32)

    S = len(steps)
    pinned = device.type == "cuda"  # page-locked CPU memory: the copies below need not block
    buffers = [torch.empty((S, *shape), pin_memory=pinned) for _ in range(3)] if record else [None] * 3
    module = getattr(eps_model, "_orig_mod", eps_model)  # a torch.compile'd model wraps the original
    was_training = isinstance(eps_model, nn.Module) and eps_model.training
    checks = getattr(module, "check_values", None)
    if isinstance(eps_model, nn.Module):
        eps_model.eval()
    if checks is not None:
        module.check_values = False  # t and y were checked above, once
    iterator = steps
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(steps, desc=f"{sampler} sampling", leave=False)
    try:
        for i, (t_model, (step_t, t_prev)) in enumerate(zip(kept.tolist(), iterator)):
            t_batch = torch.full((shape[0],), t_model, dtype=torch.long, device=device)
            eps, v = guided_eps_and_variance(model_fn, x, t_batch, y, guidance_scale)
            if guidance is not None:
                eps = guidance.guide(schedule, x, t_batch, eps)
            eps = eps.to(x.dtype)
            if sampler == "ddim":
                out = ddim_step_unchecked(schedule, x, step_t, t_prev, eps, eta, None, generator, threshold)
            else:
                out = ddpm_step_unchecked(step_schedule, x, step_t, eps, None, variance, generator, threshold,
                                          _learned_variance(variance, v))
            if record:
                x0_hat = out.pred_original_sample
                if threshold is not None:  # record the unbounded x̂_0 = predict_x0(x_t, ε̂) of the docstring
                    x0_hat = predict_x0_unchecked(schedule, x, t_model, eps)
                for buffer, value in zip(buffers, (x, eps, x0_hat)):
                    buffer[i].copy_(value, non_blocking=True)  # on the CPU: an ordinary copy
            x = out.prev_sample
    finally:
        if checks is not None:
            module.check_values = checks
        if was_training:
            eps_model.train()
    final = x.float().cpu()  # waits for the GPU, so every copy into the buffers has landed
    x_t, eps_all, x0_all = buffers
    return Trajectory(kept.clone(), x_t, eps_all, x0_all, final, sampler, timestep_spacing,
                      eta if sampler == "ddim" else 0.0, guidance_scale, classifier_scale)
