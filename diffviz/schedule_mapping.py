"""Another schedule at inference: sample a model trained with one noise schedule along the ᾱ of another.

A model trained with schedule A only knows A's timesteps: it was called with t ∈ [0, T_A − 1] and
noise level ᾱ^A_t. To run a sampler "along schedule B" we visit B's timesteps τ (as a sampler with
``num_steps`` steps and ``timestep_spacing`` would), and for each asked ᾱ^B_τ we pick the TRAINING
timestep whose noise level is closest, measured in log-SNR:

    t(τ) = argmin_t | λ^A_t − λ^B_τ |,   λ_t = log SNR(t) = log(ᾱ_t / (1 − ᾱ_t))   (Kingma et al. 2021)

λ is strictly decreasing in t, so this is "nearest ᾱ" on the scale where noise levels spread evenly
(ᾱ itself crowds near 0 and 1). The chain then runs at the kept training timesteps exactly as with
fewer steps (Nichol & Dhariwal 2021, Sec. 4): DDPM on ``respace(train_schedule, kept)``, DDIM on the
training schedule at ``kept``; so its ᾱ values are the training ᾱ at the mapped timesteps, i.e.
approximately schedule B's. ``error_log_snr`` says how approximately.

Timesteps are 0-based integers in [0, T−1]; code t = k is the paper's t = k + 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .schedules import NoiseSchedule, sampling_timesteps
from .validate import check_num_steps


@dataclass(frozen=True)
class ScheduleMapping:
    """Where the inference schedule's steps land on the training schedule. S = steps asked, K = kept."""

    timesteps: torch.Tensor  # (K,) int64, the training timesteps the sampler visits: descending, unique
    inference_timesteps: torch.Tensor  # (S,) int64, the inference schedule's timesteps, descending
    mapped_timesteps: torch.Tensor  # (S,) int64, the nearest training timestep of each (may repeat)
    alphas_cumprod_asked: torch.Tensor  # (S,) float64, ᾱ of the inference schedule at inference_timesteps
    alphas_cumprod_mapped: torch.Tensor  # (S,) float64, ᾱ of the training schedule at mapped_timesteps
    error_log_snr: torch.Tensor  # (S,) float64, λ_train(mapped) − λ_inference(asked); 0 = exact

    def __len__(self):
        return self.timesteps.numel()

    @property
    def num_merged(self) -> int:
        """How many asked steps were dropped because they mapped onto an already kept timestep."""
        return self.mapped_timesteps.numel() - self.timesteps.numel()


def nearest_log_snr(log_snr_train: torch.Tensor, log_snr_asked: torch.Tensor) -> torch.Tensor:
    """t = argmin_t |λ_train[t] − λ_asked| for each asked value, by binary search on the decreasing λ_train.

    Args: log_snr_train (T,) float64, non-increasing (a schedule's ``log_snr``); log_snr_asked (S,) float64.
    Returns: (S,) int64 in [0, T−1]. Ties go to the smaller t (the first minimum, as ``argmin``); a value
    beyond either end (±inf included) maps to that end: t = T − 1 below the smallest λ, t = 0 above the largest.
    """
    ascending = -log_snr_train  # (T,) non-decreasing, as searchsorted needs
    query = -log_snr_asked  # (S,)
    T = ascending.numel()
    insert = torch.searchsorted(ascending, query)  # (S,) in [0, T]: the first index whose value is ≥ query
    right, left = insert.clamp(max=T - 1), (insert - 1).clamp(min=0)  # beyond an end: both are that end

    def distance(index):  # |λ_train − λ_asked|, 0 where both are the same infinity (inf − inf is nan)
        values = ascending[index]
        return torch.where(values == query, torch.zeros_like(query), (values - query).abs())

    return torch.where(distance(left) <= distance(right), left, right)


def timesteps_for_schedule(train_schedule, inference_schedule, num_steps=None,
                           timestep_spacing="trailing") -> ScheduleMapping:
    """The training timesteps nearest, in log-SNR, to the ones the inference schedule would visit:
    t(τ) = argmin_t |λ^train_t − λ^inference_τ|, λ = log(ᾱ / (1 − ᾱ)) (Kingma et al. 2021; module docstring).

    The inference schedule's timesteps τ are ``sampling_timesteps(T_inf, num_steps, timestep_spacing)``.
    Rules, none silent (each shows in the result):
      * two asked steps that land on the same training timestep are kept ONCE (``timesteps`` is unique;
        ``num_merged`` counts the dropped ones), so the chain may have fewer than ``num_steps`` steps;
      * an asked ᾱ below the training schedule's smallest ᾱ maps to t = T − 1 (the noisiest timestep the
        model knows), one above its largest to t = 0; ``error_log_snr`` is then the gap that remains;
      * ties go to the smaller (less noisy) timestep.
    Mapping a schedule onto itself gives back ``sampling_timesteps(T, num_steps, timestep_spacing)``.

    Args: train_schedule, inference_schedule: NoiseSchedule (T_inf may differ from T);
          num_steps: steps of the inference schedule, an int in [1, T_inf] or None (= T_inf);
          timestep_spacing: "trailing", "leading" or "linspace" (as ``sampling_timesteps``).
    Returns: ScheduleMapping; ``.timesteps`` (K,) int64 descending in [0, T − 1], what the sampler visits.
    """
    for name, value in (("train_schedule", train_schedule), ("inference_schedule", inference_schedule)):
        if not isinstance(value, NoiseSchedule):
            raise TypeError(f"{name} must be a NoiseSchedule (e.g. diffviz.get_schedule('cosine', T)), "
                            f"got {type(value).__name__}")
    T_inf = inference_schedule.num_timesteps
    num_steps = check_num_steps(num_steps, T_inf)
    inference_timesteps = sampling_timesteps(T_inf, num_steps, timestep_spacing)  # (S,) descending
    log_snr_asked = inference_schedule.log_snr[inference_timesteps]  # (S,)
    mapped = nearest_log_snr(train_schedule.log_snr, log_snr_asked)  # (S,)
    log_snr_mapped = train_schedule.log_snr[mapped]  # (S,)
    kept = torch.unique(mapped, sorted=True).flip(0)  # (K,) descending
    return ScheduleMapping(
        timesteps=kept,
        inference_timesteps=inference_timesteps,
        mapped_timesteps=mapped,
        alphas_cumprod_asked=inference_schedule.alphas_cumprod[inference_timesteps],
        alphas_cumprod_mapped=train_schedule.alphas_cumprod[mapped],
        error_log_snr=torch.where(log_snr_mapped == log_snr_asked, 0.0, log_snr_mapped - log_snr_asked),
    )
