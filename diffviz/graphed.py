"""Sampling on a GPU: the model call of ``diffviz.sample`` replayed from a CUDA graph.

Used by ``diffviz.sampling.sample(..., cuda_graph=...)``; the training fast path is ``diffviz.fast``.
"""
from __future__ import annotations

import torch


class GraphedModel:
    """``model(x, t[, y])`` replayed from a CUDA graph: one launch per call instead of one per layer.

    Sampling calls one model on same-shaped inputs hundreds of times. Each call copies its inputs
    into static tensors, replays the graph and clones the output out. There is one graph per input
    shape and per "y given or not" (classifier-free guidance makes both calls). Use it under
    ``torch.no_grad()``. The values of y are checked once, by the first (eager) call of each graph.
    """

    def __init__(self, model: torch.nn.Module):
        self.model, self.graphs, self.pool = model, {}, None

    def __call__(self, x, t, y=None):
        if not isinstance(t, torch.Tensor) or t.ndim == 0:  # an int t: one timestep for the batch
            t = torch.full((x.shape[0],), int(t), device=x.device)
        key = (tuple(x.shape), x.dtype, t.dtype, y is None)
        if key not in self.graphs:
            self.graphs[key] = self._capture(x, t, y)
        inputs, output, graph = self.graphs[key]
        for static, value in zip(inputs, (x, t, y)):
            if value is not None:
                static.copy_(value)
        graph.replay()
        return output.clone()

    def _capture(self, x, t, y):
        inputs = [x.clone(), t.clone(), None if y is None else y.clone()]
        current = torch.cuda.current_stream(x.device)
        side = torch.cuda.Stream(x.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: cuDNN plans, lazy initialisation, and the checks on y
                self.model(*inputs)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        checks = getattr(self.model, "check_values", None)
        if checks is not None:
            self.model.check_values = False  # a value check syncs, which capture forbids
        try:
            with torch.cuda.graph(graph, pool=self.pool):
                output = self.model(*inputs)
        finally:
            if checks is not None:
                self.model.check_values = checks
        self.pool = graph.pool()  # later graphs share the memory pool
        return inputs, output, graph
