"""CLI commands for looking at runs: ``report``, ``export``, ``store sync`` (the ``runs`` filters
are :mod:`castrig.report.filters`, which ``castrig serve`` shares).

Mounted by :mod:`castrig.cli.main`. Bad input (not a run folder, a bad date, an unknown format,
a missing optional package) raises :class:`castrig.errors.BadInput`: exit 2 with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from castrig.errors import BadInput

def report(
    run_dir: Path = typer.Argument(..., help="The run folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the page here instead of RUN_DIR/report.html."),
    open_: bool = typer.Option(False, "--open", help="Open the report in the default browser."),
) -> None:
    """Write RUN_DIR/report.html: the run's page (as castrig serve shows it), one self-contained file."""
    from castrig.report import build_report
    from castrig.store.folders import read_run_info

    if (Path(run_dir) / "run.json").is_file():
        read_run_info(run_dir)  # a damaged run.json: exit 2 with the reason
    if out is not None:
        _check_report_out(out)
        _refuse_another_runs_folder(out, run_dir, "--out")
        _refuse_a_data_root(out, "--out", own_run=run_dir)
    try:
        path = build_report(run_dir, out)
    except OSError as exc:
        where = out if out is not None else Path(run_dir) / "report.html"
        hint = "" if out is not None else "; write it elsewhere with --out FILE"
        raise BadInput(f"cannot write {where} ({exc.strerror or exc}){hint}", file=str(where)) from None
    typer.echo(str(path))
    if open_:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


def _check_report_out(out: Path) -> None:
    """Refuse (exit 2) an ``--out`` that would destroy a file: anything that exists and is not an
    earlier report — ``--out RUN/run.sqlite`` replaced the run's records with the page, exit 0 —
    and a symbolic link, which was replaced by the page without a word."""
    from castrig.report.html import is_report

    _refuse_link(out, "--out")
    if out.exists() and not is_report(out):
        what = "a folder" if out.is_dir() else "not a castrig report"
        raise BadInput(f"--out {out}: exists and is {what}; castrig replaces only an earlier report "
                       "(give a new file name, e.g. report.html)", file=str(out), field="--out")


def _refuse_another_runs_folder(out: Path, run_dir: Path, option: str) -> None:
    """An output inside another run's folder is refused (exit 2): a run folder is its own run's
    record. ``report R1 --out R2/report.html`` replaced R2's page with R1's (the file a queue's
    summary names as R2's report), and ``export R1 --to R2`` put R1's tables among R2's records, both exit 0."""
    from castrig.store import runjson

    own, target = Path(run_dir).resolve(), Path(out).resolve()
    for folder in (target, *target.parents):
        if folder == own:
            return  # the run's own folder: where its report goes by default
        try:
            other = folder.is_dir() and (runjson.present(folder) or (folder / "run.sqlite").is_file())
        except OSError:  # (a folder this user may not look into: no run of theirs to spoil)
            other = False
        if other:
            allowed = ("a folder outside every run folder" if option == "--to" else
                       f"a path outside other runs' folders; {run_dir}'s own page goes to {Path(run_dir) / 'report.html'} "
                       "without --out")
            raise BadInput(f"{option} {out}: inside the run folder {folder} of another run, whose record it is "
                           f"(allowed: {allowed})", file=str(out), field=option)


def _refuse_a_data_root(out: Path, option: str, own_run: Path | None = None) -> None:
    """An output in a data root (one that holds castrig's catalogue, catalog.sqlite), not in a run
    folder, is refused (exit 2): ``export RUN --to DATA`` wrote samples.csv, events.csv ... beside
    the catalogue and the run folders, exit 0, and ``--to DATA/tables`` a folder that every listing
    of the data root walks past; ``report RUN --out DATA/x.html`` a page among them. An output in
    ``own_run`` (the report's own run folder) is its own. Looked at after :func:`_refuse_another_runs_folder`."""
    target = Path(out).resolve()
    if own_run is not None and target.is_relative_to(Path(own_run).resolve()):
        return
    allowed = "a folder outside the data root" if option == "--to" else f"a path outside the data root, or in {own_run}"
    for folder in (target, *target.parents):
        try:
            root = (folder / "catalog.sqlite").exists() or (folder / "catalog.sqlite").is_symlink()
        except OSError:  # (a folder this user may not look into)
            root = False
        if root:
            raise BadInput(f"{option} {out}: inside the data root {folder}, which holds castrig's catalogue and run "
                           f"folders (allowed: {allowed}, e.g. {folder.parent / (folder.name + '-tables')})",
                           file=str(out), field=option)


def _refuse_link(path: Path, option: str) -> None:
    """A symbolic link at an output path is neither written through (a file elsewhere that the
    operator did not name) nor replaced (the link is someone's, made on purpose): exit 2."""
    import os

    from castrig.inputs import short

    if not path.is_symlink():
        return
    try:
        target = os.readlink(path)
    except OSError as exc:
        target = exc.strerror or str(exc)
    raise BadInput(f"{option} {path}: is a symbolic link (to {short(target, 300)}); castrig neither writes through a link "
                   f"nor replaces it (allowed: a new file name, or the path of the file itself)", file=str(path), field=option)


def export(
    run_dir: Path = typer.Argument(..., help="The run folder."),
    to: Path = typer.Option(..., "--to", help="Folder for the tables (created if missing)."),
    fmt: str = typer.Option("csv", "--format", help="csv, or parquet (needs pyarrow: castrig[parquet])."),
) -> None:
    """Write the run's samples, events and metrics (and verdict) as tidy tables."""
    from castrig.lots.registry import intended_uses
    from castrig.store.export import export_run
    from castrig.store.folders import refuse_not_a_run_folder

    refuse_not_a_run_folder(run_dir)  # before --to is checked against it: "inside the run folder /tmp" was said
    if str(to) in ("", "."):  # typer makes "" the current folder: a script's empty variable, not a choice
        raise BadInput(f"--to {str(to)!r}: give the folder for the tables (allowed: a folder outside the run folder)", field="--to")
    run, out = Path(run_dir).resolve(), Path(to).resolve()
    if out == run or run in out.parents:  # the run folder is the run's record, written by its runner alone
        raise BadInput(f"--to {to}: inside the run folder {run_dir} (allowed: a folder outside it)", file=str(to), field="--to")
    _refuse_another_runs_folder(to, run_dir, "--to")
    _refuse_a_data_root(to, "--to")

    try:  # the lots' intended uses in the data root the run folder is in (a copy elsewhere: none)
        uses = intended_uses(Path(run_dir).parent)
    except BadInput as exc:  # a damaged lots.json beside the run: export the run, say why the column is empty
        typer.echo(f"warning: intended_use left empty: {exc}", err=True)
        uses = {}
    removed: list[Path] = []
    for path in export_run(run_dir, to, fmt, intended_uses=uses, removed=removed):
        typer.echo(str(path))
    for path in removed:  # a kill -9 mid-write left them; this export's tables are whole
        typer.echo(f"removed {path}: the temporary of an export that did not finish (killed while writing)", err=True)
    _say_unfinished(Path(run_dir))


def _say_unfinished(run_dir: Path) -> None:
    """A run that has not ended exports what it recorded so far: said, so the tables are not taken
    for a whole run (a crashed night's stopped at the crash, without a word)."""
    from castrig.store.live import run_outcome
    from castrig.store.lock import CRASHED_REASON

    try:
        outcome = run_outcome(run_dir)
    except OSError:
        return
    if outcome == "crashed":
        typer.echo(f"warning: {run_dir.name} crashed: the tables hold what it recorded until then ({CRASHED_REASON})", err=True)
    elif outcome == "running":
        typer.echo(f"warning: {run_dir.name} is still running: the tables hold what it recorded so far", err=True)


store_app = typer.Typer(help="The fleet store (PostgreSQL): sync run folders into it.", no_args_is_help=True)


@store_app.callback()
def _store() -> None:
    """The fleet store: PostgreSQL selected by CASTRIG_STORE=postgresql://… (or --url)."""


@store_app.command("sync")
def sync(
    run_dir: Path = typer.Argument(..., help="The run folder to push."),
    url: Optional[str] = typer.Option(None, "--url", help="postgresql://… (default $CASTRIG_STORE)."),
) -> None:
    """Push a run folder's records into the fleet store; syncing again changes nothing."""
    from castrig.store.postgres_store import FleetStoreError
    from castrig.store.sqlite_connect import StoreError
    from castrig.store.sync import sync_run

    try:
        result = sync_run(run_dir, url)
    except (FleetStoreError, StoreError) as exc:  # (StoreError: the run folder's id could not be written: a traceback)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(result.summary())
