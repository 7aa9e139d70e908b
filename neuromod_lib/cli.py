"""Command line: ``python -m neuromod_lib`` (or ``neuromod``) lists and runs the notebooks.

    python -m neuromod_lib list
    python -m neuromod_lib run 00 01 --profile quick -p seed=1 --output-dir results/notebooks
    python -m neuromod_lib run all --in-place          # what `make notebooks` does
    python -m neuromod_lib summary
    python -m neuromod_lib report

Every input is checked before anything runs: an unknown notebook, profile or parameter,
or a value of the wrong type, prints one line naming it and the allowed values, and the
command exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import notebooks, profiles, report, results


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) and exit with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"neuromod: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m neuromod_lib", description="List and run the neuromod notebooks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the notebooks and their parameters")
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
    where.add_argument("--in-place", action="store_true", help="write the executed notebooks back in place")
    run.add_argument("--results-dir", type=Path, default=Path("results"), help="folder for recorded results")
    run.add_argument("--progress", action="store_true", help="show progress bars inside the notebooks")
    run.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    summary = sub.add_parser("summary", help="print and write the results summary")
    summary.add_argument("--results-dir", type=Path, default=Path("results"))
    report_parser = sub.add_parser(
        "report", help="write results/report.md: every record and the papers' claims"
    )
    report_parser.add_argument("--results-dir", type=Path, default=Path("results"))
    report_parser.add_argument(
        "--notebooks-dir",
        type=Path,
        action="append",
        default=None,
        help="folder of executed notebooks to take the figures from (repeatable; default: "
        "<results-dir>/notebooks and the notebooks/ folder beside <results-dir>)",
    )
    return parser


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _list() -> int:
    rows = []
    for nb in notebooks.CATALOGUE:
        params = ", ".join(profiles.NOTEBOOK_PARAMS.get(nb.name, {})) or "-"
        rows.append([nb.name, "ready" if nb.ready else "not yet written", nb.paper, params])
    print(_table(rows, ["notebook", "status", "paper", "parameters (besides seed, device, results_dir)"]))
    print(f"\nprofiles: {', '.join(profiles.PROFILES)} (default {profiles.DEFAULT_PROFILE})")
    return 0


def _validate(args: argparse.Namespace) -> list[tuple[notebooks.Notebook, dict]]:
    """Every check, before anything runs: notebooks, profile, parameters."""
    profiles.check_profile(args.profile)
    chosen = notebooks.select(args.names)
    plan = []
    for nb in chosen:
        overrides = profiles.parse_overrides(nb.name, args.param)
        profiles.resolve(nb.name, args.profile, **overrides)
        plan.append((nb, overrides))
    return plan


def _run(args: argparse.Namespace) -> int:
    plan = _validate(args)
    results_dir = args.results_dir.resolve()
    rows, failed = [], []
    for nb, overrides in plan:
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
                timeout=args.timeout,
            )
        except Exception as error:  # noqa: BLE001 - report, go on with the others
            failed.append(nb.name)
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(f"  FAILED: {first_line}\n  partial notebook: {results_dir / 'failed' / nb.path.name}")
            rows.append([nb.name, "FAILED", "-", "-"])
            continue
        record = results.load(results_dir).get(nb.name, {})
        rows.append([nb.name, "ok", f"{seconds:.0f}", results.headline(record.get("metrics", {}))])
    summary = results.write_summary(results_dir)
    print("\n" + _table(rows, ["notebook", "status", "seconds", "headline numbers"]))
    written = notebooks.NOTEBOOK_DIR if args.in_place else args.output_dir.resolve()
    figures_from = [written, *report.default_notebook_dirs(results_dir)]
    print(f"\nsummary: {summary}\nreport:  {report.write_report(results_dir, figures_from)}")
    return 1 if failed else 0


def _summary(args: argparse.Namespace) -> int:
    print(results.summary_markdown(results.load(args.results_dir)), end="")
    results.write_summary(args.results_dir)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input, 1 if a notebook failed)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            print(f"report: {report.write_report(args.results_dir, args.notebooks_dir)}")
            return 0
        return _summary(args)
    except profiles.ParameterError as error:
        print(f"neuromod: error: {error}", file=sys.stderr)
        return 2
