"""Timing on CPU or GPU: a stopwatch that waits for queued CUDA work."""

from __future__ import annotations

import time

import torch


class Stopwatch:
    """Wall time of a piece of work on `device`: perf_counter on CPU, CUDA events on a GPU.

    CUDA runs asynchronously: the work is queued and the host moves on, so a host
    clock around it measures the queueing. `start` waits for earlier work to end,
    `stop` records an event after the work and waits for it; the seconds between
    the two events include any time the GPU sat waiting for the host to launch
    kernels (launch-bound small decode steps are exactly that).
    """

    def __init__(self, device: torch.device | str):
        self.cuda = torch.device(device).type == "cuda"
        self._start = self._end = None

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self._start, self._end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._start = time.perf_counter()

    def stop(self) -> float:
        """Seconds since `start`."""
        if self.cuda:
            self._end.record()
            self._end.synchronize()
            return self._start.elapsed_time(self._end) / 1000
        return time.perf_counter() - self._start
