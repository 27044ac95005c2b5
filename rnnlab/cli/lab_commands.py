"""Commands over registries, runs and sweeps: list, show, plot, gradflow, sweep, runs, compare, config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from rnnlab.cli import completion as complete
from rnnlab.cli.frame import _console, app, check_run_options, fail, foreign_option, user_errors
from rnnlab.errors import ConfigError

if TYPE_CHECKING:
    pass


@app.command("list")
@user_errors
def list_(
    name: Optional[str] = typer.Argument(None, help="one entry: its options, types, defaults",
                                         autocompletion=complete.registry_names),
    plugin: List[str] = typer.Option([], "--plugin", "-p", help="import a plugin first (module "
                                     "or .py file; repeatable)"),
) -> None:
    """List tasks, models, optimizers and schedulers (with plugins'), or one entry's options."""
    from rich.console import Console
    from rich.table import Table

    from rnnlab.cli.catalog import describe, entries, param_group_docs
    from rnnlab.config.plugins import load_plugins

    load_plugins(plugin, "--plugin")
    console = Console(highlight=False)
    if name is not None:
        kind, text, origin, rows = describe(name)
        console.print(f"[bold]{name}[/bold] ({kind}, from {origin}): {text}")
        table = Table(show_header=True, header_style="bold")
        for column in ("option", "type", "default", "description"):
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table if rows else "no options")
        groups = param_group_docs(name)
        if groups:
            table = Table(title="parameter groups (train.optimizer)", title_justify="left", show_header=True,
                          header_style="bold")
            table.add_column("group")
            table.add_column("holds, trained with")
            for row in groups:
                table.add_row(*row)
            console.print(table)
        return
    listed = list(entries())
    for kind in ("task", "model", "optimizer", "scheduler"):
        table = Table(title=f"{kind}s", title_justify="left", show_header=False)
        table.add_column("name", style="bold")
        table.add_column("description")
        table.add_column("from")
        for k, entry, text, origin in listed:
            if k == kind:
                table.add_row(entry, text, origin)
        console.print(table)


@app.command()
@user_errors
def show(run: Path = typer.Argument(..., help="a run directory, e.g. runs/<id>",
                                    autocompletion=complete.run_dirs)) -> None:
    """Print a run's summary, config, last epoch's metrics and its plots."""
    from rnnlab.analysis.report import show_lines

    typer.echo("\n".join(show_lines(run)))


@app.command()
@user_errors
def plot(
    run: Path = typer.Argument(..., help="a run directory, e.g. runs/<id>", autocompletion=complete.run_dirs),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto",
                              autocompletion=complete.devices),
    allow_foreign: bool = foreign_option(),
) -> None:
    """Redraw every plot of a run from its own files (metrics and best checkpoint)."""
    from rnnlab.analysis.report import replot

    check_run_options("best", device)
    for path in replot(run, device, allow_foreign):
        typer.echo(str(path))


@app.command()
@user_errors
def gradflow(
    sources: List[Path] = typer.Argument(..., help="configs and/or run directories, overlaid",
                                         autocompletion=complete.sources),
    steps: int = typer.Option(0, "--steps", min=0,
                              help="configs: also measure after K training steps (runs: best checkpoint)"),
    set_: List[str] = typer.Option([], "--set", "-s", help="override KEY=VALUE for every config"),
    out: Optional[Path] = typer.Option(
        None, "--out", help="PNG to write, CSV beside it (default: RUN/plots/gradflow.png for one "
        "run, else ./gradflow.png)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="batch measured (default: train.batch_size)"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto",
                              autocompletion=complete.devices),
    force: bool = typer.Option(False, "--force", help="replace --out (and its CSV) if they exist"),
) -> None:
    """Gradient norm ||dL/dh_t|| at every time step and layer (log scale), at initialisation and
    trained; several configs or runs are overlaid (e.g. RNN vs LSTM on 784-pixel MNIST)."""
    from rnnlab.analysis.gradflow import gradflow as measure
    from rnnlab.analysis.gradflow import write_csv
    from rnnlab.common.outputs import check_outputs, with_companion
    from rnnlab.common.plots import gradflow_plot

    defaulted = out is None
    if out is None:
        one_run = len(sources) == 1 and sources[0].is_dir()
        out = sources[0] / "plots" / "gradflow.png" if one_run else Path("gradflow.png")
    if out.suffix.lower() != ".png":
        fail(f"--out: must name a .png file, got {str(out)!r}")
    own = out.parent if defaulted and len(sources) == 1 and sources[0].is_dir() else None  # RUN/plots
    check_outputs(with_companion(out, ".csv"), "--out", sources, force, own)
    curves = measure(sources, set_, steps, device, batch_size)
    for c in curves:
        first, last = c.norms[0], c.norms[-1]
        typer.echo(f"{c.label} {c.stage} {c.layer}: {len(c.norms)} steps, |dL/dh| first "
                   f"{first:.3g}, last {last:.3g}, first/last {first / last if last else float('nan'):.3g}")
    typer.echo(str(gradflow_plot(curves, out)))
    typer.echo(str(write_csv(curves, out.with_suffix(".csv"))))


@app.command()
@user_errors
def sweep(
    sweep_file: Optional[Path] = typer.Argument(
        None, metavar="[SWEEP]",
        help="sweep file, e.g. configs/sweep_sine_families.yaml (optional with --resume)",
        autocompletion=complete.config_files),
    workers: int = typer.Option(1, "--workers", "-w", help="trials run at a time"),
    runs_dir: Optional[Path] = typer.Option(
        None, "--runs-dir", help="where the sweep directory goes [default: runs]"),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="a sweep directory: run its trials not completed",
        autocompletion=complete.runs_and_sweeps),
    backend: str = typer.Option("local", "--backend", help="local | ray | slurm | submitit-local",
                                autocompletion=complete.backends),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Ray cluster address (default: a local Ray)"),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="train.threads of every trial [default: the trial config's, else "
        "the cores shared among the workers]"),
    slurm: Optional[list[str]] = typer.Option(
        None, "--slurm", metavar="KEY=VALUE",
        help="a Slurm resource per trial over the sweep file's slurm: section (partition, time, cpus, "
        "mem, gpus); repeatable"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="list the trials it would run (names, overrides); train and write nothing"),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="no per-trial lines; only the table and the best run"),
) -> None:
    """Run a grid/random sweep as separate runs, N at a time; rank them; print the best run last."""
    from rnnlab.sweeps import forking

    if backend == "local" and not dry_run:  # the trials' launcher imports torch while this process does
        forking.start_early()
    try:
        _sweep(sweep_file, workers, runs_dir, resume, backend, ray_address, threads, slurm, dry_run, quiet)
    finally:
        forking.drop_early()  # not taken (the sweep failed before it had trials to run)


def _sweep(sweep_file: Optional[Path], workers: int, runs_dir: Optional[Path], resume: Optional[Path],
           backend: str, ray_address: Optional[str], threads: Optional[int], slurm: Optional[list[str]],
           dry_run: bool, quiet: bool) -> None:
    from rnnlab.sweeps.runner import Options, run_sweep

    if sweep_file is None and resume is None:
        fail("give a sweep file, or --resume DIR to continue a sweep")
    if resume is not None and runs_dir is not None:
        fail("--runs-dir: not used with --resume (the sweep directory is given)")
    if ray_address is not None and backend != "ray":
        fail("--ray-address: needs --backend ray")
    if slurm and backend not in ("slurm", "submitit-local"):
        fail("--slurm: needs --backend slurm (or submitit-local)")
    resources = {}
    for item in slurm or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--slurm: expected KEY=VALUE, e.g. partition=gpu, got {item!r}")
        resources[key.strip()] = value.strip()
    options = Options(workers, backend, ray_address, threads, resources or None)
    if dry_run:
        from rnnlab.sweeps.dryrun import dry_run as plan

        for line in plan(sweep_file, resume, options):
            typer.echo(line)
        return
    say = (lambda line: None) if quiet else (lambda line: print(line, flush=True))  # flushed: logs tail it
    outcome = run_sweep(sweep_file, runs_dir or Path("runs"), resume, options, say)
    _console().print(outcome.table)
    typer.echo(f"summary: {outcome.sweep_dir / 'summary.csv'}")
    if outcome.status == "interrupted":
        typer.echo(f"interrupted; continue with: rnnlab sweep --resume {outcome.sweep_dir}", err=True)
    elif outcome.status != "completed":
        typer.echo(f"some trials did not complete (see the table); rerun them with: "
                   f"rnnlab sweep --resume {outcome.sweep_dir}", err=True)
    typer.echo(str(outcome.best.run) if outcome.best is not None else str(outcome.sweep_dir))
    if outcome.status != "completed":
        raise typer.Exit(130 if outcome.status == "interrupted" else 1)


@app.command("runs")
@user_errors
def runs_(
    runs_dir: Path = typer.Argument(Path("runs"), metavar="[DIR]", help="folder of runs (sweeps included)"),
    task: Optional[str] = typer.Option(None, "--task", help="only runs of this task",
                                       autocompletion=complete.task_names),
    model: Optional[str] = typer.Option(None, "--model", help="only runs of this model",
                                        autocompletion=complete.model_names),
    status: Optional[str] = typer.Option(None, "--status", help="only runs with this status, e.g. completed",
                                         autocompletion=complete.statuses),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """List runs, newest first: id, task, model, status, key metric, time. Fits $COLUMNS (else the
    terminal): a run takes two lines when one is too narrow; piped, one plain line a run."""
    from rnnlab.analysis.compare import list_runs
    from rnnlab.cli.runlist import print_runs

    infos = list_runs(runs_dir, task, model, status)
    if as_json:
        typer.echo(json.dumps({"runs": [{"id": i.id, "path": str(i.path), "task": i.summary.get("task"),
                                         "model": i.summary.get("model"), "status": i.status,
                                         "metric": i.key_metric()[0], "value": i.key_metric()[1],
                                         "split": i.key_metric()[2] or None,
                                         "train_seconds": i.summary.get("train_seconds"),
                                         "started": i.started or None} for i in infos]}))
        return
    filters = ", ".join(f"{k}={v}" for k, v in (("task", task), ("model", model), ("status", status)) if v)
    title = f"{len(infos)} run(s) in {runs_dir}" + (f" ({filters})" if filters else "")
    print_runs(infos, title)


@app.command()
@user_errors
def compare(
    runs: Optional[List[Path]] = typer.Argument(
        None, metavar="RUN RUN...", help="run directories (or a sweep directory)",
        autocompletion=complete.runs_and_sweeps),
    group_a: Optional[List[Path]] = typer.Option(
        None, "--group-a", "-a", help="a run (or folder of runs) of group A; repeat for more",
        autocompletion=complete.runs_and_sweeps),
    group_b: Optional[List[Path]] = typer.Option(
        None, "--group-b", "-b", help="a run (or folder of runs) of group B; repeat for more",
        autocompletion=complete.runs_and_sweeps),
    by: Optional[str] = typer.Option(
        None, "--by", metavar="KEY=A,B", help="split RUN... into two groups by a config key, e.g. "
        "model.name=lstm,gru"),
    breakdowns: bool = typer.Option(
        False, "--breakdowns", help="groups: also per-class metrics such as accuracy/3 (always in --json)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    plot: bool = typer.Option(
        False, "--plot", help="--plot [FILE]: also overlay the runs' learning curves (train loss, val "
        "metric) in one figure, written to FILE (an argument ending in .png/.svg/.pdf; default "
        "./compare.png), never inside a run; its path is printed last"),
    force: bool = typer.Option(False, "--force", help="--plot: replace FILE if it exists"),
) -> None:
    """Config differences and metrics of runs side by side; with two groups (--group-a/--group-b,
    or --by KEY=A,B), the difference of their means with a 95 % Welch t interval."""
    from rnnlab.analysis.compare import compare_groups, compare_runs, comparison_tables, group_table, split_by
    from rnnlab.analysis.overlay import plot_target

    runs, figure = plot_target(list(runs or []), plot, force)  # checked before anything is read
    if figure is not None and (group_a or group_b or by):
        raise ConfigError("--plot", "draws RUN... overlaid; not with --group-a/--group-b or --by")
    if group_a or group_b or by:
        if by and (group_a or group_b):
            raise ConfigError("--by", "give either --by or --group-a/--group-b, not both")
        if by:
            a, b, labels = split_by(list(runs or []), by)
        elif runs or not group_a or not group_b:
            raise ConfigError("--group-a", "give both --group-a and --group-b, and no other RUN")
        else:
            a, b, labels = list(group_a), list(group_b), ("A", "B")
        groups = compare_groups(a, b, labels)
        if as_json:
            typer.echo(json.dumps(groups.to_json()))
            return
        console = _console()
        console.print(group_table(groups, breakdowns))
        for skipped in groups.skipped:
            console.print(f"left out (not completed): {skipped}")
        return
    comparison = compare_runs(runs)
    written = _overlay(runs, figure) if figure is not None else None
    if as_json:
        typer.echo(json.dumps({**comparison.to_json(), **({"plot": str(written)} if written else {})}))
        return
    console = _console()
    for table in comparison_tables(comparison):
        console.print(table)
    if written is not None:
        typer.echo(str(written))


def _overlay(paths: List[Path], out: Path) -> Path:
    """``compare --plot``: the runs' learning curves overlaid, written to ``out``."""
    from rnnlab.analysis.compare import _short_id, expand_args
    from rnnlab.analysis.overlay import plot_overlay

    dirs = expand_args(paths)
    return plot_overlay(dirs, [_short_id(d, dirs) for d in dirs], out)


@app.command()
@user_errors
def diff(
    run_a: str = typer.Argument(..., metavar="RUN_A", help="a run directory, or a run id in --runs-dir",
                                autocompletion=complete.run_ids),
    run_b: str = typer.Argument(..., metavar="RUN_B", help="the run to compare it with",
                                autocompletion=complete.run_ids),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where run ids are looked up"),
    breakdowns: bool = typer.Option(
        False, "--breakdowns", help="also per-class metrics such as test accuracy/3 (always in --json)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """What differs between two runs: only the config keys whose values differ (dotted, A and B),
    then their metrics side by side (test, and val at the best epoch) with B - A."""
    from rnnlab.analysis.diff import diff_runs, diff_tables

    result = diff_runs(run_a, run_b, runs_dir)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    console = _console()
    for table in diff_tables(result, breakdowns):
        console.print(table)


@app.command("config")
@user_errors
def config_(
    config: Path = typer.Argument(..., help="YAML config, e.g. configs/lstm_mnist.yaml",
                                  autocompletion=complete.config_files),
    set_: List[str] = typer.Option([], "--set", "-s", help="dotted override KEY=VALUE (repeatable)"),
    name: Optional[str] = typer.Option(None, "--name", help="run name (default: the config's name)"),
) -> None:
    """Print the resolved config (every default written out) as YAML, without running anything;
    the same text `rnnlab train` saves as the run's config.yaml."""
    from rnnlab.config.loading import load_experiment

    typer.echo(load_experiment(config, set_, name).to_yaml(), nl=False)


@app.command("check")
@user_errors
def check_(
    name: str = typer.Argument(..., metavar="MODEL_OR_TASK", help="a registered model or task",
                               autocompletion=complete.models_and_tasks),
    task: Optional[str] = typer.Option(None, "--task", help="check the model on this task only",
                                       autocompletion=complete.task_names),
    set_: List[str] = typer.Option([], "--set", "-s", help="model option KEY=VALUE (repeatable)"),
    plugin: List[str] = typer.Option([], "--plugin", "-p",
                                     help="import a module or .py file first (repeatable)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="print every check, passed and skipped too"),
) -> None:
    """Conformance checks of a model (on every task it can be built for) or of a task: one line
    per failure, exit status 1 when a check fails."""
    from rnnlab.config.plugins import load_entry_points, load_plugins
    from rnnlab.testing import model_options, run_check

    load_entry_points()
    load_plugins(plugin, "--plugin")
    status = run_check(name, task, model_options(set_), verbose, typer.echo)
    if status:
        raise typer.Exit(status)
