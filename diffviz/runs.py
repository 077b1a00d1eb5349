"""A run folder (``TrainConfig.checkpoint_dir``) that loses no work: checked before the first step,
locked while a run writes to it, and resumed only with settings that continue the same run.

    check_usable(folder, need_bytes)   # a folder we can write, with room for a checkpoint — or an error now
    check_resumable(folder)            # --resume: the folder must hold a checkpoint (a mistyped name does not)
    check_fresh(folder, overwrite)     # a new run: refuse an earlier run's checkpoints, or delete them (--overwrite)
    RunLock(folder)                    # LOCK holds our PID; a dead process's lock is recovered with a warning
    resume_differences(saved, new)     # settings that may not change on --resume: an error naming each
    append_log(folder, line)           # run.log: starts, resumes (and what changed), stops
    StopOnSignal(on_stop)              # SIGINT / SIGTERM ask the loop to stop after the current step
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import warnings
from pathlib import Path

LOCK_NAME, LOG_NAME = "LOCK", "run.log"
# changing these on --resume continues the same run: how long, how often it saves, on which machine
SAFE_TO_CHANGE = frozenset({"steps", "checkpoint_every", "keep_checkpoints", "checkpoint_dir", "resume",
                            "log_every", "sample_every", "num_samples", "sample_steps",
                            "num_threads", "device", "fast", "compile", "bf16"})


class RunFolderError(ValueError):
    """A run folder that cannot be used: unwritable, full, in use, or holding another run."""


def _is_checkpoint_entry(path: Path) -> bool:
    return path.name == "latest" or (path.name.startswith("step-") and path.is_dir())


def has_checkpoints(folder) -> bool:
    folder = Path(folder)
    return folder.is_dir() and any(_is_checkpoint_entry(p) for p in folder.iterdir())


def check_usable(folder, need_bytes: int = 0):
    """Create ``folder`` if needed and prove we can write there, with ``need_bytes`` free: an error
    now, not after the whole run at the first save."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"checkpoint_dir {str(folder)!r} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise RunFolderError(f"checkpoint_dir {str(folder)!r} is not writable: {err.strerror or err}") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise RunFolderError(f"checkpoint_dir {str(folder)!r} has {free / 1e6:.1f} MB free; a checkpoint of "
                             f"this model needs about {need_bytes / 1e6:.1f} MB")


def check_resumable(folder):
    """``--resume`` needs a checkpoint to resume: a mistyped folder is an error, not a fresh start."""
    if not has_checkpoints(folder):
        raise RunFolderError(f"--resume: {str(folder)!r} holds no checkpoint to resume (is the folder name "
                             f"right?); drop --resume to start a new run there")


def check_fresh(folder, overwrite: bool = False):
    """A new run in ``folder``: refuse to write over an earlier run's checkpoints, or, with
    ``overwrite``, delete them first. Call it holding the folder's ``RunLock``."""
    folder = Path(folder)
    if not has_checkpoints(folder):
        return
    if not overwrite:
        raise RunFolderError(f"checkpoint_dir {str(folder)!r} already holds checkpoints of a run; pass --resume "
                             f"to continue it, or --overwrite to delete them and start again")
    for path in folder.iterdir():
        if _is_checkpoint_entry(path) or path.name.endswith(".tmp"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    append_log(folder, "overwrite: deleted the earlier run's checkpoints")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    return True


class RunLock:
    """``folder/LOCK`` holding "PID HOST" while a run writes checkpoints there (a context manager).
    A second run is refused; a lock left by a process that no longer runs is taken over with a warning."""

    def __init__(self, folder):
        self.path = Path(folder) / LOCK_NAME
        self.mine = f"{os.getpid()} {socket.gethostname()}"

    def owner(self) -> str | None:
        """The "PID HOST" of a live other process holding the lock, or None."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        pid, _, host = text.partition(" ")
        if text == self.mine or (host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))):
            return None
        return text or "?"

    def acquire(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.owner()
                if owner is not None:
                    raise RunFolderError(f"{self.path.parent} is in use by process {owner} (its {LOCK_NAME} file); "
                                         f"wait for that run, stop it, or use another folder (delete {LOCK_NAME} only if that "
                                         f"process is not a diffviz run)") from None
                stale = self.path.read_text(encoding="utf-8").strip()
                if stale != self.mine:
                    warnings.warn(f"{self.path}: recovered the stale lock of process {stale}, which is no longer running")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.mine + "\n")
            return self
        raise RunFolderError(f"{self.path}: could not take the lock")

    def release(self):
        try:
            if self.path.read_text(encoding="utf-8").strip() == self.mine:
                self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def resume_differences(saved: dict, new: dict) -> tuple[list[str], list[str]]:
    """Compare a checkpoint's train config with the one resuming it: (unsafe, safe) changes,
    each "name: old → new". Unsafe ones would silently make it another run."""
    unsafe, safe = [], []
    for name in sorted(saved.keys() & new.keys()):
        if saved[name] != new[name]:
            (safe if name in SAFE_TO_CHANGE else unsafe).append(f"{name}: {saved[name]!r} → {new[name]!r}")
    return unsafe, safe


def append_log(folder, line: str):
    """Append a time-stamped line to ``folder/run.log``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with open(Path(folder) / LOG_NAME, "a", encoding="utf-8") as f:
        f.write(f"{stamp} pid {os.getpid()}: {line}\n")


class StopOnSignal:
    """While active, SIGINT and SIGTERM call ``on_stop()`` (which should ask the loop to stop after
    its step) instead of killing the process; ``signum`` records the first one. A no-op outside the
    main thread (where Python cannot take signals)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_stop):
        self.on_stop, self.signum, self._old = on_stop, None, {}

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            self.on_stop()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)
