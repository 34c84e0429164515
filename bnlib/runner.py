"""The files side of training: result JSONs, checkpoints, resume, the grid runner.

Each (run, seed) of a grid writes ``results/<grid folder>/<run name>-s<seed>.json``
(see :meth:`bnlib.config.Grid.results_dir`): configuration, protocol, data
provenance, library versions, CPU, timings, the learning curve ``[step, epoch,
train_loss, train_acc, test_acc]`` and any probe series. Files are written
atomically (a temporary file renamed into place, mode 0644). A per-epoch
checkpoint (weights, optimizer state, the curve so far and the running
training-loss window) lets an interrupted run resume at its last finished epoch
exactly; finished runs are skipped; a NaN or exploding loss marks a run
``diverged`` and the grid goes on. One runner per results folder (a lock).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from .config import (Grid, Protocol, RunConfig, check_data, get_grid, get_profile,
                     validate_config, validate_training)
from .probes import PROBE_SAMPLE
from .training import (Progress, RunnerOptions, configure_threads,
                       environment_record, new_record, prepare, train_epochs)

FINISHED = ("complete", "diverged")
RESULTS_ROOT = Path("results")
FILE_MODE = 0o644


# --------------------------------------------------------------------------- files
def result_path(results_dir: Path, config: RunConfig, seed: int) -> Path:
    return Path(results_dir) / f"{config.name}-s{seed}.json"


def checkpoint_path(results_dir: Path, config: RunConfig, seed: int) -> Path:
    return Path(results_dir) / "checkpoints" / f"{config.name}-s{seed}.npz"


@contextlib.contextmanager
def _atomic(path: Path, suffix: str):
    """A temporary file beside ``path``, renamed onto it (0644) when done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: Path, payload: dict) -> None:
    with _atomic(Path(path), ".tmp") as tmp:
        with open(tmp, "w") as handle:
            json.dump(payload, handle, indent=1)
            handle.write("\n")


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    with _atomic(Path(path), ".tmp") as tmp:
        Path(tmp).write_bytes(payload)


def save_npz_atomic(path: Path, arrays: dict) -> None:
    with _atomic(Path(path), ".npz") as tmp:
        np.savez(tmp, **arrays)


def load_result(path: Path) -> dict:
    try:
        with open(path) as handle:
            result = json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to rerun "
                         f"that run.") from err
    missing = {"name", "seed", "status", "protocol", "config", "curve"} - set(result)
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}: not a bnlib result; "
                         f"delete it to rerun that run.")
    return result


def load_results(results_dir: str | os.PathLike, *, complete_only: bool = True
                 ) -> list[dict]:
    """All result JSONs of a folder, sorted by (run id, seed)."""
    folder = Path(results_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder {folder}: run `python -m bnlib "
                                f"run --grid GRID` first.")
    results = [load_result(p) for p in sorted(folder.glob("*-s[0-9]*.json"))]
    if complete_only:
        results = [r for r in results if r["status"] in FINISHED]
    return sorted(results, key=lambda r: (-1 if r["run_id"] is None else r["run_id"],
                                          r["name"], r["seed"]))


def chapter_results_dir(grid_name: str, protocol: Protocol,
                        root: str | os.PathLike = "results") -> Path:
    """Where a chapter reads a grid's results: under the ``book`` profile each
    grid's own profile's folder (``results/figure1``, ``results/budget``, ...),
    under any other (``smoke``) ``results/<profile>/<grid>``."""
    grid = get_grid(grid_name)
    own = get_profile(grid.profile) if protocol.profile == "book" else protocol
    return grid.results_dir(own, root)


def repository_root() -> Path:
    """The repository a notebook runs in: Jupyter starts a notebook's kernel in
    the notebook's own folder, ``notebooks/``; the command line and the tests
    run from the repository root."""
    cwd = Path.cwd()
    return cwd.parent if cwd.name == "notebooks" else cwd


def chapter_folders(grid_names: Iterable[str], protocol: Protocol,
                    chapter: str) -> dict[str, Path]:
    """The folder each of a chapter's grids is read from. Under the ``smoke``
    profile: a fresh scratch folder per grid, where the notebook trains its tiny
    runs (they never mix with the committed ones); under any other profile: the
    grid's committed folder, :func:`chapter_results_dir` under the repository's
    ``results/``."""
    if protocol.profile == "smoke":
        scratch = Path(tempfile.mkdtemp(prefix=f"bnlib-{chapter}-"))
        return {name: scratch / name for name in grid_names}
    root = repository_root() / RESULTS_ROOT
    return {name: chapter_results_dir(name, protocol, root) for name in grid_names}


def folders_listing(protocol: Protocol, folders: dict[str, Path]) -> str:
    """What a chapter prints about its folders: the profile, then one line per
    grid with its folder relative to the repository (never an absolute path of
    this machine) or "a temporary folder"."""
    root = repository_root()
    width = max(map(len, folders), default=0)
    lines = [f"profile: {protocol.profile}"]
    for name, folder in folders.items():
        folder = Path(folder).absolute()
        shown = (folder.relative_to(root).as_posix() if folder.is_relative_to(root)
                 else "a temporary folder")
        lines.append(f"  grid {name:{width}s} -> {shown}")
    return "\n".join(lines)


def results_if_any(results_dir: str | os.PathLike) -> list[dict]:
    """:func:`load_results` of a folder, or an empty list while the folder
    does not exist (a grid not trained yet)."""
    return load_results(results_dir) if Path(results_dir).is_dir() else []


def protocol_summary(results: list[dict], width: int = 78) -> str:
    """What decides the numbers of these result files, read back from the files
    themselves: runs and seeds, data, training budget and evaluation, precision,
    hardware (with the CPU's vector extensions where the files record them),
    software and time. A field that differs between the files lists
    each value with the grids that have it. Time is the sum of the runs' wall
    times (runs trained side by side overlap on the clock), with the dates of
    the first start and the last finish, and a warning when the files come
    from more than one hardware setup."""
    import textwrap

    if not results:
        raise ValueError("protocol_summary needs at least one result file")

    def values(describe) -> str:
        grids_of: dict[str, list[str]] = {}
        for result in results:
            grids = grids_of.setdefault(describe(result), [])
            if result.get("grid") not in grids:
                grids.append(result.get("grid"))
        if len(grids_of) == 1:
            return next(iter(grids_of))
        return "; ".join(f"{value} ({', '.join(str(g) for g in grids)})"
                         for value, grids in grids_of.items())

    def data(result):
        record = result["data"]
        digest = (record.get("sha256") or "-")[:12]
        return (f"{record['kind']} copy of CIFAR-10 ({record.get('source') or '-'}, "
                f"sha256 {digest}...): {record.get('notes') or ''}").rstrip(": ")

    def training(result):
        proto = result["protocol"]
        subset = f" (first {proto['train_size']:,} images)" if proto["train_size"] else ""
        return (f"{proto['epochs']} epochs x {proto['steps_per_epoch']} steps of "
                f"{proto['batch_size']} images{subset}; test accuracy on "
                f"{proto['test_size'] or 10_000:,} test images every "
                f"{proto['eval_every']} steps")

    def hardware(result):
        env = result["environment"]
        gpus = f"{env['gpus']} GPU(s)" if env["gpus"] else "no GPU"
        simd = f" ({env['vector_extensions']})" if env.get("vector_extensions") else ""
        return (f"{env['cpu']}{simd}, {env['cpu_count']} cores, {gpus}, "
                f"{env['parallel_workers']} worker(s) x {env['intra_op_threads']} "
                f"thread(s)")

    def software(result):
        env = result["environment"]
        return (f"Python {env['python']}, TensorFlow {env['tensorflow']}, "
                f"Keras {env['keras']}, NumPy {env['numpy']}")

    configurations = {(r.get("grid"), r["name"]) for r in results}
    seeds = sorted({r["seed"] for r in results})
    hours = sum(r["timing"]["wall_seconds"] for r in results) / 3600
    days = sorted(day for r in results for day in (r.get("started"), r.get("finished"))
                  if day)
    span = (f"; runs from {days[0][:10]} to {days[-1][:10]}"
            if days and days[0][:10] != days[-1][:10] else
            f"; runs on {days[0][:10]}" if days else "")
    lines = [
        ("runs", f"{len(results)} result files: {len(configurations)} "
                 f"configurations, seeds {seeds}"),
        ("data", values(data)),
        ("training", values(training)),
        ("precision", values(lambda r: r["config"]["precision"])),
        ("hardware", values(hardware)),
        ("software", values(software)),
        ("time", f"{hours:.1f} hours of training (each run's wall time, summed){span}"
                 + ("; wall times compare only within one hardware setup"
                    if len({hardware(r) for r in results}) > 1 else "")),
    ]
    return "\n".join(textwrap.fill(f"{label + ':':11}{text}", width,
                                   subsequent_indent=" " * 11)
                     for label, text in lines)


def same_data(first: dict, second: dict) -> bool:
    """Two provenance records name the same data (wherever the file lies)."""
    keys = ("kind", "sha256", "num_train", "num_test")
    return all(first.get(key) == second.get(key) for key in keys)


def previous_result(path: Path, config: RunConfig, protocol: Protocol) -> dict | None:
    """The result already at ``path`` (finished or not), or None; refuses one
    that was made with another protocol or configuration, so curves are never
    mixed."""
    if not path.exists():
        return None
    result = load_result(path)
    if not _same_fields(result["protocol"], protocol.curve_fields(), type(protocol)):
        raise ValueError(
            f"{path} was trained with another protocol than the one asked for "
            f"(profile or flags differ). Use another --results-dir, or delete the "
            f"file to retrain.")
    if not _same_fields(result["config"], config.to_dict(), type(config)):
        changed = sorted(k for k, v in config.to_dict().items()
                         if result["config"].get(k) != v)
        raise ValueError(
            f"{path} was trained with another run configuration ({', '.join(changed)} "
            f"differ). Use another --results-dir, or delete the file to retrain.")
    if (config.probes and result["status"] not in FINISHED
            and result.get("probe_sample") != PROBE_SAMPLE):
        raise ValueError(
            f"{path} is an unfinished run whose probes measured other images "
            f"({result.get('probe_sample') or 'the first images of the stored order'}) "
            f"than today's ({PROBE_SAMPLE}); resuming would mix two samples in one "
            f"series. Delete the file and its checkpoint to retrain.")
    return result


def _same_fields(recorded: dict, wanted: dict, kind) -> bool:
    """``recorded`` (from a file) describes ``wanted``; a field the file lacks
    counts as its default, so adding a field (with a default that keeps the old
    behavior) does not orphan the results made before it existed."""
    defaults = {f.name: f.default for f in dataclasses.fields(kind)
                if f.default is not dataclasses.MISSING}
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
    return {**defaults, **recorded} == {**defaults, **wanted}


# --------------------------------------------------------------------------- one run
def run_one(config: RunConfig, seed: int, protocol: Protocol, data, *,
            results_dir: str | os.PathLike, grid: str | None = None,
            run_id: int | None = None, options: RunnerOptions = RunnerOptions(),
            progress: Progress | None = None) -> dict:
    """Train one (run, seed) to the end of the protocol, resuming if possible.

    Returns the result dict (also written to ``result_path``). ``progress`` is
    called as ``progress(step, total_steps, latest_test_acc)``.
    """
    validate_config(config, protocol)
    check_data(protocol, data)  # the protocol's sizes against this data
    folder = Path(results_dir)
    out = result_path(folder, config, seed)
    ckpt = checkpoint_path(folder, config, seed)
    previous = previous_result(out, config, protocol)
    if previous is not None and previous["status"] in FINISHED:
        return previous
    if previous is not None and not same_data(previous["data"],
                                              data.provenance.to_dict()):
        raise ValueError(
            f"{out} was started on other data ({previous['data']['kind']}, sha256 "
            f"{previous['data']['sha256']}) than the data given now "
            f"({data.provenance.kind}, sha256 {data.provenance.sha256}). Resume it "
            f"with the same --data, use another --results-dir, or delete the file.")

    trainer, statistics = prepare(config, seed, protocol, data, options)
    result = new_record(config, seed, protocol, data, grid=grid, run_id=run_id,
                        runner=options.record())
    result["environment"] = environment_record(options.threads, options.workers)
    result["num_params"] = trainer.model.count_params()
    if statistics is not None:
        result["input_statistics"] = statistics
    if trainer.probes:
        result["probe_columns"] = {name: probe.columns
                                   for name, probe in trainer.probes.items()}
        result["probes"] = {name: [] for name in trainer.probes}
        result["probe_sample"] = PROBE_SAMPLE
    start_epoch = 0
    if previous is not None and ckpt.exists():
        with np.load(ckpt) as arrays:
            trainer.restore(arrays)
            # the checkpoint carries the record of the epoch it was taken at, so
            # a crash between writing it and the JSON cannot replay an epoch
            saved = json.loads(str(arrays["record"]))
            trainer.restore_loop_state(json.loads(str(arrays["loop"])))
        result.update({k: saved[k] for k in ("curve", "epochs_done", "timing",
                                              "started")})
        if "probes" in saved:
            result["probes"] = saved["probes"]
        result["resumed_at_epoch"] = saved["epochs_done"]
        start_epoch = saved["epochs_done"]

    steps_per_epoch = protocol.steps_per_epoch
    if progress:
        latest = result["curve"][-1][4] if result["curve"] else None
        progress(start_epoch * steps_per_epoch, protocol.total_steps, latest)
    def checkpoint(epoch):
        # the checkpoint (with its own copy of the record) first, then the JSON
        save_npz_atomic(ckpt, {**trainer.state(),
                               "record": np.array(json.dumps(result)),
                               "loop": np.array(json.dumps(trainer.loop_state()))})
        write_json_atomic(out, result)

    train_epochs(trainer, result, seed, start_epoch=start_epoch, progress=progress,
                 after_epoch=checkpoint)
    write_json_atomic(out, result)
    ckpt.unlink(missing_ok=True)
    return result


# --------------------------------------------------------------------------- grid
def plan(grid: Grid, protocol: Protocol, run_ids: Iterable[int] | None = None,
         seeds: Iterable[int] | None = None) -> list[tuple[int, int]]:
    """(run id, seed) pairs, seed-major: every configuration gets its first
    seed before any gets a second."""
    run_ids = (list(range(len(grid.runs))) if run_ids is None
               else [int(r) for r in run_ids])
    for run_id in run_ids:
        validate_config(grid.run(run_id), protocol)
    seeds = list(range(protocol.seeds)) if seeds is None else list(seeds)
    return [(run_id, seed) for seed in seeds for run_id in run_ids]


def pending(grid: Grid, tasks, protocol: Protocol, results_dir: Path
            ) -> list[tuple[int, int]]:
    """The (run id, seed) tasks that have no finished result yet."""
    todo = []
    for run_id, seed in tasks:
        config = grid.runs[run_id]
        result = previous_result(result_path(results_dir, config, seed), config,
                                 protocol)
        if result is None or result["status"] not in FINISHED:
            todo.append((run_id, seed))
    return todo


def run_grid(grid: Grid | str, protocol: Protocol, *, source=None, run_ids=None,
             seeds=None, results_dir=None, data=None,
             options: RunnerOptions = RunnerOptions()) -> list[dict]:
    """Train every pending (run, seed) of ``grid``; returns all finished results.

    With ``options.workers > 1`` each worker is a process with
    ``options.threads`` intra-op threads (default: cores / workers), pulling
    tasks from one queue. ``results_dir`` defaults to the grid's folder.
    """
    from tqdm import tqdm  # plain text bars: no widgets in notebooks or the book

    grid = get_grid(grid) if isinstance(grid, str) else grid
    folder = Path(results_dir) if results_dir else grid.results_dir(protocol,
                                                                      RESULTS_ROOT)
    all_tasks = plan(grid, protocol, run_ids, seeds)  # validates before any file
    from .data import load_cifar10

    data = data if data is not None else load_cifar10(source)  # workers reload
    validate_training(protocol, data, [grid.runs[r] for r in dict.fromkeys(
        r for r, _ in all_tasks)], workers=options.workers, threads=options.threads)
    with _exclusive(folder):
        tasks = pending(grid, all_tasks, protocol, folder)
        threads = options.threads or max(1, (os.cpu_count() or 1) // options.workers)
        options = dataclasses.replace(options, threads=threads)
        if options.workers <= 1 or len(tasks) <= 1:
            _run_serial(grid, tasks, len(all_tasks) - len(tasks), len(all_tasks),
                        protocol, source, data, folder, options, tqdm)
        else:
            grid_bar = tqdm(total=len(all_tasks), initial=len(all_tasks) - len(tasks),
                            desc=f"grid {grid.name} [{protocol.profile}]", unit="run",
                            position=0)
            try:
                _run_parallel(grid, tasks, protocol, source, folder, options,
                              grid_bar)
            finally:
                grid_bar.close()
    paths = [result_path(folder, grid.runs[r], s) for r, s in all_tasks]
    return [load_result(path) for path in paths if path.exists()]


@contextlib.contextmanager
def _exclusive(folder: Path):
    """One runner per results folder: a second one stops with a clear error."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / ".lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise RuntimeError(
                f"{folder} is being trained into by {owner}; wait for it to finish "
                f"(or stop it), or pass another --results-dir.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_serial(grid, tasks, done_before, total_tasks, protocol, source, data,
                folder, options, tqdm):
    """One progress bar per run, one after the other (reads well in notebooks)."""
    from .data import load_cifar10

    if not tasks:
        return
    configure_threads(options.threads)
    data = data if data is not None else load_cifar10(source)
    for number, (run_id, seed) in enumerate(tasks, start=done_before + 1):
        config = grid.runs[run_id]
        bar = tqdm(total=protocol.total_steps, unit="step", mininterval=1.0,
                   desc=f"[{number}/{total_tasks}] {config.name} seed {seed}")

        def report(step, total, acc, bar=bar):
            bar.n = step
            if acc is not None:
                bar.set_postfix(test_acc=f"{acc:.3f}", refresh=False)
            bar.refresh()

        try:
            result = run_one(config, seed, protocol, data, results_dir=folder,
                             grid=grid.name, run_id=run_id, options=options,
                             progress=report)
        finally:
            bar.close()
        if result["status"] == "diverged":
            tqdm.write(f"{config.name} seed {seed} diverged at step "
                       f"{result['diverged_at_step']}; going on with the others")


def _grid_worker(slot, grid_name, source, protocol, folder, options, tasks,
                 messages):
    """One worker process: its own TF thread pool, tasks from a shared queue."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    configure_threads(options.threads)
    from .data import load_cifar10

    grid = get_grid(grid_name)
    data = load_cifar10(source)
    while True:
        task = tasks.get()
        if task is None:
            return
        run_id, seed = task
        config = grid.runs[run_id]

        def report(step, total, acc, name=config.name, seed=seed):
            messages.put(("progress", slot, name, seed, step, total, acc))

        try:
            result = run_one(config, seed, protocol, data, results_dir=folder,
                             grid=grid.name, run_id=run_id, options=options,
                             progress=report)
            messages.put(("done", slot, config.name, seed, result["status"],
                          result.get("final_test_acc")))
        except BaseException as err:  # report, then let the parent decide
            messages.put(("error", slot, config.name, seed,
                          f"{type(err).__name__}: {err}", None))
            return


def _done_text(name, seed, status, acc):
    return (f"{name} seed {seed}: {status}"
            + (f", test acc {acc:.3f}" if acc is not None else ""))


def _run_parallel(grid, tasks, protocol, source, folder, options, grid_bar):
    import multiprocessing as mp

    from tqdm import tqdm

    ctx = mp.get_context("spawn")
    task_queue, messages = ctx.Queue(), ctx.Queue()
    for task in tasks:
        task_queue.put(task)
    workers = min(options.workers, len(tasks))
    for _ in range(workers):
        task_queue.put(None)
    procs = [ctx.Process(target=_grid_worker, daemon=True,
                         args=(slot, grid.name, source, protocol, folder, options,
                               task_queue, messages))
             for slot in range(workers)]
    bars = [tqdm(total=protocol.total_steps, desc=f"worker {slot}", unit="step",
                 position=slot + 1, leave=False) for slot in range(workers)]
    for proc in procs:
        proc.start()
    remaining = len(tasks)
    errors = []
    current = [None] * workers
    try:
        while remaining and (any(p.is_alive() for p in procs) or not messages.empty()):
            try:
                kind, slot, name, seed, *rest = messages.get(timeout=1.0)
            except queue.Empty:
                continue
            bar = bars[slot]
            if kind == "progress":
                step, total, acc = rest
                if current[slot] != (name, seed):  # this worker began a new run
                    current[slot] = (name, seed)
                    bar.reset(total=total)
                    bar.set_postfix_str("", refresh=False)
                    bar.set_description(f"{name} seed {seed}", refresh=False)
                bar.n = step
                if acc is not None:
                    bar.set_postfix(test_acc=f"{acc:.3f}", refresh=False)
                bar.refresh()
            elif kind == "done":
                remaining -= 1
                grid_bar.update(1)
                grid_bar.set_postfix_str(_done_text(name, seed, *rest))
            else:
                remaining -= 1
                errors.append(f"{name} seed {seed}: {rest[0]}")
        for proc in procs:
            proc.join(timeout=10)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for bar in bars:
            bar.close()
    if errors:
        raise RuntimeError("some runs failed:\n  " + "\n  ".join(errors))
    if remaining:
        raise RuntimeError(f"{remaining} run(s) did not finish: a worker died "
                           f"(out of memory?). Rerun the same command to resume.")
