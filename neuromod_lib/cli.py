"""Command line: ``python -m neuromod_lib`` (or ``neuromod``) lists and runs the notebooks.

    python -m neuromod_lib list [05]
    python -m neuromod_lib run 00 01 --profile quick -p seed=1 --output-dir results/notebooks
    python -m neuromod_lib run all --in-place          # what `make notebooks` does
    python -m neuromod_lib summary
    python -m neuromod_lib report

Every input is checked before anything runs: an unknown notebook, profile or parameter, a
value of the wrong type or out of range (list entries included, sizes against a memory
estimate), an unavailable device, or an output folder that cannot be written prints one line
naming it and the allowed values, and the command exits with status 2. Every run has a per-cell
time limit, so nothing waits forever; a failed notebook prints its exception and the failing
cell, and is kept under ``<results>/failed/``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import notebooks, profiles, report, results, tables
from . import sweep as sweep_mod


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) and exit with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"neuromod: error: {message}\n")


#: default per-cell time limit of a notebook run, by profile (``--timeout`` overrides it): far above
#: what a cell takes (quick: about 2 minutes per notebook on a 2-core CPU), so that only a hang hits it
DEFAULT_TIMEOUT = {"smoke": 600, "quick": 1800, "paper": 24 * 3600}


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m neuromod_lib", description="List and run the neuromod notebooks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    listing = sub.add_parser("list", help="list the notebooks, or one notebook's parameters")
    listing.add_argument("names", nargs="*", metavar="NOTEBOOK", help="show these notebooks' parameters")
    run = sub.add_parser("run", help="execute notebooks with papermill")
    run.add_argument("names", nargs="*", metavar="NOTEBOOK", help="names or number prefixes (default: all)")
    run.add_argument("--profile", default=profiles.DEFAULT_PROFILE, help="smoke, quick or paper")
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one parameter (repeatable)",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--output-dir",
        type=Path,
        default=Path("results/notebooks"),
        help="folder for the executed notebooks (default: results/notebooks)",
    )
    where.add_argument(
        "--in-place",
        action="store_true",
        help="rewrite the committed notebooks (quick profile, default parameters only) and their "
        "reference records and summary",
    )
    run.add_argument("--results-dir", type=Path, default=Path("results"), help="folder for recorded results")
    run.add_argument("--progress", action="store_true", help="show progress bars inside the notebooks")
    run.add_argument(
        "--timeout",
        type=int,
        default=None,
        help="per-cell time limit in seconds (default: "
        + ", ".join(f"{k} {v}" for k, v in DEFAULT_TIMEOUT.items())
        + ")",
    )
    _sweep_parser(sub)
    summary = sub.add_parser("summary", help="print every recorded run, aggregated over seeds")
    summary.add_argument("--results-dir", type=Path, default=Path("results"))
    report_parser = sub.add_parser(
        "report", help="write results/report.md: every recorded run and the papers' claims"
    )
    report_parser.add_argument("--results-dir", type=Path, default=Path("results"))
    report_parser.add_argument(
        "--notebooks-dir",
        type=Path,
        action="append",
        default=None,
        help="folder of executed notebooks to take the figures from (repeatable; default: "
        "<results-dir>/notebooks, the notebooks/ folder beside <results-dir> and <results-dir>/sweeps)",
    )
    report_parser.add_argument(
        "--runs",
        type=Path,
        nargs="+",
        default=None,
        metavar="DIR",
        help="merge the run records of these results folders (e.g. of several machines) into one "
        "report, with a CSV of every run (<results-dir>/runs.csv)",
    )
    return parser


def _sweep_parser(sub: Any) -> None:
    """``sweep``: one notebook over seeds x parameter values, through Dask (see neuromod_lib.sweep)."""
    sweep = sub.add_parser("sweep", help="run notebooks over a grid of seeds and parameters, through Dask")
    sweep.add_argument("names", nargs="+", metavar="NOTEBOOK", help="names, number prefixes, or all")
    sweep.add_argument("--profile", default=profiles.DEFAULT_PROFILE, help="smoke, quick or paper")
    sweep.add_argument("--seeds", default="0", help="seeds: '0-9', '0,2,5' or '1-3,7' (default 0)")
    sweep.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values of one parameter (repeatable; ';' between values that are lists)",
    )
    sweep.add_argument("--results-dir", type=Path, default=Path("results"), help="folder for the records")
    sweep.add_argument(
        "--output-dir",
        type=Path,
        default=Path("results/sweeps"),
        help="folder for the executed notebooks (default: results/sweeps)",
    )
    sweep.add_argument("--retries", type=int, default=1, help="retries of a failed run (default 1)")
    sweep.add_argument("--timeout", type=int, default=None, help="per-cell time limit in seconds")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local cluster: worker processes (default: one per GPU, else one per two cores)",
    )
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="join this Dask cluster")
    where.add_argument(
        "--cluster", choices=sweep_mod.CLUSTERS, default=None, help="start a cluster through dask-jobqueue"
    )
    batch = sweep.add_argument_group("--cluster jobs")
    batch.add_argument("--jobs", type=int, default=1, help="jobs to submit (default 1)")
    batch.add_argument("--cores", type=int, default=4, help="cores per job (default 4)")
    batch.add_argument("--memory", default="16GB", help="memory per job (default 16GB)")
    batch.add_argument("--walltime", default="04:00:00", help="wall time per job (default 04:00:00)")
    batch.add_argument(
        "--gpus-per-job", type=int, default=0, help="GPUs per job, one worker each (default 0)"
    )
    batch.add_argument("--queue", default=None, help="queue or partition")
    batch.add_argument("--account", default=None, help="account or project to charge")
    batch.add_argument("--dry-run", action="store_true", help="print the job script; submit nothing")


def _table(rows: list[list[str]], header: list[str]) -> str:
    return tables.table(rows, header).text()


def _list(names: Sequence[str]) -> int:
    if names:
        for nb in notebooks.select(names):
            print(f"{nb.name}: {nb.question}\n")
            print(_table(profiles.describe_parameters(nb.name), profiles.DESCRIBE_HEADER) + "\n")
        return 0
    rows = []
    for nb in notebooks.CATALOGUE:
        common = {"seed", "device", "results_dir"}
        own = [name for name in profiles.spec(nb.name) if name not in common] if nb.ready else []
        params = ", ".join(own) or "-"
        rows.append([nb.name, "ready" if nb.ready else "not yet written", nb.paper, params])
    print(_table(rows, ["notebook", "status", "paper", "parameters (besides seed, device, results_dir)"]))
    print(f"\nprofiles: {', '.join(profiles.PROFILES)} (default {profiles.DEFAULT_PROFILE})")
    print("details of one notebook's parameters: python -m neuromod_lib list 05")
    return 0


def _check_folder(option: str, folder: Path) -> None:
    """Refuse, before any work, a folder that cannot be created or written: a file, a folder under
    a file, or one whose nearest existing parent is not writable."""
    path = folder.resolve()
    if path.exists() and not path.is_dir():
        raise profiles.ParameterError(f"{option}={str(folder)!r} is a file; allowed: a folder")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise profiles.ParameterError(
            f"{option}={str(folder)!r} lies under the file {str(parent)!r}; allowed: a folder"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise profiles.ParameterError(
            f"{option}={str(folder)!r} is not writable ({str(parent)!r}); allowed: a writable folder"
        )


def _validate(args: argparse.Namespace) -> list[tuple[notebooks.Notebook, dict, profiles.Config]]:
    """Every check, before anything runs: notebooks, profile, parameters, folders, timeout."""
    profiles.check_profile(args.profile)
    chosen = notebooks.select(args.names)
    plan = []
    for nb in chosen:
        overrides = profiles.parse_overrides(nb.name, args.param)
        plan.append((nb, overrides, profiles.resolve(nb.name, args.profile, **overrides)))
    if args.timeout is not None and args.timeout < 1:
        raise profiles.ParameterError(f"--timeout={args.timeout} is not allowed; allowed: seconds >= 1")
    if args.in_place:
        if args.profile != profiles.DEFAULT_PROFILE or args.param:
            raise profiles.ParameterError(
                "--in-place rewrites the committed notebooks, which run the quick profile with their "
                "default parameters; allowed: no --profile other than quick and no -p (use --output-dir)"
            )
    else:
        if args.output_dir.resolve() == notebooks.NOTEBOOK_DIR.resolve():
            raise profiles.ParameterError(
                f"--output-dir={str(args.output_dir)!r} is the folder of the committed notebooks; "
                "allowed: another folder, or --in-place (quick profile, default parameters)"
            )
        _check_folder("--output-dir", args.output_dir)
    _check_folder("--results-dir", args.results_dir)
    return plan


def _failure(error: BaseException) -> str:
    """What went wrong in a notebook run, in a few lines: the notebook's exception and the first
    lines of the failing cell, or the error that stopped the run (time limit, dead kernel)."""
    import papermill.exceptions as pm_errors

    if isinstance(error, pm_errors.PapermillExecutionError):
        lines = [f"{error.ename}: {error.evalue}", f"in cell [{error.exec_count}]:"]
        code = [line for line in str(error.source).splitlines() if line.strip()][:3]
        return "\n".join(lines + [f"    {line}" for line in code])
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _run(args: argparse.Namespace) -> int:
    plan = _validate(args)
    results_dir = args.results_dir.resolve()
    timeout = args.timeout or DEFAULT_TIMEOUT[args.profile]
    rows, failed = [], []
    for nb, overrides, cfg in plan:
        output = nb.path if args.in_place else args.output_dir.resolve() / nb.path.name
        print(f"running {nb.name} (profile {args.profile}) -> {output}", flush=True)
        try:
            seconds = notebooks.execute(
                nb,
                output,
                profile=args.profile,
                overrides=overrides,
                results_dir=results_dir,
                progress=args.progress,
                timeout=timeout,
            )
        except Exception as error:  # noqa: BLE001 - report, go on with the others
            failed.append(nb.name)
            message = _failure(error).replace("\n", "\n  ")
            partial = notebooks.failed_path(results_dir, nb.name)
            kept = f"partial notebook: {partial}" if partial.is_file() else "no partial notebook was saved"
            print(f"  FAILED: {message}\n  {kept}")
            rows.append([nb.name, "FAILED", "-", "-"])
            continue
        path = results.run_path(results_dir, cfg)
        run = results.read_record(path) if path.is_file() else None
        if args.in_place:
            notebooks.write_twin(output)
        if run is not None and args.in_place:
            results.write_reference(results_dir, run)
        line = results.headline(run["metrics"]) if run else "(the notebook wrote no record)"
        rows.append([nb.name, "ok", f"{seconds:.0f}", line])
    print("\n" + _table(rows, ["notebook", "status", "seconds", "headline numbers"]))
    if args.in_place:
        print(f"\nsummary: {results.write_summary(results_dir)}")
    written = notebooks.NOTEBOOK_DIR if args.in_place else args.output_dir.resolve()
    figures_from = [written, *report.default_notebook_dirs(results_dir)]
    print(f"records: {results_dir / results.RUNS_DIR}")
    print(f"report:  {report.write_report(results_dir, figures_from)}")
    return 1 if failed else 0


def _names(points: Sequence[sweep_mod.Point]) -> str:
    return ", ".join(dict.fromkeys(p.notebook for p in points))


def _sweep(args: argparse.Namespace) -> int:
    """Check the whole grid, then run it (or, ``--dry-run``, print the job script)."""
    if args.retries < 0:
        raise profiles.ParameterError(f"--retries={args.retries} is not allowed; allowed: an integer >= 0")
    if args.workers is not None and args.workers < 1:
        raise profiles.ParameterError(f"--workers={args.workers} is not allowed; allowed: an integer >= 1")
    points = sweep_mod.expand(
        args.names, args.profile, sweep_mod.parse_seeds(args.seeds), sweep_mod.parse_grid(args.param)
    )
    spec = None
    if args.cluster:
        spec = sweep_mod.ClusterSpec(
            args.cluster, jobs=args.jobs, cores=args.cores, memory=args.memory, walltime=args.walltime,
            queue=args.queue, account=args.account, gpus_per_job=args.gpus_per_job,
        )  # fmt: skip
    if args.dry_run:
        if spec is None:
            raise profiles.ParameterError(
                "--dry-run is not allowed without --cluster; allowed: with --cluster"
            )
        print(f"{len(points)} runs of {_names(points)} ({args.profile}); one job's script:\n")
        print(sweep_mod.job_script(spec))
        return 0
    for option in ("--results-dir", "--output-dir"):
        _check_folder(option, getattr(args, option[2:].replace("-", "_")))
    print(f"{len(points)} runs of {_names(points)} ({args.profile})", flush=True)
    client = sweep_mod.make_client(scheduler=args.scheduler, cluster=spec, workers=args.workers)
    ours = args.scheduler is None  # a cluster made here: its workers have one run slot each
    try:
        outcomes = sweep_mod.run_sweep(
            points, client, results_dir=args.results_dir, output_dir=args.output_dir,
            retries=args.retries, timeout=args.timeout, progress=not args.no_progress,
            one_at_a_time=True if ours else None,
        )  # fmt: skip
    finally:
        cluster = client.cluster if ours else None
        client.close()
        if cluster is not None:
            cluster.close()  # its batch jobs end with it
    rows = [[o.point.label(), o.status, o.error or o.record] for o in outcomes]
    print("\n" + _table(rows, ["run", "status", "record or error"]))
    figures_from = [args.output_dir, *report.default_notebook_dirs(args.results_dir)]  # and earlier runs'
    print(f"report: {report.write_report(args.results_dir, figures_from)}")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _summary(args: argparse.Namespace) -> int:
    runs = results.load_runs(args.results_dir)
    source = f"every run record under `{args.results_dir / results.RUNS_DIR}`"
    print(results.summary_markdown(runs, title="Recorded runs", source=source), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input, 1 if a notebook failed)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list(args.names)
        if args.command == "run":
            return _run(args)
        if args.command == "sweep":
            return _sweep(args)
        _check_folder("--results-dir", args.results_dir)
        if args.command == "report":
            for folder in args.runs or ():
                _check_folder("--runs", folder)
            print(f"report: {report.write_report(args.results_dir, args.notebooks_dir, args.runs)}")
            return 0
        return _summary(args)
    # ParameterError, records or files that are not what they should be, and folders or files that
    # cannot be read or written: one line, no traceback
    except (ValueError, OSError) as error:
        print(f"neuromod: error: {error}", file=sys.stderr)
        return 2
