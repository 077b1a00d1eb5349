"""diffviz: a small, correct DDPM/DDIM library for teaching diffusion models.

Timesteps are 0-based integers t in [0, T-1]; code t = k is the paper's t = k + 1.
"""
from .schedules import (
    NoiseSchedule,
    cosine_schedule,
    extract,
    from_betas,
    get_schedule,
    linear_schedule,
    quadratic_schedule,
    respace,
    sampling_timesteps,
    sigmoid_schedule,
)
from .diffusion import (
    ddim_step,
    ddpm_step,
    predict_eps,
    predict_x0,
    q_posterior,
    q_sample,
    q_step,
)
from .schedule_mapping import ScheduleMapping, timesteps_for_schedule
from .sampling import Trajectory, guided_eps, sample
from .guidance import classifier_gradient
from .vlb import ELBO, elbo, prior_bpd, vlb_term
from .thresholding import dynamic_threshold
from .oracle import GaussianMixtureDenoiser, OptimalVariance, optimal_variance, with_optimal_variance
from .variances import split_model_output
from .losses import diffusion_loss
from .score import (LangevinOutput, ScoreLadder, annealed_langevin, ddpm_score_ladder, eps_from_score, geometric_timesteps,
                    score_from_eps)
from .inversion import Inversion, ddim_invert, slerp
from .data import load_dataset, load_image, list_datasets
from .unet import UNet, UNetConfig, num_parameters, shape_tour, timestep_embedding
from .toy import ToyConfig, ToyMLP
from .classifier import NoisyClassifier, NoisyClassifierConfig, train_noisy_classifier
from .training import TrainConfig, TrainEvent, Trainer, train
from .checkpoint import CheckpointError, export_model, load_checkpoint, load_model, save_checkpoint
from .images import make_grid, save_image_grid
from .latent import Autoencoder, AutoencoderConfig, LatentDiffusion, LatentTrajectory
from .pretrained import load_pretrained
from .progress import load_progress
from . import quality, recipes

__version__ = "0.1.0"
