"""``castrig export RUN_DIR --to DIR [--format csv|parquet]``: a run as tidy tables.

One row per observation, one column per variable, and a ``run_id`` column in every table, so
exports of many runs concatenate (``pandas.concat``, or pasting sheets in Excel):

- ``samples``: run_id, t_s, channel, value (long form; pivot on channel for a wide sheet)
- ``events``:  run_id, t_s, kind, source, message, data_json
- ``metrics``: run_id, membrane_id, source (metrics | truth), name, value (numbers), text
  (anything else) — nested results flattened to dotted names; one block per membrane
- ``verdict``: run_id, membrane_id, grade, metric, bound, measured, margin, pass, status, interval_low,
  interval_high, flags, advice (membranes judged). ``pass`` is true/false/empty; ``status`` tells an
  empty ``pass`` apart: ``marginal`` (the bound lies inside the measured value's 95 % interval
  ``interval_low``–``interval_high``, or a passing value carries quality ``flags``; ``advice`` says
  what would settle it) or ``unknown`` (not measured); ``flags`` comma-separated
- ``membranes``: run_id, membrane_id, k, status (judged | made | lost …), simulated, lot_id,
  grades_met, target_grade, target_met, lost_reason, support_position, cast_step, t_start_s,
  t_end_s, rh_mean_pct, rh_min_pct, rh_max_pct, out_of_band_s, prewet_ml, cast_ml, intended_use,
  made_utc (runs with casts; ``intended_use``: blood_filter or coculture as ``castrig lots
  assign`` gave the lot, from the data root's ``lots.json``; empty if none; ``made_utc``: the
  wall-clock time, UTC ISO 8601 to the millisecond, its evaporation ended under control -- or
  its cast, in a recipe without an evaporate step --, empty for a membrane not made (lost) and
  for runs recorded before castrig kept it)
- ``images``: run_id, membrane_id, name, path (in the run folder), illumination, pixel_size_um,
  sha256, t_s, made_utc (the wall-clock time the image was written into the run, UTC ISO 8601 to
  the millisecond; empty for runs recorded before castrig kept it); ``membrane_id`` joins
  ``membranes`` (empty: an image of no membrane)

A run recorded before membranes has an empty ``membrane_id``, and so have a run's own results, of no
membrane (an analyse step before its first cast: the bare support imaged and judged first).

In CSV, text starting with ``= + - @``, a tab or a carriage return is written with a leading
``'``, so a spreadsheet opening the table never runs it as a formula (CSV injection); Parquet
keeps the text as it is (its readers take no formulas).

CSV needs nothing; Parquet needs pyarrow (``pip install 'castrig[parquet]'``).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from castrig.errors import BadInput
from castrig.atomic import atomic_write_with, remove_dead_temporaries
from castrig.store.sqlite_store import SqliteRunStore

FORMATS = ("csv", "parquet")

#: Keys that hold a structure of a verdict rather than a grade's name.
_STRUCTURAL = {"grades", "checks", "bounds", "rows", "results", "items", "verdict", "claims", "criteria"}


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts → (dotted name, scalar); lists of scalars are kept as JSON text."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out.append((name, json.dumps(value)))
        else:
            out.append((name, value))
    return out


def format_bound(check: Mapping[str, Any]) -> str:
    """A bound in words a reader checks at a glance: "≥ 0.3", "≤ 2.5", "1 – 7"."""
    bound = check.get("bound", check.get("limit"))
    op = check.get("op") or check.get("operator") or check.get("comparison") or check.get("kind")
    lo = check.get("min", check.get("lower"))
    hi = check.get("max", check.get("upper"))
    if isinstance(bound, Mapping):
        lo = bound.get("min", bound.get("lower", bound.get("ge", bound.get("gt", lo))))
        hi = bound.get("max", bound.get("upper", bound.get("le", bound.get("lt", hi))))
        op = op or bound.get("op")
        bound = bound.get("value", bound.get("limit"))
    if isinstance(bound, (list, tuple)) and len(bound) == 2:
        lo, hi = bound
        bound = None
    if bound is not None:
        sym = {"ge": "≥", ">=": "≥", "min": "≥", "gt": ">", "le": "≤", "<=": "≤", "max": "≤", "lt": "<",
               "eq": "=", "==": "="}.get(str(op), str(op) if op else "")
        return f"{sym} {_num(bound)}".strip()
    if lo is not None and hi is not None:
        return f"{_num(lo)} – {_num(hi)}"
    if lo is not None:
        return f"≥ {_num(lo)}"
    if hi is not None:
        return f"≤ {_num(hi)}"
    return ""


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _is_check(node: Mapping[str, Any]) -> bool:
    return "measured" in node or ("value" in node and ("limit" in node or "bound" in node or "margin" in node))


#: What ``castrig export`` adds to a check's row, after the columns scripts already read.
CHECK_EXTRAS = ("status", "interval_low", "interval_high", "flags", "advice")
_STATUSES = ("pass", "fail", "marginal", "unknown")


def _check_row(node: Mapping[str, Any], grade: str | None, name: str | None, extended: bool = False) -> dict[str, Any]:
    passed = next((node[k] for k in ("pass", "passed", "ok", "met") if k in node), None)
    status = node.get("status")
    if passed is None and status in ("pass", "fail"):
        passed = status == "pass"
    row = {
        # the enclosing grade, not the check's "source" (a grade inherits bounds from another)
        "grade": node.get("grade", grade) or "",
        "metric": node.get("metric") or node.get("label") or node.get("quantity") or node.get("name") or name or "",
        "bound": format_bound(node),
        "measured": node.get("measured", node.get("value")),
        "margin": node.get("margin"),
        "pass": None if passed is None else bool(passed),
    }
    if extended:
        interval = node.get("interval")
        low, high = interval if isinstance(interval, (list, tuple)) and len(interval) == 2 else (None, None)
        flags = node.get("flags")
        row.update({
            "status": status if status in _STATUSES else ("unknown" if passed is None else "pass" if passed else "fail"),
            "interval_low": low,
            "interval_high": high,
            "flags": ",".join(map(str, flags)) if isinstance(flags, (list, tuple)) else (flags or None),
            "advice": node.get("advice"),
        })
    return row


def verdict_rows(verdict: Any, *, extended: bool = False) -> list[dict[str, Any]]:
    """Every check of a verdict as (grade, metric, bound, measured, margin, pass); ``extended``:
    and :data:`CHECK_EXTRAS` (status pass/fail/marginal/unknown, the value's 95 % interval, its
    quality flags, the advice of a marginal bound), as ``castrig export`` writes them.

    The analysis writes ``{"grades": [{"grade", "status", "checks": [{"label", "kind", "limit",
    "value", "margin", "status"}]}], "grades_met": [...]}``; ``pass`` is None for a bound that could
    not be judged (status unknown). Other nestings are read too: a check is any mapping with a
    ``measured`` key (or ``value`` with ``limit``/``margin``); its grade is the nearest ``grade``
    field or grade-named key above it (``{"claim1": {...}}``).
    """
    rows: list[dict[str, Any]] = []

    def walk(node: Any, grade: str | None, key: str | None) -> None:
        if isinstance(node, Mapping):
            if _is_check(node):
                rows.append(_check_row(node, grade, key, extended))
                return
            here = node.get("grade") if isinstance(node.get("grade"), str) else grade
            for k, v in node.items():
                if k in ("grades_met", "summary") or not isinstance(v, (Mapping, list, tuple)):
                    continue
                child_grade = here
                if child_grade is None and k not in _STRUCTURAL:
                    child_grade = str(k)
                walk(v, child_grade, str(k))
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item, grade, key)

    walk(verdict, None, None)
    return rows


def grade_status(verdict: Any) -> dict[str, str]:
    """grade → pass | fail | unknown: the grade's own status where the verdict gives it."""
    status: dict[str, str] = {}
    entries = verdict.get("grades") if isinstance(verdict, Mapping) else None
    if isinstance(entries, list):
        for e in entries:
            if isinstance(e, Mapping) and isinstance(e.get("grade"), str) and e.get("status") in ("pass", "fail", "unknown"):
                status[e["grade"]] = str(e["status"])
    for g, met in grade_passes(verdict).items():
        if g not in status:
            rows = [r for r in verdict_rows(verdict) if r["grade"] == g]
            status[g] = "pass" if met else ("unknown" if any(r["pass"] is None for r in rows)
                                            and not any(r["pass"] is False for r in rows) else "fail")
    return status


def grade_passes(verdict: Any) -> dict[str, bool]:
    """grade → met, from ``grades_met`` where the verdict has it, else from its checks."""
    rows = verdict_rows(verdict)
    grades = list(dict.fromkeys(r["grade"] for r in rows))
    met = verdict.get("grades_met") if isinstance(verdict, Mapping) else None
    if isinstance(met, list):
        return {g: g in met for g in dict.fromkeys([*grades, *met])}
    return {g: all(r["pass"] for r in rows if r["grade"] == g) for g in grades}


def run_tables(run_dir: Path, intended_uses: Mapping[str, str] | None = None) -> dict[str, tuple[list[str], list[Sequence[Any]]]]:
    """The tidy tables of a run: name → (columns, rows). ``intended_uses``: lot id → intended use
    (``castrig lots assign``, kept by the lots layer), for membranes.csv's last column."""
    run_dir = Path(run_dir)
    with SqliteRunStore(run_dir.parent).open_run(run_dir) as rec:
        rid = rec.info.run_id
        samples = [(rid, *s) for s in rec.samples()]
        events = [(rid, e.t_s, e.kind, e.source, e.message, json.dumps(e.data, sort_keys=True)) for e in rec.events()]
        results = rec.results()
        membranes = rec.membranes()
        images = [(rid, *image_row(im)) for im in rec.images()]
    # (membrane id, its results): one block per membrane, and one unnamed for the run's own (a run
    # from before membranes; an analyse before the first cast, whose rows were left out)
    own = {k: v for k, v in results.items() if "/" not in k}
    blocks = [(mb.membrane_id, {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith(mb.membrane_id + "/")})
              for mb in membranes] if membranes else []
    if own or not membranes:
        blocks.insert(0, ("", own if membranes else results))
    metrics: list[Sequence[Any]] = []
    verdict: list[Sequence[Any]] = []
    cols = ["grade", "metric", "bound", "measured", "margin", "pass", *CHECK_EXTRAS]
    for mid, res in blocks:
        for source in ("metrics", "truth"):
            if isinstance(res.get(source), Mapping):
                for name, value in flatten(res[source]):
                    number = isinstance(value, (int, float)) and not isinstance(value, bool)
                    metrics.append((rid, mid, source, name, float(value) if number else None,
                                    None if number or value is None else str(value)))
        if res.get("verdict") is not None:
            verdict.extend((rid, mid, *(r[c] for c in cols)) for r in verdict_rows(res["verdict"], extended=True))
    tables: dict[str, tuple[list[str], list[Sequence[Any]]]] = {
        "samples": (["run_id", "t_s", "channel", "value"], samples),
        "events": (["run_id", "t_s", "kind", "source", "message", "data_json"], events),
        "metrics": (["run_id", "membrane_id", "source", "name", "value", "text"], metrics),
    }
    # every table, also with no rows (a purge-only run, a crash before the first cast): exports
    # of many runs concatenate table by table, and a missing file breaks that
    tables["verdict"] = (["run_id", "membrane_id", *cols], verdict)
    uses = intended_uses or {}
    # (new columns only ever at the end: scripts read them by position too)
    tables["membranes"] = ([*MEMBRANE_COLUMNS, "intended_use", "made_utc"],
                           [(*membrane_row(rid, mb), uses.get(mb.lot_id or mb.membrane_id), _text_or_none((mb.process or {}).get("made_utc")))
                            for mb in membranes])
    tables["images"] = (["run_id", *IMAGE_COLUMNS], images)
    return tables


#: The ``images`` table's columns after run_id (the fleet store's images table has the same two
#: last ones, taken from the same metadata).
IMAGE_COLUMNS = ("membrane_id", "name", "path", "illumination", "pixel_size_um", "sha256", "t_s", "made_utc")


def _text_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def image_row(im: Any) -> tuple[Any, ...]:
    """An image record as a row of :data:`IMAGE_COLUMNS`: its membrane and the wall-clock time it
    was written come from its metadata (where the runner and the store put them; None in the
    records of older versions, and of hand-made metadata that is no text there)."""
    meta = im.metadata if isinstance(im.metadata, Mapping) else {}
    return (_text_or_none(meta.get("membrane_id")), im.name, im.path, im.illumination, im.pixel_size_um, im.sha256,
            im.t_s, _text_or_none(meta.get("made_utc")))


MEMBRANE_COLUMNS = ("run_id", "membrane_id", "k", "status", "simulated", "lot_id", "grades_met", "target_grade", "target_met",
                    "lost_reason", "support_position", "cast_step", "t_start_s", "t_end_s", "rh_mean_pct", "rh_min_pct",
                    "rh_max_pct", "out_of_band_s", "prewet_ml", "cast_ml")


def membrane_row(run_id: str, mb: Any) -> tuple[Any, ...]:
    """One row of the ``membranes`` table of an export (and of the report's table)."""
    p = mb.process or {}
    disp = p.get("dispensed") or {}
    return (run_id, mb.membrane_id, mb.k, mb.status, mb.simulated, mb.lot_id, ",".join(mb.grades_met), mb.target_grade,
            mb.target_met, mb.lost_reason, mb.support_position, mb.cast_step, mb.t_start_s, mb.t_end_s,
            p.get("rh_mean_pct"), p.get("rh_min_pct"), p.get("rh_max_pct"), (p.get("evaporation") or {}).get("out_of_band_s"),
            (disp.get("prewet") or {}).get("volume_ml"), (disp.get("cast") or {}).get("volume_ml"))


def export_run(run_dir: Path, to_dir: Path, fmt: str = "csv", intended_uses: Mapping[str, str] | None = None,
               removed: list[Path] | None = None) -> list[Path]:
    """Write the run's tidy tables into ``to_dir``; returns the files written (``intended_uses``:
    see :func:`run_tables`). ``removed``: gets the temporaries of an earlier export killed
    mid-write (``.samples.csv.*.tmp``), removed from ``to_dir`` -- never a live export's."""
    if fmt not in FORMATS:
        raise BadInput(f"--format {fmt!r}: one of {', '.join(FORMATS)}", field="--format")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise BadInput("--format parquet needs pyarrow: pip install 'castrig[parquet]' (or use --format csv)",
                           field="--format") from None
    tables = run_tables(run_dir, intended_uses)
    to_dir = Path(to_dir)
    run_id = next((rows[0][0] for _, rows in tables.values() if rows), None)
    _refuse_files_not_exported(to_dir, fmt, tables, run_id)
    for name in tables:
        other = _exported_run(to_dir / f"{name}.{fmt}", fmt)
        if other is not None and other != (_cell(run_id) if fmt == "csv" else run_id):
            raise BadInput(f"--to {to_dir}: {name}.{fmt} there holds the tables of run {other}, and exporting run "
                           f"{run_id} would replace them (allowed: a folder without another run's tables, e.g. "
                           f"{to_dir / str(run_id)}; the tables' run_id column lets them be concatenated after)",
                           file=str(to_dir / f"{name}.{fmt}"), field="--to")
    try:
        to_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--to {to_dir}: cannot create the folder ({exc.strerror})", file=str(to_dir)) from None
    gone = [p for name in tables for f in FORMATS for p in remove_dead_temporaries(to_dir, f"{name}.{f}")]
    if removed is not None:
        removed.extend(gone)
    written = []
    for name, (cols, rows) in tables.items():
        path = to_dir / f"{name}.{fmt}"
        try:
            (_write_csv if fmt == "csv" else _write_parquet)(path, cols, rows)
        except OSError as exc:
            raise BadInput(f"--to {to_dir}: cannot write {path.name} ({exc.strerror or exc})", file=str(to_dir)) from None
        written.append(path)
    return written


def _refuse_files_not_exported(to_dir: Path, fmt: str, tables: Mapping[str, tuple[list[str], Any]], run_id: Any) -> None:
    """BadInput naming every file at a table's name in ``to_dir`` that no export wrote: an
    operator's own ``events.csv`` there was replaced without a word. ``castrig export`` (DESIGN
    §7, a stable command line) has no option to overwrite: the user chooses another folder."""
    found = [(to_dir / f"{name}.{fmt}", _not_an_export(to_dir / f"{name}.{fmt}", fmt, cols))
             for name, (cols, _) in tables.items()]
    found = [(path, why) for path, why in found if why is not None]
    if found:
        listed = "; ".join(f"{path.name}: {why}" for path, why in found)
        raise BadInput(f"--to {to_dir}: holds files castrig export did not write, which exporting would replace "
                       f"({listed}); nothing was written (allowed: an empty folder, a new one, e.g. "
                       f"{to_dir / str(run_id or 'tables')}, or one holding only an earlier export of this run)",
                       file=str(found[0][0]), field="--to")


def _not_an_export(path: Path, fmt: str, columns: Sequence[str]) -> str | None:
    """Why ``path`` is not a table an earlier export wrote (None: nothing there, or one that is:
    its header's first column is run_id and every column is one of ``columns``, so the exports
    of earlier castrig versions, with fewer columns, are still replaced). A link is never one:
    export writes files, and neither follows nor replaces a link someone made."""
    if path.is_symlink():
        return "a symbolic link"
    if not path.exists():
        return None
    if not path.is_file():  # (never opened: a named pipe would wait for a writer)
        return "a folder" if path.is_dir() else "not a regular file"
    header = _table_header(path, fmt)
    if not header or header[0] != "run_id" or not set(header) <= set(columns):
        return f"not a {fmt} table castrig export wrote"
    return None


def _table_header(path: Path, fmt: str) -> list[str] | None:
    """The column names of the table at ``path`` (None: unreadable, or not a table)."""
    try:
        if fmt == "csv":
            with open(path, newline="", encoding="utf-8", errors="replace") as fh:
                return next(csv.reader([fh.readline(1 << 16)]), None)  # (bounded: a file of one long line)
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception:  # noqa: BLE001 - not a table (pyarrow raises its own errors; csv a field too large)
        return None


def _exported_run(path: Path, fmt: str) -> str | None:
    """The run_id of the first row of a table an earlier export wrote at ``path`` (None: no such
    file, no rows, or not a table castrig wrote). Two runs exported into one folder: the second
    replaced the first's tables without a word; a run exported again replaces its own."""
    try:
        if fmt == "csv":
            with open(path, newline="", encoding="utf-8", errors="replace") as fh:
                head = list(itertools.islice(csv.reader(itertools.islice(fh, 2)), 2))
            return head[1][0] if len(head) == 2 and head[0][:1] == ["run_id"] and head[1] else None
        import pyarrow.parquet as pq

        column = pq.read_table(path, columns=["run_id"]).column("run_id")
        return str(column[0].as_py()) if len(column) else None
    except Exception:  # noqa: BLE001 - no file, or not a table castrig wrote (pyarrow raises its own errors)
        return None


#: What a spreadsheet takes for the start of a formula in a cell it opens from CSV.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(v: Any) -> Any:
    """A CSV cell. Text that a spreadsheet would run as a formula (an event's message naming a
    file ``=HYPERLINK("http://…")``, a hand-edited recipe name) starts with ``'`` (OWASP's
    advice for CSV injection): Excel and LibreOffice show it as the text it is, and a reader of
    the table sees what was done. Numbers stay numbers, negative ones too."""
    if isinstance(v, float) and math.isnan(v):
        return ""
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        return "'" + v
    return "" if v is None else v


def _write_csv(path: Path, cols: list[str], rows: Iterable[Sequence[Any]]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for r in rows:
                w.writerow([_cell(v) for v in r])

    atomic_write_with(path, write, sync_dir=False)


_FLOAT_COLUMNS = frozenset({"t_s", "value", "measured", "pixel_size_um", "margin", "interval_low", "interval_high", "t_start_s", "t_end_s",
                            "rh_mean_pct", "rh_min_pct", "rh_max_pct", "out_of_band_s", "prewet_ml", "cast_ml"})
_INT_COLUMNS = frozenset({"k", "support_position", "cast_step"})
_BOOL_COLUMNS = frozenset({"pass", "simulated", "target_met"})


def _write_parquet(path: Path, cols: list[str], rows: list[Sequence[Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data: dict[str, list[Any]] = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    arrays = {}
    for c, values in data.items():
        kinds = {type(v) for v in values if v is not None}
        # a known column has its type whatever its values (none: a table without rows, all empty),
        # so the exports of many runs concatenate
        if c in _FLOAT_COLUMNS and kinds <= {int, float}:
            arrays[c] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        elif c in _INT_COLUMNS and kinds <= {int}:
            arrays[c] = pa.array(values, pa.int64())
        elif c in _BOOL_COLUMNS and kinds <= {bool}:
            arrays[c] = pa.array(values, pa.bool_())
        elif kinds and kinds <= {int, float} and kinds != {int}:
            arrays[c] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        elif kinds <= {bool} and kinds:
            arrays[c] = pa.array(values, pa.bool_())
        elif kinds and kinds <= {int}:
            arrays[c] = pa.array(values, pa.int64())
        else:  # mixed (a metrics table holds numbers and text): text, so the column has one type
            arrays[c] = pa.array([None if v is None else str(v) for v in values], pa.string())
    atomic_write_with(path, lambda tmp: pq.write_table(pa.table(arrays), tmp), sync_dir=False)
