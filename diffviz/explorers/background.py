"""Slow explorer work in one background thread, where the newest request wins.

    slider move (kernel) ──submit(request)──► busy(request) at once; newest request kept
    worker thread ──► work(request, job) ──job.check() between steps: stale? raise Abandoned
                  ──► done(request, out) or failed(request, err), only if still the newest

A kernel callback only records the newest request and wakes the worker, so key presses never
queue up behind a running computation. ``busy``, ``job.report``, ``done`` and ``failed`` run under
one lock together with the staleness check, so an old result can never land after a newer request
has been shown as busy. No ipywidgets here: the callbacks are the explorer's.
"""
from __future__ import annotations

import threading


class Abandoned(Exception):
    """Raised inside a job whose request a newer one has replaced."""


class Job:
    """The running request's handle: ``stale()``, ``check()`` (raise ``Abandoned`` when stale) and
    ``report(fn)`` (call ``fn()`` under the lock, only while this job is still the newest)."""

    def __init__(self, runner: "LatestWins", generation: int):
        self.runner, self.generation = runner, generation

    def stale(self) -> bool:
        return self.generation != self.runner.generation

    def check(self):
        if self.stale():
            raise Abandoned

    def report(self, fn) -> bool:
        with self.runner.lock:
            if self.stale():
                return False
            fn()
            return True


class LatestWins:
    """Run ``work(request, job)`` in a worker thread for the newest submitted request.

    Args: work(request, job) → out: the slow part (calls ``job.check()`` between steps);
          busy(request): shows that ``request`` is being worked on (called at submit, in the caller's thread);
          done(request, out) / failed(request, err): show the result or the error (worker thread).
    Counters: ``submitted``, ``completed`` (results shown), ``abandoned`` (stale requests dropped, started or not).
    """

    def __init__(self, work, busy, done, failed):
        self.work, self.busy, self.done, self.failed = work, busy, done, failed
        self.lock = threading.Condition()
        self.generation, self.pending, self.thread = 0, None, None
        self.submitted = self.completed = self.abandoned = 0

    def submit(self, request):
        """Make ``request`` the newest: show it as busy now, run it when the worker is free."""
        with self.lock:
            self.generation += 1
            self.submitted += 1
            self.abandoned += self.pending is not None  # replaced before it started
            self.pending = (self.generation, request)
            self.busy(request)
            if self.thread is None:
                self._start()

    def idle(self) -> bool:
        return self.thread is None and self.pending is None

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Block until the newest request is shown (or failed); False if ``timeout`` s passed first."""
        with self.lock:
            return self.lock.wait_for(self.idle, timeout)

    def _loop(self):
        try:
            while True:
                with self.lock:
                    if self.pending is None:  # nothing newer: the thread ends, the next submit starts one
                        return
                    generation, request = self.pending
                    self.pending = None
                self._run(Job(self, generation), request)
        finally:  # also if a callback raised: ``wait`` must not hang
            with self.lock:
                self.thread = None
                if self.pending is not None:
                    self._start()
                self.lock.notify_all()

    def _start(self):
        self.thread = threading.Thread(target=self._loop, name="diffviz-explorer", daemon=True)
        self.thread.start()

    def _run(self, job: Job, request):
        try:
            out = self.work(request, job)
        except Abandoned:
            with self.lock:
                self.abandoned += 1
            return
        except Exception as err:  # noqa: BLE001 — shown by ``failed``, never raised into the kernel
            job.report(lambda: self.failed(request, err))
            return
        with self.lock:
            if job.stale():
                self.abandoned += 1
                return
            self.completed += 1
            self.done(request, out)
