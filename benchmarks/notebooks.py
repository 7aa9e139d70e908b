"""Wall time and peak memory of each notebook on its quick profile (a table, not a test).

    .venv/bin/python benchmarks/notebooks.py [NOTEBOOK ...] [--profile quick]

Each notebook runs through ``python -m neuromod_lib run`` into a temporary folder (the
committed notebooks are not touched); the peak memory is the largest resident set of the
run's processes (the kernel), read from ``getrusage(RUSAGE_CHILDREN)`` of a fresh child.
Targets of the issues: under 3 minutes on 2 CPU cores, under 1.5 GB (Binder allows 2 GB).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

_CHILD = """
import resource, subprocess, sys, time
start = time.perf_counter()
status = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(status, round(time.perf_counter() - start, 1), round(peak_mb))
"""


def measure(name: str, profile: str) -> tuple[int, float, int]:
    """(exit status, wall seconds, peak MB) of running notebook ``name`` once."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "neuromod_lib",
            "run",
            name,
            "--profile",
            profile,
            "--output-dir",
            tmp,
            "--results-dir",
            tmp,
        ]
        out = subprocess.run([sys.executable, "-c", _CHILD, *cmd], capture_output=True, text=True, check=True)
    status, seconds, peak = out.stdout.split()
    return int(status), float(seconds), int(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["01", "02", "03"])
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args()
    print(f"| notebook ({args.profile}) | status | wall (s) | peak memory (MB) |\n|---|---|---|---|")
    start = time.perf_counter()
    for name in args.names:
        status, seconds, peak = measure(name, args.profile)
        print(
            f"| {name} | {'ok' if status == 0 else f'FAILED ({status})'} | {seconds:.0f} | {peak} |",
            flush=True,
        )
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
