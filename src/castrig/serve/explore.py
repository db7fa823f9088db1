"""``castrig serve``'s explore pages: the maps and searches under ``DATA/explore``, filling in live.

What is found: every direct child folder of ``DATA/explore`` that holds a study journal
(``study.journal``: the Optuna journal file ``castrig explore map`` and ``castrig explore
--workers/--storage`` keep in their folder), a ``map.json`` (what ``castrig explore map`` wrote
when it last stopped) or a ``search.json`` (the one-process search). A map whose study lives in
PostgreSQL (``--storage postgresql://…``) records its URL nowhere but in the note of its
``map.html`` (password redacted), so the server cannot follow it: such a map is shown from its
``map.json`` snapshot (not live) once ``castrig explore map`` has stopped once.

Reading never disturbs a running map: the journal is read by Optuna's
:class:`~optuna.storages.journal.JournalFileBackend` — an append-only file read up to its last
complete line, without the writers' lock — and never written (the backend is only opened on a file
that exists, so it creates nothing); one storage per journal file is kept and synced
incrementally, so a refresh reads only the new lines.

Names from the URL must match :data:`NAME_RE` and be a direct child folder (not a symbolic link)
of ``DATA/explore``; anything else is 404. Everything from files (study names, grades, notes) is
escaped; the pages load only castrig's own script (:data:`SCRIPT`) and send a
Content-Security-Policy that allows nothing from elsewhere.

Live refresh: the map page asks ``GET /api/explore/NAME`` every :data:`REFRESH_S` seconds while
points are missing (or running), and when the number of points done changed it fetches
``GET /explore/NAME/panels`` (the same renderer as ``map.html``:
:func:`castrig.explore.gridmap.map_body`) and swaps the panels in. It stops once every asked point is done.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from castrig.jsontext import loads
from castrig.serve.html_response import HTMLResponse
from castrig.serve.json_response import JSONResponse
from castrig.explore.page_style import PAGE_STYLE
from castrig.report.csp import csp_hash
from castrig.store.live import links_held_in

#: A map or search folder name: letters, digits, ``.``, ``_``, ``-``; starting with a letter or digit.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
REFRESH_S = 3.0
#: No request leaves the page: only castrig's own script, styles and the API.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: The search map (``castrig.explore.plots``) in a frame: no script at all, its one stylesheet by hash.
FRAME_CSP = (f"default-src 'none'; style-src-elem {csp_hash(PAGE_STYLE)}; style-src-attr 'none'; img-src data:; "
             "frame-ancestors 'self'")
REAL_TTL_S = 15.0


# -- finding folders -----------------------------------------------------------------------------
def explore_dir(root: Path) -> Path:
    return Path(root) / "explore"


def folder_of(root: Path, name: str) -> Path | None:
    """The explore folder ``name``: a direct child of ``DATA/explore`` that holds a map or a search."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return None
    base = explore_dir(root)
    p = base / name
    files = ("study.journal", "map.json", "search.json")
    try:
        # DATA/explore itself, the folder and the files read in it: all really in the data root
        # (a DATA/explore linked to maps elsewhere, or a study.journal linked to another study's,
        # was served to every reader)
        if base.is_symlink() or base.resolve().parent != Path(root).resolve():
            return None
        if p.is_symlink() or not p.is_dir() or p.resolve().parent != base.resolve():
            return None
        if not links_held_in(p, files):
            return None
    except (OSError, RuntimeError):  # (RuntimeError: a symlink loop)
        return None
    if not any((p / f).is_file() for f in files):
        return None
    return p


class _Study:
    """The little of :class:`optuna.Study` that :mod:`castrig.explore.distributed`'s readers use."""

    def __init__(self, storage: Any, frozen: Any):
        self._storage = storage
        self._id = frozen._study_id
        self.study_name = frozen.study_name
        self.user_attrs = frozen.user_attrs

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list[Any]:
        return self._storage.get_all_trials(self._id, deepcopy=False, states=states)


#: The largest study journal the server reads. Optuna replays a journal whole, line by line: a
#: 400 MB file with no newline (whoever may write the data root can put one there) took 900 MB of
#: the server's memory on one GET. A map or search castrig runs writes a few kB per trial.
JOURNAL_MAX_BYTES = 64 << 20


#: How many bytes of study journals the server keeps replayed in memory at most, all journals
#: together (``castrig serve --explore-cache-mib``): each read journal was kept for good, up to
#: :data:`JOURNAL_MAX_BYTES` each and with no limit on how many, so a data root of many studies
#: grew the server without bound. Beyond it the least recently read are dropped, and read afresh
#: (replayed whole) when asked again. Counted by file size: the memory of a replay grows with it.
JOURNALS_CACHE_BYTES = 256 << 20


class Journals:
    """Read-only Optuna journal storages, one per journal file (synced incrementally on each read),
    at most ``max_bytes`` of journals kept (the least recently read dropped first; 0: none kept)."""

    def __init__(self, max_bytes: int = JOURNALS_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # key -> (file identity, storage, bytes read); least recently read first
        self._open: OrderedDict[str, tuple[tuple[int, int], Any, int]] = OrderedDict()

    def kept_bytes(self) -> int:
        """Bytes of journals kept replayed now (at most ``max_bytes``)."""
        with self._lock:
            return sum(size for _, _, size in self._open.values())

    def kept(self) -> list[str]:
        """The journals kept, least recently read first."""
        with self._lock:
            return list(self._open)

    def studies(self, journal: Path) -> list[_Study]:
        from castrig.explore.distributed import REPLAY_ERRORS, DamagedJournal, damaged_journal
        from castrig.explore.journal_reader import reader_storage

        key = str(journal.resolve())
        if not journal.is_file():
            self.forget(key)
            return []
        st = journal.stat()
        if st.st_size > JOURNAL_MAX_BYTES:
            self.forget(key)
            raise DamagedJournal(f"{journal}: {st.st_size / 2**20:.0f} MiB, more than castrig serve reads of a study journal "
                                 f"({JOURNAL_MAX_BYTES >> 20} MiB; castrig's own run to a few MB): not shown", file=str(journal))
        ident = (st.st_dev, st.st_ino)
        with self._lock:
            cached = self._open.get(key)
            if cached is None or cached[0] != ident or st.st_size == 0:
                # reads only: never locks, never writes, and reads the file it checked as it opened it
                # (Optuna's own opened the name again: a named pipe put there in between held the worker)
                try:
                    cached = (ident, reader_storage(journal, JOURNAL_MAX_BYTES), st.st_size)
                except REPLAY_ERRORS as exc:
                    self._open.pop(key, None)
                    raise damaged_journal(journal, exc) from None
            storage = cached[1]
            self._keep(key, (ident, storage, st.st_size))
        try:
            return [_Study(storage, s) for s in storage.get_all_studies()]
        except REPLAY_ERRORS as exc:  # a damaged line appended since
            raise damaged_journal(journal, exc) from None
        except DamagedJournal:  # no regular file, too large, replaced as it was read: read afresh next time
            self.forget(key)
            raise

    def _keep(self, key: str, entry: tuple[tuple[int, int], Any, int]) -> None:
        """(Under the lock.) ``entry`` kept as the most recently read, then the least recently read
        dropped beyond :attr:`max_bytes` (this one too when it alone is larger: the request that
        read it still holds it, and the next one replays it again)."""
        self._open[key] = entry
        self._open.move_to_end(key)
        total = sum(n for _, _, n in self._open.values())
        while self._open and total > self.max_bytes:
            _, (_, _, n) = self._open.popitem(last=False)
            total -= n

    def forget(self, key: str) -> None:
        """Drop the storage of a journal that is gone (its folder moved, renamed or deleted)."""
        with self._lock:
            self._open.pop(key, None)


def _kind(study: _Study) -> str:
    from castrig.explore.distributed import KIND_ATTR

    return str(study.user_attrs.get(KIND_ATTR, ""))


#: Far above any map.json or search.json castrig writes (a 20 × 20 map with seeds: a few MB).
_SNAPSHOT_MAX_BYTES = 64 << 20


def _read_json(path: Path) -> Any:
    """A folder's snapshot, or None: a regular file only (checked on the open, not before it: one
    swapped for a named pipe after a look would hold a page's worker for ever), bounded."""
    from castrig.regular import read_regular

    try:
        return loads(read_regular(path, max_bytes=_SNAPSHOT_MAX_BYTES))
    except (OSError, ValueError):
        return None


# -- the state of one map / search ---------------------------------------------------------------
def _grid_of(d: dict[str, Any]) -> Any:
    from castrig.explore.gridmap import Grid

    return Grid([float(x) for x in d["rh"]], [float(x) for x in d["concentration"]], [float(x) for x in d["volume"]],
                float(d["flow_slpm"]), [int(s) for s in d["seeds"]])


def _cells_json(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from castrig.explore.gridmap import cells

    out = []
    for (rh, c, v), cell in sorted(cells(results).items()):
        d, cv = cell.mean(cell.d), cell.mean(cell.cv)
        out.append({"rh_pct": rh, "concentration_mg_ml": c, "cast_volume_ml": v, "n": cell.n, "d_um": d, "cv": cv,
                    "grades_met": dict(sorted(cell.met.items())),
                    "passes": sorted(g for g, k in cell.met.items() if k == cell.n)})
    return out


#: What reading a folder raises once it was moved, renamed or deleted between the server's check and
#: its read (the journal's storage opens its path again on every read): that folder is not there
GONE = (FileNotFoundError, NotADirectoryError)


def entries(root: Path, journals: Journals) -> list[dict[str, Any]]:
    """Every map and search under ``DATA/explore``: one row per (folder, study); a folder moved away
    while it is read is left out (the next listing shows it under its new name)."""
    base = explore_dir(root)
    rows: list[dict[str, Any]] = []
    try:
        children = sorted(p for p in base.iterdir() if NAME_RE.match(p.name))
    except OSError:
        return []
    for p in children:
        try:
            rows += _folder_rows(root, journals, p)
        except GONE:
            journals.forget(str((p / "study.journal").resolve()))
    return rows


def _folder_rows(root: Path, journals: Journals, p: Path) -> list[dict[str, Any]]:
    """The rows of one folder under ``DATA/explore`` (none: not a map or search); :data:`GONE`
    if it went while it was read."""
    if folder_of(root, p.name) is None:
        return []
    try:
        studies = journals.studies(p / "study.journal")
    except GONE:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged journal: listed, with the reason
        return [{"name": p.name, "study": None, "kind": "damaged", "note": damaged_note(root, exc)}]
    rows = [{"name": p.name, "study": s.study_name, "kind": kind, "storage": "journal", **_study_state(s, kind)["counts"]}
            for s in studies if (kind := _kind(s)) in ("map", "search")]
    problem = _unreadable(p, studies)
    if problem is not None:  # listed with the reason, as a damaged journal is (one folder took /explore down: 500)
        return [*rows, {"name": p.name, "study": None, "kind": "damaged", "note": problem}]
    if not studies and (p / "map.json").is_file():
        snap = _read_json(p / "map.json") or {}
        try:
            asked = len(_grid_of(snap["grid"]).points())
        except (KeyError, TypeError, ValueError):
            asked = None
        rows.append({"name": p.name, "study": None, "kind": "map", "storage": "snapshot", "asked": asked,
                     "done": len(snap.get("results") or []), "running": 0, "waiting": 0, "failed": 0})
    elif not studies and (p / "search.json").is_file():
        from castrig.explore.journal import SearchFolder

        trials = SearchFolder(p).trials()
        settings = _read_json(p / "search.json") or {}
        rows.append({"name": p.name, "study": None, "kind": "search", "storage": "folder",
                     "asked": settings.get("budget"), "done": sum(t.done for t in trials),
                     "running": sum(not t.done for t in trials), "waiting": 0, "failed": 0})
    return rows


def _unreadable(folder: Path, studies: list[Any]) -> str | None:
    """Why the folder's ``map.json`` snapshot or one-process ``search.json`` (what is shown when it
    has no study) cannot be read (None: it can): not JSON, cut short, not an object, no grid."""
    if studies:
        return None
    name = "map.json" if (folder / "map.json").is_file() else "search.json" if (folder / "search.json").is_file() else None
    if name is None:
        return None
    data = _read_json(folder / name)
    if not isinstance(data, dict):
        return f"DATA/explore/{folder.name}/{name} cannot be read (not a JSON object: damaged or cut short)"
    if name == "map.json":
        try:
            _grid_of(data["grid"])
            list(data.get("results") or [])
        except (KeyError, TypeError, ValueError):
            return f"DATA/explore/{folder.name}/map.json cannot be read (no usable grid or results: damaged or cut short)"
    return None


def damaged_note(root: Path, exc: BaseException) -> str:
    """Why a folder's study.journal cannot be read, without the server's paths."""
    from castrig.explore.distributed import DamagedJournal

    text = str(exc) if isinstance(exc, DamagedJournal) else f"study.journal cannot be read: {exc}"
    return text.replace(str(explore_dir(root)), "DATA/explore")


def _study_state(study: _Study, kind: str) -> dict[str, Any]:
    from castrig.explore.distributed import SETTINGS_ATTR, map_results, progress

    pr = progress(study)
    settings = study.user_attrs.get(SETTINGS_ATTR) or {}
    if kind == "map":
        from castrig.explore.gridmap import Grid

        # a map study gets its grid a moment after it is created (start_map): until then, an empty grid
        grid = _grid_of(settings["grid"]) if settings.get("grid") else Grid([], [], [], 0.0, [])
        results = map_results(study)
        asked, done = grid.asked_and_done(results)
        counts = {"asked": asked, "done": done, "running": pr.running, "waiting": pr.waiting, "failed": pr.failed}
        return {"counts": counts, "grid": grid, "results": results}
    counts = {"asked": settings.get("budget"), "done": pr.done, "running": pr.running, "waiting": pr.waiting, "failed": pr.failed}
    return {"counts": counts}


def pick_study(root: Path, journals: Journals, name: str, wanted: str | None) -> tuple[Path, _Study | None, str] | None:
    """(folder, study or None for a snapshot / one-process search, kind); None: 404."""
    folder = folder_of(root, name)
    if folder is None:
        return None
    studies = [s for s in journals.studies(folder / "study.journal") if _kind(s) in ("map", "search")]
    if studies:
        if wanted:
            chosen = next((s for s in studies if s.study_name == wanted), None)
            if chosen is None:
                return None
        else:  # the one named like the folder (castrig's default), else the first map, else the first
            chosen = next((s for s in studies if s.study_name == name), None) \
                or next((s for s in studies if _kind(s) == "map"), studies[0])
        return folder, chosen, _kind(chosen)
    if wanted:
        return None
    if (folder / "map.json").is_file():
        return folder, None, "map"
    return folder, None, "search"


class RealCache:
    """The real rig's membranes (:func:`castrig.explore.gridmap.real_membranes`), read at most every
    :data:`REAL_TTL_S` seconds (the run folders do not change as fast as a map fills in)."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._at = -1e9
        self._value: list[Any] = []

    def get(self) -> list[Any]:
        from castrig.explore.gridmap import real_membranes

        with self._lock:
            if time.monotonic() - self._at > REAL_TTL_S:
                self._value = real_membranes(self.root)
                self._at = time.monotonic()
            return list(self._value)


def map_state(root: Path, journals: Journals, real: RealCache, name: str, wanted: str | None) -> dict[str, Any] | None:
    """Everything the page and the API show about one map or search (None: 404)."""
    picked = pick_study(root, journals, name, wanted)
    if picked is None:
        return None
    folder, study, kind = picked
    others = [s.study_name for s in journals.studies(folder / "study.journal") if _kind(s) in ("map", "search")]
    problem = _unreadable(folder, others)
    if problem is not None:  # 409 naming the file, as for a damaged journal (a snapshot's was 404 "no such map")
        raise Damaged(problem)
    base: dict[str, Any] = {"name": name, "kind": kind, "study": None if study is None else study.study_name, "studies": others}
    if kind == "map":
        if study is not None:
            st = _study_state(study, "map")
            grid, results, counts, storage = st["grid"], st["results"], st["counts"], "journal"
        else:
            snap = _read_json(folder / "map.json") or {}
            try:
                grid = _grid_of(snap["grid"])
            except (KeyError, TypeError, ValueError):
                return None
            results = list(snap.get("results") or [])
            asked, done = grid.asked_and_done(results)
            counts, storage = {"asked": asked, "done": done, "running": 0, "waiting": 0, "failed": 0}, "snapshot"
        reals = real.get()
        live = storage == "journal" and (counts["done"] < counts["asked"] or counts["running"] > 0 or counts["waiting"] > 0)
        return {**base, "storage": storage, **counts, "missing": counts["asked"] - counts["done"], "live": live,
                "complete": counts["done"] >= counts["asked"] and counts["running"] == 0 and counts["waiting"] == 0,
                "grid": grid.to_dict(), "cells": _cells_json(results),
                "real": [{"run_id": r.run_id, "membrane_id": r.membrane_id, "rh_pct": r.rh_pct, "concentration_mg_ml": r.concentration_mg_ml,
                          "cast_volume_ml": r.cast_volume_ml, "grades_met": r.grades_met} for r in reals],
                "_grid": grid, "_results": results, "_real": reals}
    # a search
    settings, trials = _search_trials(folder, study)
    done = [t for t in trials if t.outcome is not None]
    counts = {"asked": None if settings is None else settings.budget, "done": len(done),
              "running": sum(t.outcome is None for t in trials), "waiting": 0, "failed": 0}
    if study is not None:
        counts.update({k: v for k, v in _study_state(study, "search")["counts"].items() if k != "asked"})
    tol = 0.1 if settings is None else settings.tolerance
    found = any(t.kind == "confirm" and t.outcome.hit(tol) for t in done)  # type: ignore[union-attr]
    best = min(done, key=lambda t: t.outcome.score) if done else None  # type: ignore[union-attr]
    return {**base, "storage": "journal" if study is not None else "folder", **counts, "found": found,
            "live": not found and (counts["running"] > 0 or counts["waiting"] > 0),
            "grade": None if settings is None else settings.grade, "target_d_um": None if settings is None else settings.target_d_um,
            "best": None if best is None else {"trial": best.number, "params": best.params, "d_um": best.outcome.d_um,  # type: ignore[union-attr]
                                               "score": best.outcome.score, "grades_met": best.outcome.grades_met},  # type: ignore[union-attr]
            "_settings": settings, "_trials": trials}


def _search_trials(folder: Path, study: _Study | None) -> tuple[Any, list[Any]]:
    from castrig.explore.journal import SearchFolder, SearchSettings

    if study is not None:
        from castrig.explore.distributed import SETTINGS_ATTR, as_trials

        raw = dict(study.user_attrs.get(SETTINGS_ATTR) or {})
        raw.pop("grid", None)
        try:
            settings = SearchSettings.model_validate(raw)
        except Exception:  # noqa: BLE001 - a study of another castrig version: counts only
            settings = None
        return settings, as_trials(study)
    sf = SearchFolder(folder)
    try:
        settings = sf.load_settings()
    except Exception:  # noqa: BLE001
        settings = None
    return settings, sf.trials()


def public(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if not k.startswith("_")}


# -- rendering -----------------------------------------------------------------------------------
def panels_html(state: dict[str, Any]) -> str:
    from castrig.explore.gridmap import map_body

    return map_body(state["_grid"], state["_results"], real=state["_real"])


def _counts_line(s: dict[str, Any]) -> str:
    asked = "?" if s.get("asked") is None else str(s["asked"])
    return (f"{s['done']} of {asked} points done; {s['running']} running, {s['waiting']} queued, {s['failed']} failed"
            + (" — filling in" if s.get("live") else ""))


def list_html(root: Path, rows: list[dict[str, Any]]) -> str:
    e = html.escape
    trs = []
    for r in rows:
        q = "" if r.get("study") in (None, r["name"]) else "?study=" + e(quote(r["study"], safe=""))
        counts = "" if r["kind"] == "damaged" else _counts_line(r)
        trs.append(f"<tr><td><a href='/explore/{e(quote(r['name'], safe=''))}{q}'>{e(r['name'])}</a></td><td>{e(str(r.get('study') or ''))}</td>"
                   f"<td>{e(r['kind'])}</td><td>{e(str(r.get('storage') or ''))}</td><td>{e(counts or str(r.get('note', '')))}</td></tr>")
    table = ("<table id='explore'><thead><tr><th>folder</th><th>study</th><th>kind</th><th>storage</th><th>progress</th></tr></thead>"
             "<tbody>" + "".join(trs) + "</tbody></table>")
    if not rows:
        table += (f"<p>no maps or searches under {e(str(explore_dir(root)))} "
                  "(castrig explore map --rh A:B:STEP --concentration A:B:STEP makes one)</p>")
    return table


def map_page_body(state: dict[str, Any]) -> str:
    e = html.escape
    name, study = state["name"], state.get("study")
    others = [s for s in state.get("studies", []) if s != study]
    other = ("<p>other studies in this folder: " + ", ".join(
        f"<a href='/explore/{e(quote(name, safe=''))}?study={e(quote(s, safe=''))}'>{e(s)}</a>" for s in others) + "</p>") if others else ""
    attrs = (f"data-name='{e(name)}' data-study='{e(study or '')}' data-live='{'1' if state.get('live') else '0'}' "
             f"data-done='{state['done']}' data-refresh-s='{REFRESH_S:g}'")
    src = {"journal": "the study journal (live)", "snapshot": "map.json (a snapshot: written when castrig explore map last stopped)",
           "folder": "the search folder"}.get(state["storage"], state["storage"])
    head = (f"<p>study <code>{e(str(study or '—'))}</code>, read from {e(src)}. "
            f"<span id='explore-counts'>{e(_counts_line(state))}</span></p>{other}")
    if state["kind"] == "map":
        return f"<div id='explore' {attrs}>{head}<div id='explore-map'>{panels_html(state)}</div></div>"
    q = "" if study in (None, name) else "?study=" + e(quote(study, safe=''))
    best = state.get("best")
    best_txt = "none yet" if best is None else (f"trial {best['trial']}: D {best['d_um']:.2f} µm, grades met "
                                                f"{', '.join(best['grades_met']) or 'none'}" if best.get("d_um") else f"trial {best['trial']}")
    found = "found" if state.get("found") else "not found yet"
    return (f"<div id='explore' {attrs}>{head}<p>search for {e(str(state.get('grade')))} at D {e(str(state.get('target_d_um')))} µm: "
            f"{found}; best {e(best_txt)}</p>"
            f"<iframe id='explore-frame' title='search map' src='/explore/{e(name)}/map.html{q}' "
            "></iframe></div>")


SCRIPT = """\
// castrig serve: an explore page filling in. Asks the API every few seconds while points are missing;
// when the count of points done changes, swaps in the panels (rendered and escaped by the server).
(function () {
  const root = document.getElementById('explore');
  if (!root) return;
  const name = root.dataset.name, study = root.dataset.study;
  const q = study ? '?study=' + encodeURIComponent(study) : '';
  let done = root.dataset.done, live = root.dataset.live === '1';
  const period = 1000 * parseFloat(root.dataset.refreshS || '3');
  async function tick() {
    try {
      const r = await fetch('/api/explore/' + encodeURIComponent(name) + q, {cache: 'no-store'});
      if (r.ok) {
        const s = await r.json();
        const counts = document.getElementById('explore-counts');
        if (counts) counts.textContent = s.done + ' of ' + (s.asked == null ? '?' : s.asked) + ' points done; ' + s.running +
          ' running, ' + s.waiting + ' queued, ' + s.failed + ' failed' + (s.live ? ' — filling in' : '');
        if (String(s.done) !== String(done)) {
          done = s.done;
          const box = document.getElementById('explore-map');
          if (box) {
            const p = await fetch('/explore/' + encodeURIComponent(name) + '/panels' + q, {cache: 'no-store'});
            if (p.ok) box.innerHTML = await p.text();
          }
          const frame = document.getElementById('explore-frame');
          if (frame) frame.src = frame.src;
        }
        root.dataset.done = String(done);
        live = !!s.live;
        root.dataset.live = live ? '1' : '0';
      }
    } catch (e) { /* the server restarts: try again next time */ }
    if (live) setTimeout(tick, period);
  }
  if (live) setTimeout(tick, period);
})();
"""


# -- routes --------------------------------------------------------------------------------------
class Damaged(Exception):
    """A map or search whose study journal (or snapshot, or search.json) cannot be read: 409 with the
    reason (paths as DATA/explore)."""


def routes(root: Path, *, may_read: Callable[[Request], bool], refuse: Callable[[], Response],
           login_page: Callable[[], str], page: Callable[..., str],
           journals_cache_bytes: int = JOURNALS_CACHE_BYTES) -> list[Route]:
    """The explore routes, with the app's read check and page frame; at most
    ``journals_cache_bytes`` of study journals kept replayed (:data:`JOURNALS_CACHE_BYTES`)."""
    journals = Journals(journals_cache_bytes)
    real = RealCache(root)
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

    def not_found_page(name: str) -> Response:
        return HTMLResponse(page("no such map", "<p>No map or search named <code>" + html.escape(name) + "</code> under "
                                 + html.escape(str(explore_dir(root))) + ".</p>"), status_code=404, headers=headers)

    async def read_state(request: Request) -> dict[str, Any] | None:
        """The map or search the request names (None: 404); :class:`Damaged` if its journal cannot be read."""
        from castrig.explore.distributed import DamagedJournal

        name = request.path_params["name"]
        wanted = request.query_params.get("study") or None
        try:
            return await anyio.to_thread.run_sync(map_state, root, journals, real, name, wanted)
        except DamagedJournal as exc:  # named, as the list names it: a 500 with a traceback in the log before
            raise Damaged(damaged_note(root, exc)) from None
        except GONE:  # moved, renamed or deleted while read (a 500 with a traceback before): no such map
            journals.forget(str((explore_dir(root) / name / "study.journal").resolve()))
            return None

    async def list_page(request: Request) -> Response:
        if not may_read(request):
            return HTMLResponse(login_page(), status_code=401)
        rows = await anyio.to_thread.run_sync(entries, root, journals)
        body = list_html(root, rows)
        live = any(r.get("kind") != "damaged" and ((r.get("running") or 0) > 0 or (r.get("waiting") or 0) > 0) for r in rows)
        script = "<script src='/static/explore.js'></script>"
        if live:  # the list itself: reload while something fills in (the app's runs page does the same)
            body = f"<div id='explore-list' data-reload-s='10'>{body}</div>"
        return HTMLResponse(page(f"explore in {explore_dir(root)}", body, script=script), headers=headers)

    async def map_page(request: Request) -> Response:
        if not may_read(request):
            return HTMLResponse(login_page(), status_code=401)
        try:
            state = await read_state(request)
        except Damaged as exc:
            return HTMLResponse(page("damaged map or search", "<p class='warn'>" + html.escape(str(exc)) + "</p>"),
                                status_code=409, headers=headers)
        if state is None:
            return not_found_page(request.path_params["name"])
        title = f"{state['kind']} {state['name']}" + (f" ({state['study']})" if state.get("study") not in (None, state["name"]) else "")
        return HTMLResponse(page(title, map_page_body(state), script="<script src='/static/explore.js'></script>"), headers=headers)

    async def panels(request: Request) -> Response:
        if not may_read(request):
            return refuse()
        try:
            state = await read_state(request)
        except Damaged as exc:
            return HTMLResponse("<p>" + html.escape(str(exc)) + "</p>", status_code=409, headers=headers)
        if state is None or state["kind"] != "map":
            return HTMLResponse("<p>no such map</p>", status_code=404, headers=headers)
        return HTMLResponse(await anyio.to_thread.run_sync(panels_html, state), headers={**headers, "Cache-Control": "no-store"})

    async def search_frame(request: Request) -> Response:
        if not may_read(request):
            return refuse()
        try:
            state = await read_state(request)
        except Damaged as exc:
            return HTMLResponse("<p>" + html.escape(str(exc)) + "</p>", status_code=409, headers={"Content-Security-Policy": FRAME_CSP})
        if state is None or state["kind"] != "search" or state.get("_settings") is None:
            return HTMLResponse("<p>no such search</p>", status_code=404, headers={"Content-Security-Policy": FRAME_CSP,
                                                                                "X-Frame-Options": "SAMEORIGIN"})
        from castrig.explore.plots import map_html

        text = await anyio.to_thread.run_sync(map_html, state["_settings"], state["_trials"])
        return HTMLResponse(text, headers={"Content-Security-Policy": FRAME_CSP, "X-Content-Type-Options": "nosniff",
                                           "X-Frame-Options": "SAMEORIGIN", "Cache-Control": "no-store"})

    async def api_list(request: Request) -> Response:
        if not may_read(request):
            return refuse()
        return JSONResponse(await anyio.to_thread.run_sync(entries, root, journals))

    async def api_map(request: Request) -> Response:
        if not may_read(request):
            return refuse()
        try:
            state = await read_state(request)
        except Damaged as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        if state is None:
            return JSONResponse({"error": "no such map or search"}, status_code=404)
        return JSONResponse(public(state), headers={"Cache-Control": "no-store"})

    async def script(request: Request) -> Response:
        return Response(SCRIPT + _LIST_SCRIPT, media_type="text/javascript", headers={"X-Content-Type-Options": "nosniff"})

    return [
        Route("/static/explore.js", script),
        Route("/explore", list_page),
        Route("/explore/{name}", map_page),
        Route("/explore/{name}/panels", panels),
        Route("/explore/{name}/map.html", search_frame),
        Route("/api/explore", api_list),
        Route("/api/explore/{name}", api_map),
    ]


_LIST_SCRIPT = """\
(function () {
  const list = document.getElementById('explore-list');
  if (list) setTimeout(() => location.reload(), 1000 * parseFloat(list.dataset.reloadS || '10'));
})();
"""
