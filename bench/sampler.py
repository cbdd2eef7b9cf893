"""A small sampling profiler for a whole process: `python -m bench.sampler OUT.json -m MODULE ARGS`.

It runs MODULE as `__main__` (like `python -m MODULE ARGS`) with a CPU-time interval timer
(`ITIMER_PROF`): every `INTERVAL_S` of CPU the process uses, SIGPROF fires and the handler records
the Python stack it interrupted. Samples are therefore proportional to CPU time, idle waiting costs
nothing, and every function is charged only for the time it actually ran. (cProfile instead adds a
fixed cost to each Python call, which inflates call-heavy libraries; a sampling thread only gets
the GIL where the main thread releases it, which over-counts system calls.)

Sampling covers a window the benchmark chooses: SIGUSR1 starts it (after start-up and warm-up),
SIGUSR2 stops it and writes OUT.json: the sample count, the interval, and per-function `self`
(innermost frame) and `inclusive` (anywhere on the stack) sample counts. A C function counts
towards the Python function that called it. Linux's CPU timers tick at the kernel's HZ, so there
may be fewer samples than CPU/interval; they stay proportional to CPU time, and the benchmark
scales them to the CPU time it reads from /proc for the same window.
"""

from __future__ import annotations

import json
import runpy
import signal
import sys
from collections import Counter
from pathlib import Path
from types import FrameType

INTERVAL_S = 0.001


def _key(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{code.co_firstlineno}:{code.co_name}"


class Sampler:
    """Counts the stacks SIGPROF interrupts."""

    def __init__(self, out: Path) -> None:
        self._out = out
        self.self_samples: Counter[str] = Counter()
        self.inclusive: Counter[str] = Counter()
        self.samples = 0

    def install(self) -> None:
        """SIGUSR1 starts sampling, SIGUSR2 stops it and writes the report (main thread only)."""
        signal.signal(signal.SIGPROF, self._on_signal)
        signal.signal(signal.SIGUSR1, lambda _s, _f: self.start())
        signal.signal(signal.SIGUSR2, lambda _s, _f: self.stop())

    def start(self) -> None:
        """Begin sampling."""
        signal.setitimer(signal.ITIMER_PROF, INTERVAL_S, INTERVAL_S)

    def stop(self) -> None:
        """Stop sampling and write the report."""
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        self._out.write_text(json.dumps(self.report()))

    def _on_signal(self, _signum: int, frame: FrameType | None) -> None:
        if frame is None:
            return
        self.samples += 1
        self.self_samples[_key(frame)] += 1
        seen: set[str] = set()
        walker: FrameType | None = frame
        while walker is not None:
            key = _key(walker)
            if key not in seen:
                seen.add(key)
                self.inclusive[key] += 1
            walker = walker.f_back

    def report(self) -> dict[str, object]:
        """The collected profile, JSON-ready."""
        return {
            "interval_s": INTERVAL_S,
            "samples": self.samples,
            "self": dict(self.self_samples.most_common()),
            "inclusive": dict(self.inclusive.most_common()),
        }


def main() -> None:
    """`python -m bench.sampler OUT.json -m MODULE [ARGS...]`."""
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        sys.exit("usage: python -m bench.sampler OUT.json -m MODULE [ARGS...]")
    out, module, args = Path(sys.argv[1]), sys.argv[3], sys.argv[4:]
    sys.argv = [module, *args]
    Sampler(out).install()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
