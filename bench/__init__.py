"""roombot's benchmarks: ack latency, end-to-end overhead, bulk throughput, memory.

Run with `python -m bench` from the repository root (see bench/README.md). Not part of the test
suite: it starts real processes and takes minutes, and its figures are measurements, not checks.
"""
