"""Run benchmark settings in child processes, each under a time cap, recording every failure.

A benchmark hands :func:`run_settings` a worker command and a list of settings (JSON objects).
The worker reads the list from stdin and calls :func:`serve`, which runs the settings in order
and prints one result line per setting; a Python exception inside a setting becomes that
setting's ``failed`` result and the worker goes on. The parent watches the lines: a setting that
runs past ``cap_s`` (or past the total deadline) gets its process group killed and is recorded as
``failed`` (timed out), a worker that dies is recorded with the tail of its stderr, and a new
worker continues with the settings left. Settings not started before the deadline are
``skipped``. So one stuck ``torch.compile`` or one crashed CUDA context costs one row, not the
run.

One setting per call gives each setting a fresh process, so the process's peak resident memory
(``ru_maxrss``, see :func:`peak_rss_mib`) is that setting's own.
"""

from __future__ import annotations

import json
import os
import queue
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

RESULT_MARK = "@@result "
ERROR_CHARS = 400


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def describe(error: BaseException) -> str:
    """One line for a result file: type, message and where it was raised."""
    where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    place = f" ({where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    if len(text) > ERROR_CHARS:
        text = text[:ERROR_CHARS // 2] + " ... " + text[-ERROR_CHARS // 2:]
    return text + place


def serve(run_one: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Worker side: run each setting read from stdin, print its result line as it finishes."""
    for setting in json.loads(sys.stdin.read()):
        try:
            result = {**setting, "status": "ok", **run_one(setting)}
        except Exception as error:  # any failure of one setting is that setting's result
            result = {**setting, "status": "failed", "error": describe(error)}
        print(RESULT_MARK + json.dumps(result), flush=True)


def run_settings(worker: Sequence[str], settings: Sequence[dict[str, Any]], *, cap_s: float,
                 deadline: float | None = None, startup_s: float = 60.0,
                 env: dict[str, str] | None = None,
                 on_result: Callable[[dict[str, Any]], None] | None = None
                 ) -> list[dict[str, Any]]:
    """Results of ``settings`` in order, each ``{**setting, "status": ..., ...}``.

    ``cap_s``: seconds one setting may run (its worker's first setting also gets ``startup_s``
    for imports and data). ``deadline``: ``time.monotonic()`` value after which nothing new
    starts and a running setting is stopped. ``on_result`` sees each result as it arrives.
    """
    results: list[dict[str, Any]] = []
    pending = list(settings)

    def record(result: dict[str, Any]) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    while pending:
        if deadline is not None and time.monotonic() >= deadline:
            for setting in pending:
                record({**setting, "status": "skipped", "error": "total time budget spent"})
            break
        done = _one_worker(worker, pending, cap_s, deadline, startup_s, env, record)
        pending = pending[done:]
    return results


def _one_worker(worker: Sequence[str], settings: list[dict[str, Any]], cap_s: float,
                deadline: float | None, startup_s: float, env: dict[str, str] | None,
                record: Callable[[dict[str, Any]], None]) -> int:
    """Start one worker on ``settings``; returns how many of them now have a result."""
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(list(worker), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=stderr, text=True, env=env, start_new_session=True)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(settings))
        process.stdin.close()
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        done, ended, timed_out = 0, False, False
        allowed = startup_s + cap_s  # the first setting also pays the worker's start
        while done < len(settings):
            wait = allowed if deadline is None else min(allowed, deadline - time.monotonic())
            try:
                line = lines.get(timeout=max(wait, 0.0))
            except queue.Empty:
                timed_out = True
                break
            if line is None:  # the worker closed its output: it exited
                ended = True
                break
            record(json.loads(line))
            done += 1
            allowed = cap_s
        if timed_out:
            os.killpg(process.pid, signal.SIGKILL)
        try:
            process.wait(timeout=cap_s)
        except subprocess.TimeoutExpired:  # done, but stuck on its way out
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if not ended:  # a result printed just before the kill or the exit
            reader.join(timeout=10.0)  # a grandchild may still hold the pipe open
            while not lines.empty() and (line := lines.get()) is not None:
                record(json.loads(line))
                done += 1
        if done == len(settings):
            return done
        if timed_out:
            over_budget = deadline is not None and time.monotonic() >= deadline
            error = ("timed out: total time budget spent" if over_budget
                     else f"timed out after the {cap_s:.0f} s cap per setting")
        else:
            stderr.seek(0)
            tail = " | ".join(stderr.read().strip().splitlines()[-3:])[-ERROR_CHARS:]
            error = f"worker exited with status {process.returncode}: {tail}"
        record({**settings[done], "status": "failed", "error": error})
        return done + 1


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        if line.startswith(RESULT_MARK):
            lines.put(line[len(RESULT_MARK):])
    lines.put(None)
