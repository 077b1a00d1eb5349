"""Training an ε-model with L_simple (Ho et al. 2020, Algorithm 1), or L_hybrid (``diffviz.losses``).

    repeat:  x_0 ~ data,  t ~ Uniform{0, …, T-1},  ε ~ N(0, I)
             take a gradient step on  ‖ε − ε_θ(√ᾱ_t·x_0 + √(1−ᾱ_t)·ε, t)‖²

t is 0-based (code t = k is the paper's t = k + 1). ``Trainer`` adds what makes this work in
practice: AdamW with linear warm-up, gradient clipping, an EMA of the weights (used for sampling),
label dropout for classifier-free guidance, bf16 autocast on CUDA, checkpoints that resume exactly.
On CUDA it takes the fast path of ``diffviz.fast`` (the whole step as one CUDA graph); under
torchrun it trains data-parallel (``diffviz.distributed``).

Randomness: batches, t, ε and label dropout come from ``trainer.generator`` (on the device); model
init and dropout use torch's global RNG, but only inside ``fork_rng`` blocks seeded from
``config.seed``, so the caller's global RNG is left untouched and runs are reproducible.
"""
from __future__ import annotations

import copy
import time
from contextlib import contextmanager, nullcontext

import torch

from . import distributed, fast, runs
from .data import load_dataset
from .diffusion import q_sample_tables, q_sample_from_tables, q_sample
from .losses import diffusion_loss
from .sampling import sample
from .schedules import get_schedule
from .toy import ToyMLP
from .train_config import TrainConfig, TrainEvent, build_model, learning_rate, min_snr_weights  # noqa: F401
from .trainer_checkpoints import NonFiniteLossError, TrainerCheckpoints  # noqa: F401
from .validate import check_num_steps, resolve_device

__all__ = ["TrainConfig", "TrainEvent", "Trainer", "build_model", "ema_update_", "train", "NonFiniteLossError"]


@torch.no_grad()
def ema_update_(ema_params: list, params: list, weight):
    """θ_ema ← θ_ema + w·(θ − θ_ema) = lerp(θ_ema, θ, w) for every tensor at once; w = 1 − decay.

    ``weight`` is a float, or a 0-dim device tensor, which a CUDA graph reads at replay time
    (``_foreach_lerp_`` takes no tensor weight, hence sub, mul, add).
    """
    if not isinstance(weight, torch.Tensor):
        torch._foreach_lerp_(ema_params, params, weight)
        return
    step = torch._foreach_sub(params, ema_params)  # θ − θ_ema
    torch._foreach_mul_(step, weight)
    torch._foreach_add_(ema_params, step)


class Trainer(TrainerCheckpoints):
    """Holds what training needs: ``model``, ``ema_model`` (sample with this one), ``optimizer``,
    ``schedule``, the data on the device (``data_x``, ``data_y``), ``generator``, and the progress:
    ``step``, ``images_seen``, ``elapsed`` and ``losses`` (one float per step)."""

    def __init__(self, config: TrainConfig, model=None, dataset=None):
        self.config = config
        self.dist = distributed.info()  # rank and world size: rank 0 of 1 unless launched by torchrun
        self.device = distributed.rank_device(resolve_device(config.device), self.dist)
        self.use_fast = config.fast if config.fast is not None else self.device.type == "cuda" and not config.learn_sigma
        if config.batch_size % self.dist.world_size:
            raise ValueError(f"batch_size={config.batch_size} (the total batch) must be divisible by the "
                             f"number of processes, {self.dist.world_size}")
        self.use_bf16 = config.bf16 if config.bf16 is not None else self.device.type == "cuda"
        if self.use_bf16 and self.device.type != "cuda":
            raise ValueError(f"bf16=True needs a CUDA device, got device={config.device!r}")
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        if config.checkpoint_dir and self.dist.is_main:  # before any slow work, and long before the first save
            self._check_run_folder(config)
        if config.resume:  # a resume that would silently change the run is refused now
            self._check_resume_settings(config.checkpoint_dir)
        self._rng_devices = [self.device] if self.device.type == "cuda" else []
        self._set_data(dataset if dataset is not None else
                       load_dataset(config.dataset, split="train", n=config.num_data, seed=config.seed))
        with self._seeded_rng(config.seed):  # model init is reproducible, the caller's RNG untouched
            model = model if model is not None else build_model(config, self.data_shape, self.num_classes)
            if self.dist.rank:  # each rank its own dropout stream (data draws are shared: compute_loss)
                torch.manual_seed(config.seed + 1_000_003 * self.dist.rank)
            self._torch_rng = self._get_torch_rng()  # dropout's RNG state, continued by fit()
        self.model = model.to(self.device)
        self.ema_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.schedule = get_schedule(config.schedule, config.num_timesteps)
        self._loss_weights = None if config.min_snr_gamma is None else \
            min_snr_weights(self.schedule.alphas_cumprod, config.min_snr_gamma).to(self.device)  # (T,)
        self.lr = config.lr or (1e-3 if isinstance(self.model, ToyMLP) else 2e-4)  # after warm-up
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=config.weight_decay,
                                           **(fast.adamw_options() if self.use_fast else {}))
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        self.step, self.images_seen, self.elapsed, self.losses = 0, 0, 0.0, []  # losses: one per step
        self._pending = []  # loss tensors of steps not yet copied into self.losses
        self.stop_requested = False  # a callback may set this to end fit() early
        self._fast_step = None  # a fast.FastTrainStep, made by the first fit() step on the fast path
        if self.use_fast:
            fast.prepare(self)
            self._q_tables = q_sample_tables(self.schedule, self.device)  # (√ᾱ, √(1−ᾱ)) on the device
        self.last_checkpoint, self._saved_step, self._checked = None, None, 0  # saves; losses checked finite
        self._owns_folder = False  # checkpoint_dir holds this run (resumed from it, or saved to it)
        if config.checkpoint_dir and self.dist.is_main:
            self._check_free_space(config.checkpoint_dir)
        if config.resume:
            self.resume(config.checkpoint_dir, check_settings=False)
        self.train_model = self.model  # what compute_loss calls: the model, wrapped for DDP / compiled
        if self.dist.world_size > 1:
            self.train_model = distributed.wrap_model(self.model, self.device)
        if config.compile:
            self.train_model = torch.compile(self.train_model)

    def _set_data(self, dataset):
        self.data_x = dataset.x.to(self.device, torch.float32)  # (N, C, H, W) or (N, D)
        self.data_shape = tuple(self.data_x.shape[1:])
        self.data_y, self.num_classes, self.label_dropout = None, None, 0.0
        if self.config.conditional:
            if dataset.y is None or not dataset.num_classes:
                raise ValueError(f"conditional=True needs a labelled dataset; {self.config.dataset!r} has no labels")
            self.data_y = dataset.y.to(self.device, torch.long)  # (N,)
            self.num_classes = dataset.num_classes
            p = self.config.label_dropout
            self.label_dropout = 0.1 if p is None else p

    @contextmanager
    def _seeded_rng(self, seed=None, state=None):
        """Run a block with torch's global RNG set to ``seed`` or ``state``; restore it afterwards."""
        with torch.random.fork_rng(devices=self._rng_devices):
            if seed is not None:
                torch.manual_seed(seed)
            else:
                self._set_torch_rng(state)
            yield

    def _get_torch_rng(self) -> dict:
        states = {"torch_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["torch_cuda"] = torch.cuda.get_rng_state(self.device)
        return states

    def _set_torch_rng(self, states: dict):
        torch.set_rng_state(states["torch_cpu"])
        if self.device.type == "cuda" and "torch_cuda" in states:
            torch.cuda.set_rng_state(states["torch_cuda"], self.device)

    # ----- one step of Algorithm 1 -----
    def lr_at(self, step: int) -> float:
        """Linear warm-up to self.lr, then constant (Ho et al. 2020) or cosine (``learning_rate``)."""
        return learning_rate(self.config, self.lr, step)

    def next_batch(self):
        """A random batch (indices drawn with replacement from self.generator): x0 (B, ...), y (B,) or None.
        With torchrun, this rank's shard of it (B / world_size examples)."""
        B = self.config.batch_size
        idx = torch.randint(0, self.data_x.shape[0], (B,), generator=self.generator,
                            device=self.device)[self.dist.shard(B)]
        return self.data_x[idx], (self.data_y[idx] if self.data_y is not None else None)

    def compute_loss(self, x0, y=None) -> torch.Tensor:
        """L_simple = ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖² on one batch (Ho et al. 2020, Eq. 14), or
        L_hybrid for a model that also outputs v (``diffviz.losses``).

        Args: x0 (B, C, H, W) or (B, D) data on the device; y (B,) int64 labels or None.
        Returns: the loss, a 0-dim tensor, not yet backpropagated.
        t, ε and label dropout come from ``self.generator``, drawn for the whole batch of all
        ranks; with torchrun each rank keeps its own slice (see ``diffviz.distributed``).
        """
        n = x0.shape[0] * self.dist.world_size  # the batch of all ranks; this rank keeps [mine]
        g, mine = self.generator, self.dist.shard(n)
        t = torch.randint(0, self.schedule.num_timesteps, (n,), generator=g, device=self.device)[mine]  # (B,)
        noise = torch.randn((n, *x0.shape[1:]), generator=g, device=self.device)[mine]  # ε ~ N(0, I)
        if y is not None and self.label_dropout > 0:  # classifier-free guidance: sometimes drop the label
            drop = torch.rand(n, generator=g, device=self.device)[mine] < self.label_dropout
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        if self.use_fast:  # the same x_t, without copying t to the CPU for the range check (a sync)
            x_t = q_sample_from_tables(self._q_tables, x0, t, noise)
        else:
            x_t = q_sample(self.schedule, x0, t, noise)  # √ᾱ_t x_0 + √(1−ᾱ_t) ε
        self.train_model.train()
        # the fast path needs cache_enabled=False: autocast's weight cache cannot live in a CUDA graph
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16,
                            cache_enabled=not self.use_fast):
            output = self.train_model(x_t, t) if y is None else self.train_model(x_t, t, y)
        return diffusion_loss(self.schedule, output, noise, x0, x_t, t, self._loss_weights, self.config.vlb_weight,
                              self.config.loss_type)

    def train_step(self, x0, y=None, lr=None, ema_weight=None) -> torch.Tensor:
        """One optimizer step on L_simple (``compute_loss``): AdamW, warm-up, clipping, EMA.

        Args: x0 (B, C, H, W) or (B, D) data on the device; y (B,) int64 labels or None;
              lr, ema_weight: this step's learning rate and EMA weight 1 − decay (None = ``lr_at``,
              ``ema_decay_at``); ``diffviz.fast`` passes 0-dim device tensors that a CUDA graph reads.
        Returns: the loss, a detached 0-dim tensor (no device sync).
        t, ε and label dropout come from ``self.generator``; dropout layers use torch's global RNG,
        which ``fit`` seeds and saves (call it outside ``fit`` and dropout is not reproducible).
        The ONE step body: the fast path (``diffviz.fast.FastTrainStep``) runs this method too.
        """
        loss = self.compute_loss(x0, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step) if lr is None else lr
        self.optimizer.step()
        self.step += 1
        self.images_seen += x0.shape[0] * self.dist.world_size
        self.update_ema(ema_weight)
        return loss.detach()

    def ema_decay_at(self, n: int) -> float:
        """The EMA decay after n steps: min(ema_decay, (1 + n) / (10 + n)) (a warm-up for the EMA)."""
        return min(self.config.ema_decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update_ema(self, weight=None):
        """θ_ema ← decay·θ_ema + (1 − decay)·θ (``ema_update_``), weight = 1 − decay (default: 1 −
        ``ema_decay_at(step)``); buffers are copied."""
        weight = 1.0 - self.ema_decay_at(self.step) if weight is None else weight
        ema_update_(list(self.ema_model.parameters()), list(self.model.parameters()), weight)
        for b_ema, b in zip(self.ema_model.buffers(), self.model.buffers()):
            b_ema.copy_(b)

    # ----- the loop -----
    def fit(self, callback=None, progress: bool = True) -> "Trainer":
        """Train until ``config.steps``. ``callback(TrainEvent)`` runs every ``log_every`` steps (and
        on ``sample_every`` steps, with EMA samples); set ``trainer.stop_requested = True`` to stop
        after the current step (a checkpoint is then written, with checkpoint_dir). A NaN/inf loss
        raises ``NonFiniteLossError`` naming its step; that state is never saved."""
        from tqdm.auto import tqdm

        cfg, start = self.config, time.perf_counter() - self.elapsed
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress or not self.dist.is_main, desc="training")
        self.stop_requested, self._event_mark = False, len(self.losses)
        lock = runs.RunLock(cfg.checkpoint_dir) if cfg.checkpoint_dir and self.dist.is_main else nullcontext()
        with lock, self._seeded_rng(state=self._torch_rng):  # dropout continues its own seeded stream
            if cfg.checkpoint_dir and self.dist.is_main:
                self._claim_run_folder()  # never over another run's checkpoints
            while self.step < cfg.steps and not self._should_stop():
                self._pending.append(self._fast_train_step() if self.use_fast else self.train_step(*self.next_batch()))
                if self.device.type == "cpu":  # no sync to avoid: check every step
                    self._check_finite()
                self.elapsed = time.perf_counter() - start
                bar.update(1)
                last = self.step == cfg.steps
                want_samples = bool(cfg.sample_every) and self.step % cfg.sample_every == 0
                if self.step % cfg.log_every == 0 or want_samples or last:
                    event = self._event(want_samples)
                    bar.set_postfix(loss=f"{event.loss:.4f}")
                    if callback is not None:
                        callback(event)
                if cfg.checkpoint_dir and (last or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)):
                    self._torch_rng = self._get_torch_rng()
                    self.save_checkpoint()
            self._torch_rng = self._get_torch_rng()
            if cfg.checkpoint_dir and self._saved_step != self.step:  # stopped early: keep the work
                self.save_checkpoint()
        self._flush_losses()
        bar.close()
        return self

    def _should_stop(self) -> bool:
        """``stop_requested``; under torchrun every rank stops at the same step (a rank that stopped
        alone would leave the others waiting in DDP's all-reduce): the ranks agree every log_every steps."""
        if self.dist.world_size == 1:
            return self.stop_requested
        return self.step % self.config.log_every == 0 and distributed.any_over_ranks(self.stop_requested)

    def _fast_train_step(self) -> torch.Tensor:
        if self._fast_step is None:
            self._fast_step = fast.FastTrainStep(self)
        return self._fast_step()

    def _flush_losses(self):
        """Move the per-step loss tensors into ``self.losses`` (one device sync for many steps);
        with torchrun, their mean over ranks: the loss of the whole batch."""
        if self._pending:
            self.losses.extend(distributed.mean_over_ranks(torch.stack(self._pending)).tolist())
            self._pending = []

    def _event(self, want_samples) -> TrainEvent:
        self._flush_losses()
        recent = self.losses[self._event_mark:] or [float("nan")]
        self._event_mark = len(self.losses)
        samples = self.sample_ema(self.config.num_samples) if want_samples and self.dist.is_main else None
        return TrainEvent(self.step, sum(recent) / len(recent), self.lr_at(self.step - 1),
                          self.images_seen, self.elapsed, samples)

    def sample_ema(self, n: int = 16, num_steps: int | None = None, seed: int = 0):
        """n DDIM samples (η = 0) from the EMA model with a fixed generator; conditional models get
        labels 0, 1, 2, … in turn. Returns: (n, *data_shape) float32 on the CPU."""
        T, g = self.schedule.num_timesteps, torch.Generator(self.device).manual_seed(seed)
        num_steps = check_num_steps(num_steps or self.config.sample_steps or min(25, T), T)  # > T: an error
        y = torch.arange(n, device=self.device) % self.num_classes if self.num_classes else None
        traj = sample(self.ema_model, self.schedule, (n, *self.data_shape), sampler="ddim", num_steps=num_steps,
                      generator=g, device=self.device, y=y, record=False)
        return traj.sample

def train(config: TrainConfig, callback=None, progress: bool = True, model=None, dataset=None) -> Trainer:
    """Build a Trainer for ``config`` and run ``fit``; returns the trainer (model, ema_model, losses)."""
    return Trainer(config, model=model, dataset=dataset).fit(callback=callback, progress=progress)
