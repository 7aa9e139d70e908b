"""Measure how much each notebook's recorded metrics move from seed to seed; write tests/seed_spread.json.

    .venv/bin/python tests/measure_seed_spread.py          # seeds 1 and 2, every notebook (~30 min)
    .venv/bin/python tests/measure_seed_spread.py 04 05    # only these notebooks

Runs each notebook's ``quick`` profile (the committed parameters) with other seeds through
``python -m neuromod_lib run``, into ``results/spread/``, and takes seed 0 from the committed
reference records (``results/reference/``). A seed already recorded there is not run again,
unless ``--rerun``: re-run with it whenever a notebook's metrics change. For each notebook it
writes the seeds used, the sd over them of every numeric metric, the median relative sd
(sd / |mean|) of the metrics that varied, and the boolean and string metrics (verdicts) that did
not take the same value on every seed. ``tests/test_portability.py``
reads it (see :func:`neuromod_lib.results.compare`).

Another floating-point path is another source of the same variation: a record of a fresh run on
another CPU (e.g. the one ``make test`` leaves under ``$NEUROMOD_RESULTS_DIR`` with AVX2 kernels),
copied into ``results/spread/runs/<notebook>/quick/`` under a name such as
``seed-0-<key>-avx2.json``, counts as one more run (on 2026-11-30, with the notebooks' earlier
parameters, one of notebook 03's per-cell verdicts flipped on AVX2 with seed 0 only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neuromod_lib import cli, notebooks, profiles, results  # noqa: E402
from neuromod_lib.storage import read_json, write_json  # noqa: E402

OUT = ROOT / "tests" / "seed_spread.json"
FOLDER = ROOT / "results" / "spread"


def spread(runs: list[dict]) -> dict:
    """What varies over ``runs`` (records of one notebook and parameter point, different seeds)."""
    stats = results.aggregate(runs)
    numbers = {k: v for k, v in stats.items() if isinstance(v, results.Stat)}
    relative = [v.sd / abs(v.mean) for v in numbers.values() if v.sd > 0 and v.mean != 0]
    return {
        "seeds": sorted(r["seed"] for r in runs),
        "sd": {k: round(v.sd, 4) for k, v in numbers.items()},
        "median_relative_sd": round(statistics.median(relative), 4) if relative else 0.0,
        "seed_dependent": sorted(
            k for k, v in stats.items() if isinstance(v, str) and v.startswith("mixed (")
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks (default: all)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--rerun", action="store_true", help="run again the seeds already recorded")
    args = parser.parse_args(argv)
    table = read_json(OUT) if OUT.is_file() else {}
    references = results.load_reference(ROOT / "results")
    for nb in notebooks.select(args.names):
        committed = profiles.resolve(nb.name, profiles.DEFAULT_PROFILE)
        for seed in args.seeds:
            if results.run_path(FOLDER, {**committed, "seed": seed}).is_file() and not args.rerun:
                continue
            argv = ["run", nb.name, "-p", f"seed={seed}", "--output-dir", str(FOLDER / "notebooks")]
            if cli.main([*argv, "--results-dir", str(FOLDER)]) != 0:
                return 1
        key = results.run_key(committed)
        runs = [r for r in results.load_runs(FOLDER) if r["notebook"] == nb.name and r["key"] == key]
        if nb.name in references:
            runs.append(references[nb.name])
        table[nb.name] = spread(runs)
        write_json(OUT, dict(sorted(table.items())))
        print(
            f"{nb.name}: seeds {table[nb.name]['seeds']}, seed-dependent: {table[nb.name]['seed_dependent']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
