"""``castrig store sync RUN_DIR``: push a run folder's records into the fleet store, idempotently.

Any run folder works — one recorded by the SQLite backend on a rig without the database, or one
the PostgreSQL backend could not finish pushing (the database was down when it closed). Records
are keyed by (run_uid, local id) and inserted with ``ON CONFLICT DO NOTHING``; the catalog row is
written from the folder as it is (grades so far; ``crashed`` once no process owns a run that still
says running), only where it differs and only over the row read before the folder. So a second sync
of the same run changes nothing, and a sync that races the run's own recorder (or a resume that
ends meanwhile) duplicates nothing and never puts an older row over a newer one.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from castrig.errors import BadInput
from castrig.store.postgres_store import (
    DEFAULT_SCHEMA,
    Fleet,
    _check_schema,
    current_run,
    folder_uid,
    is_postgres_url,
    push_folder_records,
    redact_url,
    run_uid_of,
    sync_run_row,
)
from castrig.store.sqlite_store import SqliteRunStore, hand_over
from castrig.store.sqlite_connect import (
    READ_VALUE_MAX_BYTES,
    DamagedRun,
    bounded_reader,
    ValueTooLarge,
    connect,
    connect_readonly,
    writable_now,
)


#: A run's fleet-wide id as :func:`run_uid_of` makes it (``uuid4().hex``).
_UID = re.compile(r"[0-9a-f]{32}")


@dataclass
class SyncReport:
    """What one sync changed in the fleet database."""

    run_id: str
    run_uid: str
    url: str
    inserted: dict[str, int] = field(default_factory=dict)  # new rows per table
    catalog_changed: bool = False

    @property
    def changed(self) -> bool:
        return self.catalog_changed or any(self.inserted.values())

    def summary(self) -> str:
        rows = ", ".join(f"{n} {t}" for t, n in self.inserted.items() if n) or "no new records"
        cat = "catalog row written" if self.catalog_changed else "catalog row unchanged"
        return f"{self.run_id} → {redact_url(self.url)}: {rows}; {cat}"


def resolve_url(url: str | None) -> str:
    """``--url``, else ``$CASTRIG_STORE``; a bad-input error (exit 2) when neither is a PostgreSQL URL."""
    url = url or os.environ.get("CASTRIG_STORE")
    if not url:
        raise BadInput("no fleet store: give --url postgresql://… or set CASTRIG_STORE=postgresql://…", field="--url")
    if not is_postgres_url(url):
        raise BadInput(f"--url / CASTRIG_STORE = {redact_url(url)}: expected a postgresql:// URL", field="--url")
    return url


def sync_run(run_dir: Path, url: str | None = None, *, schema: str | None = None) -> SyncReport:
    """Push every record of ``run_dir`` that the fleet database lacks, in one transaction."""
    url = resolve_url(url)
    schema = _check_schema(schema or os.environ.get("CASTRIG_STORE_SCHEMA", DEFAULT_SCHEMA))  # bad input: exit 2 first
    run_dir = Path(run_dir)
    recorder = SqliteRunStore(run_dir.parent).open_run(run_dir)  # BadInput unless a run folder
    info = recorder.info
    recorder.close()
    uid = folder_uid(run_dir) or _give_uid(run_dir)
    if not _UID.fullmatch(uid):  # (5 MB there was refused by PostgreSQL's index and said "unreachable", exit 3)
        raise DamagedRun(run_dir, f"run.sqlite table meta: run_uid {uid[:40]!r}{'…' if len(uid) > 40 else ''} is not a "
                                  "run id castrig writes (32 hex digits): nothing of this run was synced")
    # read-only and bounded, as every other reader: a 100 MB value went into PostgreSQL whole
    db = connect_readonly(run_dir / "run.sqlite")
    try:
        fleet = Fleet(url, schema)
        report = SyncReport(info.run_id, uid, url)

        def tx(conn):  # type: ignore[no-untyped-def]
            _not_a_copy(conn, fleet.schema, uid, run_dir)
            # the row from the folder as it is now (a crashed run: ``crashed``), never over a newer one
            report.catalog_changed = sync_run_row(conn, fleet.schema, uid, run_dir, info.run_id)
            report.inserted = push_folder_records(conn, fleet.schema, uid, db)

        try:
            fleet.require(tx)
        except ValueTooLarge as exc:  # the transaction rolled back: nothing of this run is in the fleet
            raise DamagedRun(run_dir, f"run.sqlite table {exc.table} holds a value larger than the "
                                      f"{READ_VALUE_MAX_BYTES >> 20} MiB a reader takes (castrig writes at most tens of "
                                      "kB in one): nothing of this run was synced") from None
        finally:
            fleet.close()
        return report
    finally:
        db.close()


def _give_uid(run_dir: Path) -> str:
    """Record a fleet-wide id in a run folder that has none (one the SQLite backend recorded): the
    one write a sync makes there, so that syncing it again pushes nothing twice."""
    writable_now(run_dir, again="sync again")  # a reader holding a closed run's records: Busy (exit 4) naming it, not a wait
    db = bounded_reader(connect(run_dir / "run.sqlite"))
    try:
        return run_uid_of(db)
    except sqlite3.DataError:
        raise DamagedRun(run_dir, f"run.sqlite table meta holds a value larger than the {READ_VALUE_MAX_BYTES >> 20} MiB "
                                  "a reader takes: nothing of this run was synced") from None
    finally:
        hand_over(db)
        db.close()


def _not_a_copy(conn, schema: str, uid: str, run_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """BadInput if the catalog names another folder, still there, holding this very run (a copy
    made with ``cp -a`` keeps the run's id): syncing the copy moved the catalog to it and, with
    the original still running, called the run crashed. A run folder moved away is synced from
    its new place."""
    row = current_run(conn, schema, uid)
    if row is None:
        return
    there = Path(row["run_dir"])
    if there != run_dir.resolve() and (there / "run.sqlite").is_file() and folder_uid(there) == uid:
        raise BadInput(f"{run_dir}: a copy of run {row['run_id']}, whose own folder {there} the fleet store already holds "
                       "(the same run id): sync that folder, or move this copy out of the way", field="run_dir")

