"""Training and sampling on a GPU: the same maths, far fewer kernel launches.

A small U-Net at batch 128 does little arithmetic per layer, so a training step is a few hundred
short kernels, and Python takes longer to launch each one than the GPU takes to run it: the GPU
waits. Everything here is standard PyTorch, aimed at that:

- bf16 autocast (``TrainConfig.bf16``) and ``channels_last`` weights: tensor-core convolutions.
- fused AdamW (one kernel updates every parameter) with the learning rate in a device tensor.
- the step body is the Trainer's own (``Trainer.train_step``: loss, backward, clipping, AdamW, the
  one EMA function ``training.ema_update_``); here the lr and EMA weight are device tensors.
- ``q_sample`` from device tables (``diffusion.q_sample_from_tables``): no copy of t to the CPU.
- ``FastTrainStep``: the whole step (batch, t and ε draws, forward, backward, clipping, AdamW,
  EMA) captured once as a CUDA graph and replayed with ONE launch per step.
- ``diffviz.graphed.GraphedModel`` (sampling's fast path) lives in its own module.

``Trainer`` uses this path by default on CUDA (``TrainConfig.fast``) and the plain
``Trainer.train_step`` on the CPU, which stays bit-for-bit reproducible. ``fast=True`` also runs
on the CPU, eagerly (no graphs), which is how the tests check that it computes the same step.
"""
from __future__ import annotations

import warnings

import torch


def adamw_options() -> dict:
    """AdamW options of the fast path: ``fused``, one kernel for all parameters, with its step
    counters on the device. (``FastTrainStep`` sets ``capturable`` when it captures a graph.)"""
    return {"fused": True, "foreach": None}


def prepare(trainer):
    """Set a ``Trainer`` up for the fast path; called once, after any resume.

    Weights (model and EMA) and AdamW's moments go to ``channels_last``; AdamW's step counters go
    to the device (a checkpoint written by the plain path keeps them on the CPU); the model's
    data-dependent value checks are switched off (each would be a host sync; the labels come from
    the dataset, already checked)."""
    trainer.model.to(memory_format=torch.channels_last)  # only 4-D weights (convolutions) change
    trainer.ema_model.to(memory_format=torch.channels_last)
    for module in (trainer.model, trainer.ema_model):
        if hasattr(module, "check_values"):
            module.check_values = False
    for param, state in trainer.optimizer.state.items():
        for key, value in state.items():
            if key == "step":
                state[key] = value.to(param.device, torch.float32)
            elif isinstance(value, torch.Tensor) and value.shape == param.shape:
                state[key] = torch.empty_like(param).copy_(value)  # the parameter's memory layout


class FastTrainStep:
    """One training step with no host-device sync; on CUDA replayed from a CUDA graph.

    The body is ``Trainer.train_step`` — the plain path's step: ``compute_loss`` (batch, t, ε and
    label-dropout draws from ``trainer.generator``, forward) + backward + clipping + AdamW (fused
    here) + the foreach EMA — and the two numbers that change from step to step, the learning rate and the EMA weight, are read
    from 0-dim device tensors that ``__call__`` fills first. So every step runs the same kernels on
    the same addresses, and one ``graph.replay()`` launches them all (PyTorch docs, "CUDA Graphs",
    whole-network capture). The trainer's generator is registered with the graph, so each replay
    draws fresh t and ε; dropout draws from torch's CUDA generator, registered automatically.

    capture: use a CUDA graph (None = on for CUDA, except under torchrun: DDP's all-reduce stays
    out of graphs). The first ``warmup_steps`` steps run eagerly on a side stream (AdamW's state,
    cuDNN plans and torch.compile are set up lazily); the next step is captured, and every later
    one is a replay. If capture fails, a warning says why and training goes on eagerly.
    """

    def __init__(self, trainer, capture: bool | None = None, warmup_steps: int = 3):
        self.trainer, self.device = trainer, trainer.device
        if capture is None:
            capture = self.device.type == "cuda" and trainer.dist.world_size == 1
        self.capture = capture
        if self.capture and self.device.type != "cuda":
            raise ValueError(f"capture=True needs a CUDA device, got {self.device}")
        self.warmup_steps, self.eager_steps, self.graph = warmup_steps, 0, None
        self.lr = torch.tensor(float(trainer.lr), device=self.device)  # fused AdamW reads it at replay
        self.ema_weight = torch.zeros((), device=self.device)  # 1 − decay of this step's EMA update
        self.loss = torch.zeros((), device=self.device)  # the last step's loss

    def body(self):
        """The step itself, as it runs eagerly or is captured: ``Trainer.train_step`` on a fresh batch,
        with the lr and EMA weight read from device tensors. Expects .grad to be None. A replay runs
        no Python, so ``__call__`` counts the steps: the counts train_step made here are undone."""
        trainer = self.trainer
        counts = trainer.step, trainer.images_seen
        self.loss.copy_(trainer.train_step(*trainer.next_batch(), lr=self.lr, ema_weight=self.ema_weight))
        trainer.step, trainer.images_seen = counts

    def __call__(self) -> torch.Tensor:
        """Run one step; returns its loss, a 0-dim tensor on the device (no sync)."""
        trainer = self.trainer
        self.lr.fill_(trainer.lr_at(trainer.step))  # fill_ launches a kernel: no sync
        self.ema_weight.fill_(1.0 - trainer.ema_decay_at(trainer.step + 1))
        if self.graph is None and self.capture and self.eager_steps >= self.warmup_steps:
            self._capture()
        if self.graph is not None:
            self.graph.replay()
        else:
            self._eager()
        trainer.step += 1
        trainer.images_seen += trainer.config.batch_size
        return self.loss.clone()

    def _eager(self):
        self.trainer.optimizer.zero_grad(set_to_none=True)
        if not self.capture:
            self.body()
        else:  # warm up on a side stream, as torch.cuda.graph asks
            current = torch.cuda.current_stream(self.device)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(current)
            with torch.cuda.stream(side):
                self.body()
            current.wait_stream(side)
        self.eager_steps += 1

    def _capture(self):
        optimizer = self.trainer.optimizer
        optimizer.zero_grad(set_to_none=True)  # backward then allocates .grad from the graph's pool
        for group in optimizer.param_groups:
            group["capturable"] = True  # allowed in a graph (fused AdamW's maths is the same either way)
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(self.trainer.generator)  # batch, t and ε advance every replay
        try:
            with torch.cuda.graph(graph):
                self.body()  # recorded, not run: the state is unchanged until the first replay
        except RuntimeError as err:
            warnings.warn(f"CUDA graph capture of the training step failed ({err}); continuing without it")
            self.capture = False
            return
        self.graph = graph
