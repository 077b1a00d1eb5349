"""The checkpoint half of ``diffviz.training.Trainer``: save, resume, and the run-folder checks
(``diffviz.runs``) that make a run lose no work. A mixin: ``Trainer`` is the only class using it,
and everything here works on the Trainer's own attributes (model, optimizer, RNG states, progress)."""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict
from pathlib import Path

from . import checkpoint as ckpt
from . import distributed, fast, runs


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite: training stops before that state is saved."""


class TrainerCheckpoints:
    """``save_checkpoint``, ``resume`` and their checks, for ``Trainer``."""

    def _check_run_folder(self, config):
        """A writable folder, no live run inside, and a checkpoint there if we resume."""
        runs.check_usable(config.checkpoint_dir)
        with runs.RunLock(config.checkpoint_dir):
            if config.resume:
                runs.check_resumable(config.checkpoint_dir)

    def _claim_run_folder(self):
        """At the start of fit (holding the lock): the folder is this run's — it resumed from there, or
        saved there — or it holds no other run's checkpoints (``runs.check_fresh``)."""
        folder = self.config.checkpoint_dir
        if not self._owns_folder:
            runs.check_fresh(folder)
            runs.append_log(folder, f"new run: {self.config.dataset}, model {self.config.model}, "
                                    f"{self.config.steps} steps")
        self._owns_folder = True

    def _check_free_space(self, folder):
        tensors = [*self.model.parameters(), *self.model.buffers()]
        need = 4 * sum(t.numel() * t.element_size() for t in tensors) + (1 << 20)  # weights, EMA, AdamW m, v
        runs.check_usable(folder, need)

    def _check_finite(self):
        """Raise NonFiniteLossError at the first NaN/inf loss not yet checked."""
        self._flush_losses()
        for i in range(self._checked, len(self.losses)):
            if not math.isfinite(self.losses[i]):
                kept = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else \
                    "no checkpoint was written" if self._saved_step is None else \
                    f"the last good checkpoint is step {self._saved_step} in {self.config.checkpoint_dir}"
                message = (f"the loss is {self.losses[i]} at step {i + 1}: training stopped (try a lower lr or a "
                           f"grad_clip); {kept}")
                if self.config.checkpoint_dir and self.dist.is_main:
                    runs.append_log(self.config.checkpoint_dir, message)
                raise NonFiniteLossError(message)
        self._checked = len(self.losses)

    def save_checkpoint(self, directory=None):
        """Write a checkpoint of everything needed to resume into ``directory`` (default:
        config.checkpoint_dir) as ``step-XXXXXX/``; returns its path. With torchrun every rank must
        call it (it gathers each rank's dropout RNG state); rank 0 writes, the others return None."""
        directory = directory or self.config.checkpoint_dir
        if directory is None:
            raise ValueError("save_checkpoint needs a directory (config.checkpoint_dir is None)")
        self._check_finite()  # never save a NaN state over the last good one
        self._saved_step = self.step
        self._owns_folder = self._owns_folder or directory == self.config.checkpoint_dir
        rng = {"generator": self.generator.get_state(), **self._torch_rng,
               **distributed.gather_rng_states(self._torch_rng)}  # "torch_cpu@1", ...: the other ranks'
        if not self.dist.is_main:
            return None
        self.last_checkpoint = ckpt.save_checkpoint(
            directory, self.model, self.schedule, ema_model=self.ema_model, optimizer=self.optimizer,
            train_config=asdict(self.config), step=self.step, images_seen=self.images_seen,
            wall_time=self.elapsed, rng_states=rng, losses=self.losses, keep=self.config.keep_checkpoints,
            extra={"generator_device": self.device.type})
        return self.last_checkpoint

    def resume(self, path, check_settings: bool = True):
        """Restore model, EMA, optimizer, step count, losses and RNG states from a checkpoint
        (a step-XXXXXX folder, or a checkpoint_dir whose ``latest`` is followed). Its settings must
        continue this run (see ``runs.SAFE_TO_CHANGE``); ``check_settings=False``: checked already."""
        if check_settings:
            self._check_resume_settings(path)
        implementation = [{k: g[k] for k in ("foreach", "fused", "capturable")} for g in self.optimizer.param_groups]
        state = ckpt.load_train_state(path, self.model, self.ema_model, self.optimizer)
        if self.config.checkpoint_dir:  # resumed from a checkpoint of this folder: continuing its run
            here = Path(self.config.checkpoint_dir).resolve()
            self._owns_folder = ckpt.resolve_checkpoint(path).resolve().parent == here or self._owns_folder
        for group, flags in zip(self.optimizer.param_groups, implementation):
            group.update(flags)  # keep this run's AdamW implementation, whatever path wrote the checkpoint
        if state.extra.get("generator_device") == self.device.type:
            self.generator.set_state(state.rng_states["generator"])
        else:  # a CPU generator's state cannot drive a CUDA generator: reseed, deterministically
            warnings.warn("checkpoint was written on another device type: data order is reseeded")
            self.generator.manual_seed(self.config.seed + 1_000_003 * state.step)
        torch_rng = distributed.rng_states_of_rank(state.rng_states, self.dist.rank)  # "torch_cpu", ...
        if torch_rng:
            self._torch_rng = torch_rng
        elif self.dist.rank:
            warnings.warn(f"the checkpoint holds no dropout RNG state for rank {self.dist.rank}: its stream restarts")
        self.step, self.images_seen, self.elapsed = state.step, state.images_seen, state.wall_time
        self.losses, self._pending, self._checked = list(state.losses), [], len(state.losses)
        self._saved_step = state.step
        if self.use_fast:  # the loaded AdamW state gets the fast path's layout; a captured graph is stale
            fast.prepare(self)
            self._fast_step = None
        return self


    def _check_resume_settings(self, path):
        """Refuse a resume that would silently change the run (T, schedule, dataset, model, ...);
        log the safe changes (steps, checkpoint cadence, threads, ...) in the run's run.log."""
        saved = ckpt.checkpoint_config(path).get("train_config") or {}
        new = json.loads(json.dumps(asdict(self.config)))  # tuples → lists, as saved
        unsafe, safe = runs.resume_differences(saved, new)
        if unsafe:
            raise ckpt.CheckpointError(
                f"{path}: resuming with other settings would make it a different run; differences: "
                f"{'; '.join(unsafe)}. Only these may change: {', '.join(sorted(runs.SAFE_TO_CHANGE))}")
        step = ckpt.checkpoint_config(path)["meta"].get("step", 0)
        if self.config.steps < step:
            raise ValueError(f"steps={self.config.steps} is below the checkpoint's step {step}: nothing to "
                             f"train; pass steps > {step} to continue")
        if self.config.checkpoint_dir and self.dist.is_main:
            runs.append_log(self.config.checkpoint_dir, f"resume at step {step} from {path}"
                            + (f"; changed: {'; '.join(safe)}" if safe else ""))
