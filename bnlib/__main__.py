"""Command line: ``python -m bnlib run|list|plot|data|bench``."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


CONFIG_FLAGS = ("learning_rate", "bn_position", "precision")


class UsageError(Exception):
    """A command line argparse cannot parse: printed as one ``error:`` line."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a parse error is one ``error:`` line and exit code 2
    (:func:`main` prints it), not the usage block and a ``SystemExit``."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def whole_number(text: str) -> int:
    """argparse type: a whole number (its range is bnlib.config's to check)."""
    if not re.fullmatch(r"\s*[+-]?\d+\s*", text, re.ASCII):
        raise argparse.ArgumentTypeError(f"expected a whole number such as 3, "
                                         f"got {text!r}")
    return int(text)


def real_number(text: str) -> float:
    """argparse type: a number such as 0.001 or 1e-3 (range: bnlib.config)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.001 or "
                                         f"1e-3, got {text!r}") from None


def _add_protocol_flags(parser: argparse.ArgumentParser) -> None:
    from .config import BN_POSITIONS, PRECISIONS

    parser.add_argument("--profile", default=None,
                        help="smoke | book | long | article (default: the grid's, "
                             "$BNLIB_PROFILE or book)")
    parser.add_argument("--epochs", type=whole_number, metavar="N",
                        help="override the profile's epochs")
    parser.add_argument("--eval-every", type=whole_number, metavar="STEPS",
                        help="steps between test evaluations")
    parser.add_argument("--steps-per-epoch", type=whole_number, metavar="N")
    parser.add_argument("--batch-size", type=whole_number, metavar="N")
    parser.add_argument("--train-size", type=whole_number, metavar="N",
                        help="use the first N training images (balanced: a "
                             "multiple of 10)")
    parser.add_argument("--test-size", type=whole_number, metavar="N",
                        help="use the first N test images (a multiple of 10)")
    parser.add_argument("--seeds", type=whole_number, metavar="N",
                        help="number of seeds: seeds 0..N-1")
    parser.add_argument("--learning-rate", type=real_number, metavar="LR",
                        help="override every run's learning rate, in (0, 10]")
    parser.add_argument("--bn-position", choices=BN_POSITIONS,
                        help="override every run's BN position")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="override every run's precision (mixed_bfloat16 needs "
                             "a CPU with avx512_bf16 or amx_bf16)")


def _protocol(args, grid=None):
    from .config import get_profile

    name = args.profile
    if name is None:
        name = os.environ.get("BNLIB_PROFILE") or (
            grid.profile if grid is not None else None)
    return get_profile(name, epochs=args.epochs, eval_every=args.eval_every,
                       steps_per_epoch=args.steps_per_epoch,
                       batch_size=args.batch_size, train_size=args.train_size,
                       test_size=args.test_size, seeds=args.seeds)


def _grid(args):
    """The named grid, with the run-configuration flags applied to every run."""
    import dataclasses

    from .config import get_grid

    grid = get_grid(args.grid)
    changes = {field: getattr(args, field) for field in CONFIG_FLAGS
               if getattr(args, field, None) is not None}
    if not changes:
        return grid
    runs = tuple(run.replace(**changes) for run in grid.runs)  # validated
    if not args.results_dir:
        flags = ", ".join("--" + f.replace("_", "-") for f in changes)
        raise ValueError(f"{flags} change the runs of grid {grid.name}: pass "
                         f"--results-dir too, so they do not mix with its results")
    return dataclasses.replace(grid, runs=runs)


def _check_results_dir(path) -> None:
    """A --results-dir that can become a folder of results (nothing created)."""
    from pathlib import Path

    if path is None:
        return
    if not path.strip():
        raise ValueError("--results-dir must name a folder, got an empty path")
    try:
        folder = Path(path).expanduser().absolute()
        existing = next(p for p in (folder, *folder.parents) if p.exists())
    except (ValueError, OSError, RuntimeError) as err:
        raise ValueError(f"--results-dir {path!r} is not a usable path ({err})"
                         ) from None
    if not existing.is_dir():
        raise ValueError(f"--results-dir {path!r}: {existing} is a file, not a "
                         f"folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--results-dir {path!r}: {existing} is not writable")


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # `kill PID` stops a run as cleanly as Ctrl-C


def cmd_run(args) -> int:
    import signal

    from .config import check_data, check_machine, parse_run_ids
    from .data import load_cifar10
    from .runner import RESULTS_ROOT, plan, run_grid
    from .training import RunnerOptions

    # background jobs may start with SIGINT ignored; SIGTERM always works
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    # every flag is checked before data is loaded or any file is touched
    _check_results_dir(args.results_dir)
    grid = _grid(args)
    protocol = _protocol(args, grid)
    run_ids = parse_run_ids(grid, args.runs)
    tasks = plan(grid, protocol, run_ids)  # every configuration under the protocol
    configs = [grid.runs[run_id] for run_id in dict.fromkeys(r for r, _ in tasks)]
    check_machine(protocol, configs, workers=args.workers, threads=args.threads)
    options = RunnerOptions(bn_kernel=args.bn_kernel, adam_kernel=args.adam_kernel,
                            threads=args.threads, workers=args.workers)
    data = load_cifar10(args.data)  # checked (and cached) once, here
    check_data(protocol, data)  # sizes against what this data holds
    print(data.provenance.describe(), flush=True)
    results = run_grid(grid, protocol, source=args.data, run_ids=run_ids,
                       results_dir=args.results_dir, options=options,
                       data=data if args.workers <= 1 else None)  # workers reload
    diverged = [r for r in results if r["status"] == "diverged"]
    folder = args.results_dir or grid.results_dir(protocol, RESULTS_ROOT)
    print(f"{len(results)} result(s) in {folder}"
          + (f"; {len(diverged)} diverged" if diverged else ""))
    return 0


def cmd_list(args) -> int:
    from .config import GRIDS, PROFILES, get_grid
    from .runner import load_results

    grids = [get_grid(args.grid)] if args.grid else list(GRIDS.values())
    for grid in grids:
        print(f"grid {grid.name} (chapter {grid.chapter}, profile {grid.profile}, "
              f"results/{grid.folder or grid.name}/): {grid.title}")
        if args.grid:
            for run_id, run in enumerate(grid.runs):
                print(f"  {run_id:2d}  {run.name:22s} {run.label}")
    print("\nprofiles: " + "; ".join(
        f"{p.profile} ({p.epochs} epochs x {p.steps_per_epoch} steps, eval every "
        f"{p.eval_every}, {p.seeds} seed(s))" for p in PROFILES.values()))
    if args.results_dir:
        for result in load_results(args.results_dir, complete_only=False):
            acc = result["curve"][-1][4] if result["curve"] else float("nan")
            print(f"{result['name']:22s} seed {result['seed']}: "
                  f"{result['status']:9s} epochs {result['epochs_done']:3d}  "
                  f"test acc {acc:.4f}")
    return 0


def cmd_plot(args) -> int:
    from .plots import write_book_assets
    from .runner import load_results

    results = load_results(args.results_dir)
    if not results:
        raise SystemExit(f"error: no finished results in {args.results_dir}")
    for path in write_book_assets(results, args.out):
        print(path)
    print(write_controls_headline(Path(args.results_dir).parent, args.out))
    return 0


def write_controls_headline(results_root, out_dir) -> Path:
    """book/figures/controls.md: chapter 05's control in one paragraph, from
    the control grids' result files under ``results_root`` (the book profile's
    folders), written atomically."""
    from .config import get_profile
    from .controls import headline_markdown, load_control_results, results_folders

    folders = results_folders(get_profile("book"), results_root)
    path = Path(out_dir) / "controls.md"
    partial = path.with_name(".controls.partial.md")
    partial.write_text(headline_markdown(load_control_results(folders)) + "\n")
    os.replace(partial, path)
    return path


def cmd_data(args) -> int:
    from .data import load_cifar10

    data = load_cifar10(args.data)
    print(data.provenance.describe())
    print(f"sha256: {data.provenance.sha256}")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        array = getattr(data, name)
        print(f"{name}: {array.dtype} {array.shape}")
    print("train channel means:", data.x_train.mean(axis=(0, 1, 2)).round(2).tolist())
    return 0


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    from .config import GRIDS
    from .training import ADAM_KERNELS, BN_KERNELS  # NumPy only: a quick import

    parser = ArgumentParser(prog="python -m bnlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train a grid (resumes, skips finished runs)")
    run.add_argument("--grid", default="article", choices=GRIDS,
                     help="which grid (default: article, the 12 runs of chapter 04)")
    _add_protocol_flags(run)
    run.add_argument("--runs", help="run ids or names, e.g. 0,3,9-11 (default: all)")
    run.add_argument("--data", help="CIFAR-10 source: path, keras or synthetic "
                                    "(default: $BNLIB_DATA, else keras download)")
    run.add_argument("--results-dir", help="default: the grid's folder, results/<grid>"
                                           " (results/book for the article grid)")
    run.add_argument("--workers", type=whole_number, default=1, metavar="N",
                     help="parallel worker processes, 1 to the CPU cores (2 on a "
                          "2-core CPU is fastest)")
    run.add_argument("--threads", type=whole_number, metavar="N",
                     help="TF threads per worker, 1 to the CPU cores (default: "
                          "cores / workers)")
    run.add_argument("--bn-kernel", choices=BN_KERNELS,
                     default="fused", help="BN implementation (same function)")
    run.add_argument("--adam-kernel", choices=ADAM_KERNELS, default="keras",
                     help="Adam implementation (same update; fused is ~7%% faster, "
                          "keras is what results/book used)")
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="the grids (one grid's runs with --grid), the "
                                      "profiles, and results if given")
    lst.add_argument("--grid", choices=GRIDS)
    lst.add_argument("--results-dir")
    lst.set_defaults(func=cmd_list)

    plot = sub.add_parser("plot", help="the article's figures from result JSONs")
    plot.add_argument("--results-dir", default="results/book")
    plot.add_argument("--out", default="book/figures")
    plot.set_defaults(func=cmd_plot)

    data = sub.add_parser("data", help="load (and cache) CIFAR-10, print provenance")
    data.add_argument("--data", help="path, keras or synthetic")
    data.set_defaults(func=cmd_data)

    bench = sub.add_parser("bench", help="images/s: TF1 loop vs Keras fit vs bnlib")
    bench.add_argument("--data", help="CIFAR-10 source (default: $BNLIB_DATA)")
    bench.add_argument("--repeats", type=whole_number, default=7,
                       help="alternating repeats per contender (at least 7 for the README)")
    bench.add_argument("--steps", type=whole_number, default=20,
                       help="timed steps per repeat")
    bench.add_argument("--normalizations", action="store_true",
                       help="time chapter 08's normalizations side by side instead")
    bench.add_argument("--out", help="default: results/bench/bench.json "
                                     "(results/bench/normalizations.json with "
                                     "--normalizations)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv=None) -> int:
    """Run one command; a refused input prints one ``error:`` line on stderr
    and returns 2, before any file is written."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SystemExit as stop:  # --help
        return stop.code if isinstance(stop.code, int) else 0
    from .data import DataError

    try:
        return args.func(args)
    except (DataError, ValueError, OSError, RuntimeError,
            NotImplementedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished epochs are saved; rerun the same command to "
              "resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
