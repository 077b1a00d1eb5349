"""Every public function's arguments, tried with bad values: one row per bad input.

Each row is (id, call, expected exception, regex of the message). The message must name the
argument and say what is allowed; nothing may pass silently or end in an unrelated traceback.
Shapes here are small: T = 50 timesteps, batches of 2.
"""
import math

import numpy as np
import pytest
import torch

import diffviz as dv
from diffviz import metrics
from diffviz.images import make_grid, save_image_grid
from diffviz.toy import ToyConfig, ToyMLP
from diffviz.unet import UNet, UNetConfig, preset

T = 50
SCHED = dv.linear_schedule(T)
X = torch.zeros(2, 3)
NAN = float("nan")


def unet(**overrides):
    config = dict(in_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                  attention_resolutions=(4,), groups=4, num_timesteps=T)
    return UNet(UNetConfig(**{**config, **overrides})).eval()


UNET, COND = unet(), unet(num_classes=3)
TOY, COND_TOY = ToyMLP(ToyConfig(num_timesteps=T)), ToyMLP(ToyConfig(num_timesteps=T, num_classes=3))
IMG = torch.zeros(2, 1, 8, 8)
ORACLE = dv.GaussianMixtureDenoiser([[1.0, 0.0], [-1.0, 0.0]], 0.3, schedule=SCHED)


def sample(model=ORACLE, shape=(2, 2), **kwargs):
    return dv.sample(model, SCHED, shape, num_steps=2, **kwargs)


def oracle(**kwargs):
    args = dict(means=[[1.0, 0.0], [-1.0, 0.0]], stds=0.3, weights=None, schedule=SCHED)
    return dv.GaussianMixtureDenoiser(**{**args, **kwargs})


V, TE = ValueError, TypeError
ROWS = [
    # ----- forward process: q_sample, q_step
    ("q_sample int images", lambda: dv.q_sample(SCHED, torch.ones(2, 3, dtype=torch.long), 3), TE,
     r"x0 must be a floating-point tensor.*int64"),
    ("q_sample uint8 images", lambda: dv.q_sample(SCHED, torch.ones(2, 3, dtype=torch.uint8), 3), TE, "x0 must be a floating"),
    ("q_sample list x0", lambda: dv.q_sample(SCHED, [[0.0, 1.0]], 3), TE, r"x0 must be a torch.Tensor, got list"),
    ("q_sample numpy x0", lambda: dv.q_sample(SCHED, np.zeros((2, 3)), 3), TE, "x0 must be a torch.Tensor"),
    ("q_sample 0-d x0", lambda: dv.q_sample(SCHED, torch.tensor(1.0), 3), V, "x0 must have at least 1 dimension"),
    ("q_sample t = T", lambda: dv.q_sample(SCHED, X, T), V, r"t=50 is out of range.*\[0, 49\]"),
    ("q_sample t = -1", lambda: dv.q_sample(SCHED, X, -1), V, r"t=-1 is out of range"),
    ("q_sample t float", lambda: dv.q_sample(SCHED, X, 2.0), TE, "t must hold integers"),
    ("q_sample t numpy float", lambda: dv.q_sample(SCHED, X, np.float64(2.0)), TE, "t must hold integers"),
    ("q_sample t string", lambda: dv.q_sample(SCHED, X, "3"), TE, "t must hold integers"),
    ("q_sample t None", lambda: dv.q_sample(SCHED, X, None), TE, "t must hold integers"),
    ("q_sample t float tensor", lambda: dv.q_sample(SCHED, X, torch.tensor([0.5, 1.0])), TE, "float32"),
    ("q_sample t bool tensor", lambda: dv.q_sample(SCHED, X, torch.tensor([True, False])), TE, "torch.bool"),
    ("q_sample t batch mismatch", lambda: dv.q_sample(SCHED, X, torch.tensor([0, 1, 2])), V, r"t must have shape \(2,\)"),
    ("q_sample t 2-D", lambda: dv.q_sample(SCHED, X, torch.zeros(2, 1, dtype=torch.long)), V, r"t must have shape \(2,\)"),
    ("q_sample t tensor out of range", lambda: dv.q_sample(SCHED, X, torch.tensor([0, 60])), V, r"t out of range.*\[0, 60\]"),
    ("q_sample noise shape", lambda: dv.q_sample(SCHED, X, 3, torch.zeros(2, 4)), V, "noise must have the shape"),
    ("q_sample int noise", lambda: dv.q_sample(SCHED, X, 3, torch.zeros(2, 3, dtype=torch.long)), TE, "noise must be a floating"),
    ("q_sample generator seed string", lambda: dv.q_sample(SCHED, X, 3, generator="seed"), TE,
     r"generator must be a torch.Generator.*manual_seed"),
    ("q_sample generator int", lambda: dv.q_sample(SCHED, X, 3, generator=0), TE, "generator must be a torch.Generator"),
    ("q_sample schedule name", lambda: dv.q_sample("linear", X, 3), TE, "schedule must be a NoiseSchedule"),
    ("q_step int x_prev", lambda: dv.q_step(SCHED, torch.zeros(2, 3, dtype=torch.int32), 0), TE, "x_prev must be a floating"),
    ("q_step t out of range", lambda: dv.q_step(SCHED, X, 99), V, "t=99 is out of range"),
    # ----- posterior and predictions
    ("q_posterior shape mismatch", lambda: dv.q_posterior(SCHED, torch.zeros(2, 4), X, 3), V, "x0 must have the shape of x_t"),
    ("q_posterior list x_t", lambda: dv.q_posterior(SCHED, X, [0.0], 3), TE, "x_t must be a torch.Tensor"),
    ("predict_x0 eps shape", lambda: dv.predict_x0(SCHED, X, 3, torch.zeros(3, 3)), V, "eps must have the shape of x_t"),
    ("predict_x0 t out of range", lambda: dv.predict_x0(SCHED, X, 50, X), V, "t=50 is out of range"),
    ("predict_eps int x0", lambda: dv.predict_eps(SCHED, X, 3, torch.zeros(2, 3, dtype=torch.long)), TE, "x0 must be a floating"),
    # ----- sampler steps
    ("ddpm_step variance", lambda: dv.ddpm_step(SCHED, X, 3, X, variance="learned"), V, "variance must be one of"),
    ("ddpm_step clip_sample string", lambda: dv.ddpm_step(SCHED, X, 3, X, clip_sample="yes"), TE,
     "clip_sample must be True or False"),
    ("ddpm_step int eps", lambda: dv.ddpm_step(SCHED, X, 3, torch.zeros(2, 3, dtype=torch.long)), TE, "eps must be a floating"),
    ("ddpm_step generator string", lambda: dv.ddpm_step(SCHED, X, 3, X, generator="seed"), TE, "generator must be"),
    ("ddpm_step t out of range", lambda: dv.ddpm_step(SCHED, X, -7, X), V, "t=-7 is out of range"),
    ("ddim_step eta NaN", lambda: dv.ddim_step(SCHED, X, 3, 1, X, eta=NAN), V, r"eta must be a finite number in \[0, inf\)"),
    ("ddim_step eta inf", lambda: dv.ddim_step(SCHED, X, 3, 1, X, eta=math.inf), V, "eta must be a finite number"),
    ("ddim_step eta negative", lambda: dv.ddim_step(SCHED, X, 3, 1, X, eta=-0.5), V, "eta must be a finite number"),
    ("ddim_step eta string", lambda: dv.ddim_step(SCHED, X, 3, 1, X, eta="0"), TE, "eta must be a number"),
    ("ddim_step t_prev >= t", lambda: dv.ddim_step(SCHED, X, 3, 5, X), V, "t_prev must be smaller than t"),
    ("ddim_step t_prev = -2", lambda: dv.ddim_step(SCHED, X, 3, -2, X), V, r"t_prev=-2 is out of range.*\[-1, 48\]"),
    ("ddim_step t_prev float", lambda: dv.ddim_step(SCHED, X, 3, 1.5, X), TE, "t_prev must hold integers"),
    ("ddim_step noise shape", lambda: dv.ddim_step(SCHED, X, 3, 1, X, eta=1.0, noise=torch.zeros(1)), V,
     "noise must have the shape"),
    # ----- sample
    ("sample model not callable", lambda: dv.sample("unet", SCHED, (2, 2)), TE, "eps_model must be callable"),
    ("sample schedule name", lambda: dv.sample(ORACLE, "linear", (2, 2)), TE, "schedule must be a NoiseSchedule"),
    ("sample shape int", lambda: sample(shape=4), TE, "shape must be a tuple of positive ints"),
    ("sample shape negative", lambda: sample(shape=(2, -1)), V, "shape must be a tuple of positive ints"),
    ("sample shape float", lambda: sample(shape=(2, 2.0)), V, "shape must be a tuple of positive ints"),
    ("sample shape empty", lambda: sample(shape=()), V, "shape must be a tuple of positive ints"),
    ("sample sampler", lambda: sample(sampler="euler"), V, "sampler must be one of 'ddpm', 'ddim'"),
    ("sample num_steps 0", lambda: dv.sample(ORACLE, SCHED, (2, 2), num_steps=0), V, r"num_steps must be an int in \[1, 50\]"),
    ("sample num_steps > T", lambda: dv.sample(ORACLE, SCHED, (2, 2), num_steps=5000), V, r"T = 50 timesteps\), got 5000"),
    ("sample num_steps float", lambda: dv.sample(ORACLE, SCHED, (2, 2), num_steps=2.5), TE, "num_steps must be an int"),
    ("sample num_steps bool", lambda: dv.sample(ORACLE, SCHED, (2, 2), num_steps=True), TE, "num_steps must be an int"),
    ("sample eta NaN", lambda: sample(sampler="ddim", eta=NAN), V, "eta must be a finite number"),
    ("sample eta inf", lambda: sample(sampler="ddim", eta=math.inf), V, "eta must be a finite number"),
    ("sample eta negative", lambda: sample(sampler="ddim", eta=-1), V, "eta must be a finite number"),
    ("sample guidance NaN", lambda: sample(COND_TOY, y=1, guidance_scale=NAN), V, "guidance_scale must be a finite number"),
    ("sample guidance inf", lambda: sample(COND_TOY, y=1, guidance_scale=-math.inf), V, "guidance_scale must be a finite"),
    ("sample guidance string", lambda: sample(COND_TOY, y=1, guidance_scale="3"), TE, "guidance_scale must be a number"),
    ("sample guidance without y", lambda: sample(COND_TOY, guidance_scale=3.0), V, "guidance_scale needs class labels y"),
    ("sample generator string", lambda: sample(generator="seed"), TE, "generator must be a torch.Generator"),
    ("sample device typo", lambda: sample(device="gpu0"), V, "device must be 'auto', 'cpu'"),
    ("sample y float", lambda: sample(COND_TOY, y=3.7), TE, r"y must be an int or a \(2,\) integer tensor"),
    ("sample y float tensor", lambda: sample(COND_TOY, y=torch.tensor([1.0, 2.0])), TE, "y must be an int or"),
    ("sample y float list", lambda: sample(COND_TOY, y=[1.5, 2.0]), TE, "y must be an int or"),
    ("sample y bool", lambda: sample(COND_TOY, y=True), TE, "y must be an int or"),
    ("sample y too large", lambda: sample(COND_TOY, y=10), V, r"y=10 is out of range.*\[0, 2\]"),
    ("sample y null-class index", lambda: sample(COND_TOY, y=3), V, r"y=3 is out of range.*\[0, 2\]"),
    ("sample y negative", lambda: sample(COND_TOY, y=-1), V, "y=-1 is out of range"),
    ("sample y tensor out of range", lambda: sample(COND_TOY, y=torch.tensor([0, 7])), V, r"y must be in \[0, 2\].*\[0, 7\]"),
    ("sample y batch mismatch", lambda: sample(COND_TOY, y=[0, 1, 2]), V, r"y must have shape \(2,\)"),
    ("sample y for unconditional model", lambda: sample(TOY, y=1), V, "unconditional"),
    ("sample timestep_spacing", lambda: sample(timestep_spacing="foo"), V, "unknown timestep_spacing 'foo'"),
    ("sample variance", lambda: sample(variance="learned"), V, "variance must be one of"),
    ("sample clip_sample string", lambda: sample(clip_sample="yes"), TE, "clip_sample must be True or False"),
    ("sample record int", lambda: sample(record=1), TE, "record must be True or False"),
    ("sample x_T NaN", lambda: sample(x_T=torch.tensor([[NAN, 0.0], [0.0, 0.0]])), V, "x_T holds NaN or inf"),
    ("sample x_T inf", lambda: sample(x_T=torch.tensor([[math.inf, 0.0], [0.0, 0.0]])), V, "x_T holds NaN or inf"),
    ("sample x_T shape", lambda: sample(x_T=torch.zeros(3, 2)), V, r"x_T must have shape \(2, 2\)"),
    ("sample x_T int", lambda: sample(x_T=torch.zeros(2, 2, dtype=torch.long)), TE, "x_T must be a floating"),
    ("sample x_T list", lambda: sample(x_T=[[0.0, 0.0], [0.0, 0.0]]), TE, "x_T must be a torch.Tensor"),
    ("sample cuda_graph on CPU", lambda: sample(UNET, shape=(2, 1, 8, 8), cuda_graph=True), V, "needs a CUDA device"),
    ("sample cuda_graph string", lambda: sample(cuda_graph="yes"), TE, "cuda_graph must be True or False"),
    ("sample schedule longer than model's T", lambda: dv.sample(TOY, dv.linear_schedule(80), (2, 2), num_steps=2), V,
     "T = 80 timesteps but the model was trained with num_timesteps=50"),
    ("guided_eps guidance NaN", lambda: dv.guided_eps(COND_TOY, X[:, :2], 3, 1, NAN), V, "guidance_scale must be a finite"),
    ("guided_eps guidance without y", lambda: dv.guided_eps(COND_TOY, X[:, :2], 3, None, 2.0), V, "needs class labels"),
    # ----- the exact denoiser
    ("oracle means 1-D", lambda: oracle(means=[1.0, 2.0]), V, r"means must have shape \(K, D\)"),
    ("oracle stds length", lambda: oracle(stds=[0.1, 0.2, 0.3]), V, r"stds must be a number or have shape \(2,\)"),
    ("oracle stds 2-D", lambda: oracle(stds=[[0.1, 0.2]]), V, r"stds must be a number or have shape \(2,\)"),
    ("oracle weights length", lambda: oracle(weights=[1.0]), V, "weights must be K=2 non-negative numbers"),
    ("oracle weights sum", lambda: oracle(weights=[0.5, 0.6]), V, "summing to 1"),
    ("oracle stds negative", lambda: oracle(stds=-0.1), V, "stds must be >= 0"),
    ("oracle means NaN", lambda: oracle(means=[[NAN, 0.0]]), V, "means holds NaN or inf"),
    ("oracle means strings", lambda: oracle(means=[["a", "b"]]), TE, "means must be numbers"),
    ("oracle no schedule", lambda: oracle(schedule=None), TE, "schedule must be a NoiseSchedule"),
    ("oracle x_t features", lambda: ORACLE(torch.zeros(2, 3), torch.tensor([1, 2])), V, r"x_t must have shape \(B, 2\)"),
    ("oracle t out of range", lambda: ORACLE(torch.zeros(2, 2), torch.tensor([1, 50])), V, "t out of range"),
    ("oracle t float", lambda: ORACLE(torch.zeros(2, 2), 2.5), TE, "t must hold integers"),
    ("oracle y given", lambda: ORACLE(torch.zeros(2, 2), 3, torch.tensor([0, 1])), V, "unconditional"),
    ("oracle int x_t", lambda: ORACLE(torch.zeros(2, 2, dtype=torch.long), 3), TE, "x_t must be a floating"),
    ("oracle sample_data n", lambda: ORACLE.sample_data(0), V, "n must be a positive int"),
    ("oracle sample_data generator", lambda: ORACLE.sample_data(3, generator="seed"), TE, "generator must be"),
    # ----- the U-Net
    ("unet t = 5000", lambda: UNET(IMG, 5000), V, r"t=5000 is out of range.*\[0, 49\]"),
    ("unet t = -7", lambda: UNET(IMG, -7), V, r"t=-7 is out of range"),
    ("unet t tensor 5000", lambda: UNET(IMG, torch.tensor([0, 5000])), V, r"t out of range.*\[0, 5000\]"),
    ("unet t float tensor -1", lambda: UNET(IMG, torch.tensor([-1.0, 3.0])), V, "t out of range"),
    ("unet t Python float", lambda: UNET(IMG, 3.5), TE, "t must hold integers"),
    ("unet t bool tensor", lambda: UNET(IMG, torch.tensor([True, True])), TE, "torch.bool"),
    ("unet t batch mismatch", lambda: UNET(IMG, torch.tensor([1, 2, 3])), V, r"t must have shape \(2,\)"),
    ("unet half input", lambda: UNET(IMG.half(), 3), TE, r"dtype torch.float16 but the model's weights are torch.float32.*x.to"),
    ("unet double input", lambda: UNET(IMG.double(), 3), TE, r"dtype torch.float64.*model.to\(torch.float64\)"),
    ("unet list input", lambda: UNET([[0.0]], 3), TE, r"x must be a \(B, C, H, W\) torch.Tensor"),
    ("unet 3-D input", lambda: UNET(torch.zeros(1, 8, 8), 3), V, r"x must be a \(B, C, H, W\) tensor"),
    ("unet channels", lambda: UNET(torch.zeros(2, 3, 8, 8), 3), V, "x has 3 channels"),
    ("unet image size", lambda: UNET(torch.zeros(2, 1, 16, 16), 3), V, "image_size=8"),
    ("unet y float", lambda: COND(IMG, 3, 3.7), TE, r"y must be an int or a \(2,\) integer tensor"),
    ("unet y float tensor", lambda: COND(IMG, 3, torch.tensor([1.0, 2.0])), TE, "y must be an int or"),
    ("unet y beyond null class", lambda: COND(IMG, 3, 4), V, r"y=4 is out of range.*\[0, 3\] \(3 = the null class\)"),
    ("unet y tensor negative", lambda: COND(IMG, 3, torch.tensor([-1, 0])), V, r"y must be in \[0, 3\]"),
    ("unet y unconditional", lambda: UNET(IMG, 3, torch.tensor([0, 1])), V, "unconditional"),
    ("unet config num_timesteps 0", lambda: UNetConfig(num_timesteps=0), V, "num_timesteps must be a positive int"),
    ("unet config num_timesteps float", lambda: UNetConfig(num_timesteps=10.0), TE, "num_timesteps must be a positive int"),
    ("unet config dropout NaN", lambda: UNetConfig(dropout=NAN), V, "dropout must be a finite number"),
    ("unet config dropout 1", lambda: UNetConfig(dropout=1.0), V, r"dropout must be in \[0, 1\)"),
    ("unet config odd base_channels", lambda: UNetConfig(base_channels=9, groups=1), V, "base_channels must be even"),
    ("unet config channel_mults zero", lambda: UNetConfig(channel_mults=(1, 0)), V, "channel_mults must be a tuple of positive"),
    ("unet config attention string", lambda: UNetConfig(attention_resolutions="7"), V, "attention_resolutions must be a tuple"),
    ("unet config in_channels string", lambda: UNetConfig(in_channels="1"), TE, "in_channels must be a positive int"),
    ("unet preset unknown", lambda: preset("huge"), V, "unknown UNet preset 'huge'"),
    ("unet preset list", lambda: preset(["tiny"]), V, "unknown UNet preset"),
    ("unet dict config", lambda: UNet({"image_size": 8}), TE, "config must be a UNetConfig"),
    ("shape_tour not a UNet", lambda: dv.shape_tour(TOY, IMG, 3), TE, "model must be a UNet"),
    ("num_parameters not a module", lambda: dv.num_parameters("unet"), TE, "model must be a torch.nn.Module"),
    ("timestep_embedding odd dim", lambda: dv.timestep_embedding(torch.tensor([1, 2]), 7), V, "dim must be an even int"),
    ("timestep_embedding int t", lambda: dv.timestep_embedding(5, 8), TE, r"t must be a \(B,\) tensor"),
    # ----- the toy MLP
    ("toy dict config", lambda: ToyMLP({"hidden": 8}), TE, "config must be a ToyConfig"),
    ("toy t = 5000", lambda: TOY(torch.zeros(2, 2), 5000), V, "t=5000 is out of range"),
    ("toy t tensor -7", lambda: TOY(torch.zeros(2, 2), torch.tensor([-7, 0])), V, "t out of range"),
    ("toy double input", lambda: TOY(torch.zeros(2, 2, dtype=torch.float64), 3), TE, "dtype torch.float64"),
    ("toy list input", lambda: TOY([[0.0, 0.0]], 3), TE, r"x must be a \(B, 2\) torch.Tensor"),
    ("toy x shape", lambda: TOY(torch.zeros(2, 3), 3), V, r"x must have shape \(B, 2\)"),
    ("toy y float", lambda: COND_TOY(torch.zeros(2, 2), 3, 1.5), TE, "y must be an int or"),
    ("toy y out of range", lambda: COND_TOY(torch.zeros(2, 2), 3, torch.tensor([0, 9])), V, r"y must be in \[0, 3\]"),
    ("toy y unconditional", lambda: TOY(torch.zeros(2, 2), 3, torch.tensor([0, 1])), V, "unconditional"),
    ("toy config odd embedding", lambda: ToyConfig(time_embed_dim=63), V, "time_embed_dim must be even"),
    ("toy config num_timesteps", lambda: ToyConfig(num_timesteps=-1), V, "num_timesteps must be a positive int"),
    # ----- data
    ("load_dataset name list", lambda: dv.load_dataset(["moons"]), V, "unknown dataset name"),
    ("load_dataset split int", lambda: dv.load_dataset("moons", split=5), V, "split=5 is not one of"),
    ("load_dataset n 0", lambda: dv.load_dataset("moons", n=0), V, "n must be a positive int, got 0"),
    ("load_dataset n float", lambda: dv.load_dataset("moons", n=2.5), TE, "n must be a positive int"),
    ("load_dataset seed negative", lambda: dv.load_dataset("moons", seed=-1), V, "seed must be an int >= 0"),
    ("load_dataset seed string", lambda: dv.load_dataset("moons", seed="a"), V, "seed must be an int >= 0"),
    ("load_dataset download string", lambda: dv.load_dataset("mnist", download="yes"), TE, "download must be True or False"),
    ("load_dataset root for toy set", lambda: dv.load_dataset("moons", root="/tmp"), V, "root and download apply"),
    ("load_dataset root int", lambda: dv.load_dataset("mnist", root=5), TE, "root must be a folder path"),
    ("load_image name int", lambda: dv.load_image(5), TE, "image name must be"),
    ("load_image size negative", lambda: dv.load_image(size=-3), V, "size=-3"),
    ("gaussian_mixture_params std NaN", lambda: dv.data.gaussian_mixture_params(std=NAN), V, "std must be a finite number"),
    ("gaussian_mixture_params radius NaN", lambda: dv.data.gaussian_mixture_params(radius=NAN), V, "radius must be a finite"),
    # ----- image grids
    ("make_grid list", lambda: make_grid([[0.0]]), TE, "x must be a torch.Tensor or numpy array"),
    ("make_grid int tensor", lambda: make_grid(torch.zeros(2, 1, 4, 4, dtype=torch.long)), TE, r"floats in \[-1, 1\]"),
    ("make_grid uint8 pixels", lambda: make_grid(np.zeros((2, 1, 4, 4), np.uint8)), TE, "x / 127.5 - 1"),
    ("make_grid NaN", lambda: make_grid(torch.full((2, 1, 4, 4), NAN)), V, "x holds NaN or inf"),
    ("make_grid nrow 0", lambda: make_grid(torch.zeros(2, 1, 4, 4), nrow=0), V, "nrow must be a positive int, got 0"),
    ("make_grid nrow float", lambda: make_grid(torch.zeros(2, 1, 4, 4), nrow=2.5), TE, "nrow must be a positive int"),
    ("make_grid padding negative", lambda: make_grid(torch.zeros(2, 1, 4, 4), padding=-1), V, "padding must be an int >= 0"),
    ("make_grid pad_value NaN", lambda: make_grid(torch.zeros(2, 1, 4, 4), pad_value=NAN), V, "pad_value must be a finite"),
    ("make_grid pad_value 2", lambda: make_grid(torch.zeros(2, 1, 4, 4), pad_value=2.0), V, r"pad_value .*\[-1, 1\]"),
    ("save_image_grid scale 0", lambda: save_image_grid(IMG, "/tmp/never.png", scale=0), V, "scale must be a positive int"),
    ("save_image_grid gif", lambda: save_image_grid(IMG, "/tmp/never.gif"), V, r"path must end in \.png, \.jpg, \.jpeg"),
    ("save_image_grid path int", lambda: save_image_grid(IMG, 5), TE, "path must be a file path"),
    # ----- schedules
    ("linear beta_start NaN", lambda: dv.linear_schedule(10, beta_start=NAN), V, r"beta_start must be a finite number in \(0, 1\]"),
    ("linear beta_end 0", lambda: dv.linear_schedule(10, beta_end=0.0), V, "beta_end must be a finite number"),
    ("linear beta_end string", lambda: dv.linear_schedule(10, beta_end="0.02"), TE, "beta_end must be a number"),
    ("linear T 0", lambda: dv.linear_schedule(0), V, "num_timesteps must be a positive int"),
    ("linear T float", lambda: dv.linear_schedule(10.0), TE, "num_timesteps must be a positive int"),
    ("cosine s negative", lambda: dv.cosine_schedule(10, s=-1), V, "s must be a finite number"),
    ("cosine max_beta 1.5", lambda: dv.cosine_schedule(10, max_beta=1.5), V, "max_beta must be a finite number"),
    ("get_schedule unknown", lambda: dv.get_schedule("foo"), V, "unknown schedule 'foo'"),
    ("get_schedule list", lambda: dv.get_schedule(["linear"]), V, "unknown schedule"),
    ("get_schedule extra argument", lambda: dv.get_schedule("linear", 10, s=0.1), TE, "schedule 'linear'"),
    ("from_betas above 1", lambda: dv.from_betas([0.1, 2.0]), V, r"betas must lie in \(0, 1\]"),
    ("from_betas string", lambda: dv.from_betas("abc"), TE, "betas must be a 1-D sequence"),
    ("from_betas empty", lambda: dv.from_betas([]), V, "non-empty 1-D"),
    ("respace float timesteps", lambda: dv.respace(SCHED, [1.5, 3.7]), TE, "timesteps must be a 1-D sequence of integers"),
    ("respace out of range", lambda: dv.respace(SCHED, [0, 50]), V, r"lie in \[0, 49\]"),
    ("respace schedule name", lambda: dv.respace("linear", [1]), TE, "schedule must be a NoiseSchedule"),
    ("sampling_timesteps num_steps > T", lambda: dv.sampling_timesteps(50, 51), V, r"num_steps must be an int in \[1, 50\]"),
    ("sampling_timesteps spacing", lambda: dv.sampling_timesteps(50, 10, "foo"), V, "unknown timestep_spacing"),
    ("sampling_timesteps spacing None", lambda: dv.sampling_timesteps(50, 10, None), V, "unknown timestep_spacing"),
    ("sampling_timesteps T 0", lambda: dv.sampling_timesteps(0, 1), V, "num_timesteps must be a positive int"),
    # ----- metrics
    ("feature_fid list", lambda: metrics.feature_fid([0.0], torch.zeros(2, 1, 28, 28)), TE, "generated must be a torch.Tensor"),
    ("features batch_size 0", lambda: metrics.features(torch.zeros(2, 1, 28, 28), batch_size=0), V, "batch_size must be a positive"),
    ("features out of [-1, 1]", lambda: metrics.features(torch.full((2, 1, 28, 28), 3.0)), V, r"must lie in \[-1, 1\].*clamp"),
    ("features wrong size", lambda: metrics.features(torch.zeros(2, 1, 8, 8)), V, r"shape \(N, 1, 28, 28\)"),
    ("features classifier string", lambda: metrics.features(torch.zeros(2, 1, 28, 28), classifier="cnn"), TE,
     "classifier must be an MnistClassifier"),
    ("histogram_entropy floats", lambda: metrics.histogram_entropy(torch.tensor([0.5])), V, "predicted must be class indices"),
    ("histogram_entropy num_classes 0", lambda: metrics.histogram_entropy(torch.tensor([0]), 0), V, "num_classes must be"),
    ("frechet_distance NaN", lambda: metrics.frechet_distance([NAN], [[1.0]], [0.0], [[1.0]]), V, "mu1 .*finite values"),
    ("frechet_distance shapes", lambda: metrics.frechet_distance([0.0, 0.0], [[1.0]], [0.0, 0.0], [[1.0]]), V,
     r"sigma1 must have shape \(2, 2\)"),
    ("memorisation quantile NaN", lambda: metrics.memorisation(IMG, IMG, IMG, quantile=NAN), V, "quantile must be a finite"),
    ("memorisation quantile 1", lambda: metrics.memorisation(IMG, IMG, IMG, quantile=1.0), V, r"quantile must be in \(0, 1\)"),
    ("class_accuracy label 12", lambda: metrics.class_accuracy(torch.zeros(2, 1, 28, 28), [0, 12]), V,
     r"labels must be in \[0, 9\], got values in \[0, 12\]"),
    ("class_accuracy float labels", lambda: metrics.class_accuracy(torch.zeros(2, 1, 28, 28), [0.5, 1.0]), TE,
     r"labels must be an int or a \(2,\) integer tensor of class labels"),
    ("class_accuracy labels count", lambda: metrics.class_accuracy(torch.zeros(2, 1, 28, 28), [0, 1, 2]), V,
     r"labels must have shape \(2,\)"),
    # ----- shipped models
    ("load_pretrained unknown", lambda: dv.load_pretrained("cifar"), V, "unknown pretrained model 'cifar'"),
    ("load_pretrained device typo", lambda: dv.load_pretrained(device="gpu7"), V, "device must be"),
]


@pytest.mark.parametrize("call, error, message", [pytest.param(c, e, m, id=i) for i, c, e, m in ROWS])
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_the_table_is_large_and_its_ids_unique():
    ids = [row[0] for row in ROWS]
    assert len(ids) >= 80 and len(set(ids)) == len(ids)


def test_save_image_grid_refuses_a_folder_and_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "out.png"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        save_image_grid(IMG, folder)
    assert list(tmp_path.iterdir()) == [folder] and not any(folder.iterdir())


# ----- inputs that look odd but are right: accepted, with the same result as the plain form
def test_numpy_integers_are_accepted_as_timesteps_labels_and_counts():
    noise = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(dv.q_sample(SCHED, X, np.int64(7), noise), dv.q_sample(SCHED, X, 7, noise))
    assert torch.equal(dv.q_sample(SCHED, X, np.array([7, 7]), noise), dv.q_sample(SCHED, X, 7, noise))
    with torch.no_grad():
        assert torch.equal(COND(IMG, np.int32(5), np.int64(2)), COND(IMG, 5, 2))
        assert torch.equal(COND(IMG, 5, torch.tensor([2, 2], dtype=torch.int32)), COND(IMG, 5, 2))
    a = dv.sample(COND_TOY, SCHED, (2, 2), num_steps=np.int64(3), y=np.int64(1), generator=torch.Generator().manual_seed(1))
    b = dv.sample(COND_TOY, SCHED, (2, 2), num_steps=3, y=[1, 1], generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.sample, b.sample)


def test_save_image_grid_writes_the_format_its_suffix_names(tmp_path):
    from PIL import Image

    for suffix, image_format in ((".png", "PNG"), (".jpg", "JPEG"), (".JPEG", "JPEG")):
        path = save_image_grid(torch.zeros(4, 3, 8, 8), tmp_path / f"grid{suffix}")
        with Image.open(path) as image:
            assert image.format == image_format
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.JPEG", "grid.jpg", "grid.png"]  # no temp files
