"""Data-parallel training with torchrun: one process per GPU (or per CPU core, for testing).

    torchrun --standalone --nproc_per_node=4 -m diffviz.cli train --dataset mnist-5k --model small --steps 20000

``diffviz train`` needs no other change: torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in each
process's environment, ``setup()`` reads them and joins the process group (NCCL on CUDA, gloo on
the CPU), and ``Trainer`` wraps its model in ``DistributedDataParallel``. How the work is split:

- ``batch_size`` stays the TOTAL batch B. Every rank draws the random numbers of the whole batch
  (example indices, t, ε, label dropout) from the same seeded generator and keeps its own slice
  ``[rank·b, (rank+1)·b)``, b = B / world_size. So the ranks see disjoint shards of exactly the
  batch one process would see, and DDP's gradient average equals the one-process gradient up to
  float summation order: the loss curves of 1 and N processes agree to float tolerance
  (tests/test_distributed.py). Drawing B numbers to keep b costs little next to the U-Net.
- Dropout masks come from a per-rank stream (seeded from seed and rank); checkpoints store every
  rank's stream, so a resumed run continues exactly.
- Only rank 0 prints and writes checkpoints; the logged loss is the mean over ranks, i.e. the
  loss of the whole batch. The EMA is updated on every rank from identical weights, so it is
  identical everywhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0  # this process's index in [0, world_size)
    world_size: int = 1  # number of processes
    local_rank: int = 0  # index among the processes on this machine: picks the GPU

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints and writes checkpoints."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's slice of a batch of n = world_size · b items: [rank·b, (rank+1)·b)."""
        b = n // self.world_size
        return slice(self.rank * b, (self.rank + 1) * b)


def launched_by_torchrun() -> bool:
    """True when the environment describes more than one process (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the process group that torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT in the environment): backend NCCL when training on CUDA, gloo on the CPU. Without
    torchrun this does nothing and returns rank 0 of 1."""
    if launched_by_torchrun() and not dist.is_initialized():
        cuda = torch.cuda.is_available() and not str(device).startswith("cpu")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return info()


def info() -> DistInfo:
    """Rank and size of the current process group (rank 0 of 1 when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def cleanup(wait_for_all: bool = True):
    """Leave the process group, if ``setup`` joined one. With ``wait_for_all`` every rank first
    waits at a barrier: a rank that tears gloo down while another still talks to it can abort
    that rank ("terminate called without an active exception", seen in CI). After an error pass
    False: the other ranks may never reach the barrier."""
    if dist.is_available() and dist.is_initialized():
        if wait_for_all:
            dist.barrier()
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0, and always without torchrun."""
    return info().is_main


def rank_device(device: torch.device, rank_info: DistInfo) -> torch.device:
    """With several processes, "cuda" means this process's GPU, cuda:LOCAL_RANK."""
    if device.type == "cuda" and device.index is None and rank_info.world_size > 1:
        return torch.device("cuda", rank_info.local_rank)
    return device


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(model)``: gradients are averaged over ranks during backward."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``x`` over all ranks (``x`` itself with one process)."""
    world_size = info().world_size
    if world_size == 1:
        return x
    total = x.clone()
    dist.all_reduce(total)  # a sum: gloo has no AVG
    return total / world_size


def any_over_ranks(flag: bool) -> bool:
    """True on every rank when ``flag`` is True on any rank (``flag`` itself with one process).
    A collective: every rank must call it."""
    if info().world_size == 1:
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    total = torch.tensor(float(flag), device=device)
    dist.all_reduce(total)
    return bool(total.item() > 0)


def gather_rng_states(states: dict) -> dict:
    """Every other rank's RNG states, keyed "name@rank" ("torch_cpu@1", ...), for rank 0's
    checkpoint. A collective: every rank must call it. Empty with one process."""
    rank_info = info()
    if rank_info.world_size == 1:
        return {}
    everyone = [None] * rank_info.world_size
    dist.all_gather_object(everyone, {k: v.cpu() for k, v in states.items()})
    return {f"{name}@{rank}": value for rank, states_of in enumerate(everyone) if rank
            for name, value in states_of.items()}


def rng_states_of_rank(states: dict, rank: int) -> dict:
    """The torch RNG states a checkpoint holds for ``rank``: "torch_cpu", "torch_cuda" for rank 0,
    "torch_cpu@2", ... for rank 2, returned under the plain names. Empty if it holds none."""
    mine = {}
    for key, value in states.items():
        name, _, owner = key.partition("@")
        if name.startswith("torch_") and int(owner or 0) == rank:
            mine[name] = value
    return mine
