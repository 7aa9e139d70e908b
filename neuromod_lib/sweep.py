"""Sweeps: one notebook over seeds × parameter values × a profile, one papermill run per point,
dispatched through Dask — from a laptop to a SLURM cluster.

``python -m neuromod_lib sweep NB [NB ...] --seeds 0-9 -p key=v1,v2`` (``all``: every notebook,
the whole reproduction in one command) expands the grid into points
(:func:`expand`), checks every one before anything runs (one bad point refuses the whole grid),
and runs each point as one task (:func:`run_point`): the executed notebook goes to its own file
and its record to the run layout of :mod:`neuromod_lib.results` (``runs/<nb>/<profile>/seed-<s>-<key>``).

Where the tasks run (:func:`make_client`):

- by default an in-process ``distributed.LocalCluster`` sized to the machine (one single-threaded
  worker process per run slot; on a machine with GPUs, one worker per GPU);
- ``--scheduler tcp://host:port``: an existing Dask cluster;
- ``--cluster slurm|pbs|sge|lsf``: a cluster started through dask-jobqueue (``--jobs`` jobs of
  ``--cores``, ``--memory``, ``--walltime``, ``--queue``, ``--account``, ``--gpus-per-job``);
  ``--dry-run`` prints the job script instead.

Robust by design: a point whose record already exists with the same parameters is skipped, so a
sweep resumes where it stopped; a failed run is retried (``--retries``) and then reported with its
error while the others go on; Dask reschedules the run of a worker that dies; every file is
written to a temporary name and renamed, so no half-written notebook or record is ever seen; and
a progress bar counts runs done, skipped, failed and pending. A GPU run pins its worker's GPU.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import notebooks, profiles, results
from .checks import ParameterError

__all__ = [
    "CLUSTERS",
    "Point",
    "Outcome",
    "expand",
    "job_script",
    "make_client",
    "parse_grid",
    "parse_seeds",
    "run_point",
    "run_sweep",
]

#: the batch systems dask-jobqueue starts clusters on
CLUSTERS = ("slurm", "pbs", "sge", "lsf")
#: the worker resource a run takes: the workers of the clusters made here have one each, so that a
#: worker runs one notebook at a time however many threads it has
RUN = "notebook_run"


@dataclass(frozen=True)
class Point:
    """One run of a sweep: a notebook, a profile, a seed and the parameter values that differ."""

    notebook: str
    profile: str
    seed: int
    overrides: tuple[tuple[str, str], ...] = ()

    @property
    def values(self) -> dict[str, str]:
        """The parameter values as ``-p`` gives them, the seed included."""
        return {**dict(self.overrides), "seed": str(self.seed)}

    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.values.items())
        return f"{self.notebook} [{self.profile}] {shown}"


@dataclass
class Outcome:
    """What became of one point: ``done``, ``skipped`` (its record existed) or ``failed`` (``error``)."""

    point: Point
    status: str
    record: str = ""
    notebook: str = ""
    error: str = ""
    attempts: int = 1


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,2,5"`` or ``"1-3,7"`` → the seeds, in order, without repeats."""
    seeds: list[int] = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match[2] is not None and int(match[2]) < int(match[1])):
            raise ParameterError(
                f"--seeds={text!r} is not allowed; allowed: seeds >= 0 as '0-9', '0,2,5' or '1-3,7'"
            )
        low, high = int(match[1]), int(match[2] if match[2] is not None else match[1])
        seeds += [s for s in range(low, high + 1) if s not in seeds]
    return seeds


def parse_grid(params: Sequence[str]) -> dict[str, list[str]]:
    """``["lr=0.01,0.02", "sizes=4,8;4,16"]`` → ``{"lr": ["0.01", "0.02"], "sizes": ["4,8", "4,16"]}``.

    Values are separated by ``,`` — or by ``;`` when any is itself a list (a list parameter's values
    hold commas). A key given twice is refused.
    """
    grid: dict[str, list[str]] = {}
    for item in params:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ParameterError(
                f"-p {item!r} is not allowed; allowed: KEY=VALUE[,VALUE...] (';' between lists)"
            )
        if key in grid:
            raise ParameterError(
                f"-p {key}= is given twice; allowed: each parameter once, with all its values"
            )
        # ';' separates list values (a trailing ';' sweeps a single list: "tasks=go,anti;")
        grid[key] = [v.strip() for v in text.split(";" if ";" in text else ",") if v.strip()]
    return grid


def expand(
    names: str | Sequence[str], profile: str, seeds: Sequence[int], grid: Mapping[str, Sequence[str]]
) -> list[Point]:
    """Every point of the grid — each notebook of ``names`` (names, number prefixes or ``all``) ×
    the values of each parameter × ``seeds`` — each checked as a run would be.

    Raises :class:`~neuromod_lib.checks.ParameterError` naming every invalid point and why before
    anything runs; ``seed`` belongs to ``seeds``, not to the grid.
    """
    profiles.check_profile(profile)
    chosen = notebooks.select([names] if isinstance(names, str) else list(names))
    if "seed" in grid:
        raise ParameterError("-p seed=... is not allowed in a sweep; allowed: --seeds")
    if not seeds:
        raise ParameterError("--seeds names no seed; allowed: seeds >= 0 as '0-9', '0,2,5' or '1-3,7'")
    keys = list(grid)
    points, problems, seen = [], [], set()
    for nb in chosen:
        for combo in itertools.product(*(grid[k] for k in keys)):
            for seed in seeds:
                point = Point(nb.name, profile, int(seed), tuple(zip(keys, combo, strict=True)))
                try:
                    where = (nb.name, int(seed), results.run_key(_config(point)[1]))
                except (ParameterError, ValueError) as error:
                    problems.append(f"{point.label()}: {error}")
                    where = None
                if where is None or where not in seen:  # "1" and "1.0" are one point
                    points.append(point)
                    seen.add(where)
    if problems:
        raise ParameterError(f"{len(problems)} of {len(points)} points refused:\n" + "\n".join(problems))
    return points


def _config(point: Point) -> tuple[dict[str, Any], profiles.Config]:
    """The point's parsed overrides and its resolved config (every check of a run)."""
    pairs = [f"{k}={v}" for k, v in point.values.items()]
    overrides = profiles.parse_overrides(point.notebook, pairs)
    return overrides, profiles.resolve(point.notebook, point.profile, **overrides)


#: set in the workers of the clusters :func:`make_client` starts: they pin a GPU each
PIN_GPU = "NEUROMOD_PIN_GPU"


def _worker_device(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Pin the worker's GPU (``cuda:<i>``, ``i`` its place on the machine) unless a device was asked.

    Only in workers that this module started (:data:`PIN_GPU` set; named ``0, 1, ...`` locally and
    ``<job>-<i>`` by dask-jobqueue): an existing cluster places its workers itself (dask-cuda, for
    one, gives each worker its own ``CUDA_VISIBLE_DEVICES``, so ``cuda`` is already its GPU)."""
    if "device" in overrides or os.environ.get(PIN_GPU) != "1":
        return {}
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        return {}
    try:
        from distributed import get_worker

        name = str(get_worker().name)
    except (ImportError, ValueError):
        return {}
    digits = re.findall(r"\d+", name)
    return {"device": f"cuda:{int(digits[-1]) % count}"} if digits else {}


def run_point(point: Point, results_dir: str, output_dir: str, timeout: int | None = None) -> Outcome:
    """Run one point with papermill (in a worker); skip it if its record exists with these parameters.

    The executed notebook goes to ``<output_dir>/<notebook>/<profile>/seed-<s>-<key>.ipynb`` and the
    record to the run layout under ``results_dir``; both are written to a temporary name and renamed.
    """
    overrides, cfg = _config(point)
    record = results.run_path(results_dir, cfg)
    if _recorded(record, cfg):
        return Outcome(point, "skipped", record=str(record))
    nb = notebooks.select([point.notebook])[0]
    output = results.sweep_notebook_path(output_dir, {**cfg, "key": results.run_key(cfg)})
    output.parent.mkdir(parents=True, exist_ok=True)
    notebooks.execute(
        nb, output, profile=point.profile, overrides={**overrides, **_worker_device(overrides)},
        results_dir=Path(results_dir), timeout=timeout,
        failed_as=output.relative_to(output_dir).with_suffix("").as_posix(),  # named as its notebook
    )  # fmt: skip
    if not record.is_file():
        raise RuntimeError(f"{point.label()}: the notebook ran but wrote no record at {record}")
    return Outcome(point, "done", record=str(record), notebook=str(output))


def _recorded(path: Path, cfg: Mapping[str, Any]) -> bool:
    """Whether ``path`` holds a finished record of exactly these parameters."""
    if not path.is_file():
        return False
    try:
        rec = results.read_record(path)
    except (ValueError, OSError):
        return False  # unreadable: run the point again (the new record replaces it atomically)
    return rec.get("key") == results.run_key(cfg)


# --------------------------------------------------------------------------- where it runs


@dataclass(frozen=True)
class ClusterSpec:
    """A dask-jobqueue cluster: the batch system and what each job asks for."""

    kind: str
    jobs: int = 1
    cores: int = 4
    memory: str = "16GB"
    walltime: str = "04:00:00"
    queue: str | None = None
    account: str | None = None
    gpus_per_job: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in CLUSTERS:
            raise ParameterError(f"--cluster={self.kind!r} is not allowed; allowed: {', '.join(CLUSTERS)}")
        for name in ("jobs", "cores"):
            if getattr(self, name) < 1:
                raise ParameterError(
                    f"--{name}={getattr(self, name)} is not allowed; allowed: an integer >= 1"
                )
        if self.gpus_per_job < 0:
            raise ParameterError(
                f"--gpus-per-job={self.gpus_per_job} is not allowed; allowed: an integer >= 0"
            )
        if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", self.memory):
            raise ParameterError(f"--memory={self.memory!r} is not allowed; allowed: e.g. 16GB or 64GiB")
        if not re.fullmatch(r"(\d+-)?\d{1,3}:\d{2}(:\d{2})?", self.walltime):
            raise ParameterError(
                f"--walltime={self.walltime!r} is not allowed; allowed: HH:MM:SS or D-HH:MM:SS"
            )


def _jobqueue_cluster(spec: ClusterSpec, **options: Any) -> Any:
    """The dask-jobqueue cluster object of ``spec`` (nothing is submitted until it is scaled);
    ``options`` go to its constructor."""
    import dask_jobqueue

    cls = {
        "slurm": dask_jobqueue.SLURMCluster,
        "pbs": dask_jobqueue.PBSCluster,
        "sge": dask_jobqueue.SGECluster,
        "lsf": dask_jobqueue.LSFCluster,
    }[spec.kind]
    gpus = spec.gpus_per_job
    directives = (
        {
            "slurm": [f"--gres=gpu:{gpus}"],
            "pbs": [],  # PBS Pro: GPUs go into the select statement (below)
            "sge": [f"-l gpu={gpus}"],
            "lsf": [f'-gpu "num={gpus}"'],
        }[spec.kind]
        if gpus
        else []
    )
    extra = {**spec.extra, **options}
    ours = {
        "worker_extra_args": ["--resources", f"{RUN}=1"],  # each worker runs one notebook at a time
        "job_script_prologue": [f"export {PIN_GPU}=1"],  # and pins its own GPU
        "job_extra_directives": directives,
    }
    kwargs: dict[str, Any] = {
        "cores": spec.cores,
        "memory": spec.memory,
        "walltime": _walltime(spec.kind, spec.walltime),
        "processes": max(gpus, 1),  # one worker per GPU (or one per job)
        **extra,
        # added to the site's own lines (its jobqueue config, or those given), never replacing them
        **{key: [*_site_lines(spec.kind, key, extra), *lines] for key, lines in ours.items()},
    }
    if spec.kind == "pbs" and gpus:
        kwargs["resource_spec"] = (
            f"select=1:ncpus={spec.cores}:ngpus={gpus}:mem={spec.memory.replace(' ', '')}"
        )
    if spec.queue:
        kwargs["queue"] = spec.queue
    if spec.account:
        kwargs["account" if spec.kind in ("slurm", "pbs") else "project"] = spec.account
    return cls(**kwargs)


def _site_lines(kind: str, key: str, given: dict[str, Any]) -> list[str]:
    """The lines a site keeps for ``key`` (e.g. ``module load cuda`` in its job-script prologue):
    those given, else its dask config's ``jobqueue.<kind>.<key>``, which dask-jobqueue would read
    only if the argument were left out."""
    if given.get(key) is not None:
        return list(given[key])
    import dask

    return list(dask.config.get(f"jobqueue.{kind}.{key.replace('_', '-')}", default=None) or [])


def _walltime(kind: str, text: str) -> str:
    """``[D-]HH:MM[:SS]`` as each batch system writes it: SLURM as given, PBS and SGE ``HH:MM:SS``
    (days folded into hours), LSF ``H:MM`` (``bsub -W``: hours and minutes, rounded up)."""
    days, _, clock = text.rpartition("-")
    parts = [int(v) for v in clock.split(":")] + [0]
    hours, minutes, seconds = parts[0] + 24 * int(days or 0), parts[1], parts[2] if len(parts) > 3 else 0
    if kind == "slurm":
        return text
    if kind == "lsf":
        minutes += seconds > 0
        return f"{hours + minutes // 60}:{minutes % 60:02d}"
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def job_script(spec: ClusterSpec) -> str:
    """The batch script one job of ``spec`` would run (``--dry-run``: nothing is submitted)."""
    cluster = _jobqueue_cluster(spec, scheduler_options={"dashboard_address": ":0"})  # any free port
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def make_client(
    *, scheduler: str | None = None, cluster: ClusterSpec | None = None, workers: int | None = None
) -> Any:
    """A ``distributed.Client``: to ``scheduler``, on a new jobqueue ``cluster``, or on a local cluster
    of ``workers`` single-threaded processes (default: one per GPU, else one per two cores)."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler)
    if cluster is not None:
        jobs = _jobqueue_cluster(cluster)
        jobs.scale(jobs=cluster.jobs)
        return Client(jobs)
    if workers is None:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        workers = gpus or max(1, (os.cpu_count() or 2) // 2)
    local = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, resources={RUN: 1},
        env={PIN_GPU: "1"},
    )  # fmt: skip
    return Client(local)


def run_sweep(
    points: Sequence[Point],
    client: Any,
    *,
    results_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    retries: int = 1,
    timeout: int | None = None,
    progress: bool = True,
    task: Any = None,
    one_at_a_time: bool | None = None,
) -> list[Outcome]:
    """Run every point on ``client``'s cluster; return one :class:`Outcome` per point, in order.

    A run that raises is retried ``retries`` times, then reported failed with its error; the others
    go on. Dask reschedules the run of a worker that dies (up to its ``allowed-failures``).
    ``one_at_a_time``: request the :data:`RUN` resource, which the workers of the clusters
    :func:`make_client` starts have one of, so that each runs one point at a time (True for those,
    even before a batch job has started; None: if the connected workers have it). ``task``: what
    runs a point (default :func:`run_point`; the tests inject faults).
    """
    task = task or run_point
    from distributed import as_completed
    from tqdm.auto import tqdm

    results_dir, output_dir = str(Path(results_dir).resolve()), str(Path(output_dir).resolve())
    if one_at_a_time is None:  # a cluster made elsewhere: use the resource if its workers have it
        workers = client.scheduler_info().get("workers", {}).values()
        one_at_a_time = any(RUN in w.get("resources", {}) for w in workers)
    one_each = {RUN: 1} if one_at_a_time else None
    futures = {
        client.submit(
            task, p, results_dir, output_dir, timeout, retries=retries, pure=False, resources=one_each
        ): i
        for i, p in enumerate(points)
    }
    outcomes: list[Outcome | None] = [None] * len(points)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    bar = tqdm(total=len(points), desc="runs", disable=not progress)
    for future in as_completed(futures):
        i = futures[future]
        try:
            outcome = future.result()
        except Exception as error:  # noqa: BLE001 - reported, the others go on
            outcome = Outcome(
                points[i], "failed", error=f"{type(error).__name__}: {error}", attempts=retries + 1
            )
        outcomes[i] = outcome
        counts[outcome.status] += 1
        bar.update(1)
        bar.set_postfix(**counts, pending=len(points) - sum(counts.values()))
    bar.close()
    return [o for o in outcomes if o is not None]
