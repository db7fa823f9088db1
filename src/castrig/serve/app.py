"""``castrig serve``: the operator's web application over a data root.

Starlette on uvicorn. Why: Starlette is a small ASGI toolkit (routing, responses, a streaming
response for server-sent events, static files) with one dependency (anyio) and no template,
ORM or schema layer to learn; FastAPI would add pydantic request models and OpenAPI pages we do
not need for eight endpoints. uvicorn is the standard ASGI server and stops cleanly on
SIGINT/SIGTERM. Server-sent events, not websockets: the page only listens, SSE reconnects by
itself and goes through any proxy as plain HTTP.

What it does (DESIGN §1): reads the store — run folders, their SQLite opened read-only, the
runner's ``control/status.json`` — and writes operator commands into a run's control channel
(:mod:`castrig.store.commands`). It never talks to a device; killing it never touches a run.

Security: binds 127.0.0.1 by default. Actions (pause, resume, abort) need
``Authorization: Bearer <token>`` — a token file under ``DATA/.castrig/tokens/`` (mode 0600,
made on first start; every file there is a token, named by its file name; a read-only data root
keeps its token in the user's state folder, see :func:`token_dir_for`); without one they
answer 401 and change nothing. Tokens are compared in constant time. On a non-loopback address
reading needs the token too (header, or the cookie ``/login`` sets — a key that reads, not the token: :func:`read_key`; its form posts the token, kept out of the browser's history; ``?token=…`` for a script). On loopback,
where reading needs no token, only a Host header naming loopback (localhost, 127.0.0.0/8, [::1],
any port; parsed strictly: a host and a port, nothing more) is answered: a web page that rebinds its own name to 127.0.0.1 (DNS rebinding) gets 400
and no data. Query numbers (cursors, image ids) out of form or range are 400/404; bad runs-list
filters are 400 naming them; a damaged run folder's report is 409 with the reason ``castrig
report`` gives; an action on a run folder this server cannot write (a read-only mount of the
rig's data root) is 503 naming the folder, and nothing is sent. Everything rendered from files
(run names, labels, operators, messages) is escaped; pages load only castrig's own scripts and styles (a lab PC is often offline), and every answer says so
(:class:`SecurityHeaders`: a Content-Security-Policy with no inline script, nosniff, no referrer, no framing). What one
server holds is bounded (:mod:`castrig.serve.guard`): connections, and the time to send a
request (slowloris).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import html
import ipaddress
import json
import math
import os
import re
import secrets
import stat
import sys
import urllib.parse
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from castrig import jsontext
from castrig.oslock import process_stopped
from castrig.serve.html_response import HTMLResponse
from castrig.serve.json_response import JSONResponse
from castrig.store import live as R
from castrig.store.commands import ACTIONS, ChannelRefused, answer_of, send_command, withdraw_command
from castrig.store.lock import run_holder
from castrig.store.sqlite_connect import DamagedRun
from castrig.store.summary_cache import SummaryCache

TOKEN_DIR = Path(".castrig") / "tokens"
DEFAULT_TOKEN = "operator"
#: The login cookie's name is this and the port the browser reached the server on (:func:`cookie_name`).
COOKIE = "castrig_token"
STREAM_PERIOD_S = 1.0
#: Requests that may wait for the one decoding slot (a report, a saved page, a micrograph) before
#: more are answered 503: each waits for all before it, and a client that keeps asking is no
#: reason for the operator's page to wait minutes.
DECODE_QUEUE = 16
_STATIC = ("live.js", "live.css")
#: The pages' Content-Security-Policy: castrig's own scripts, styles, images and API, the
#: micrographs' overlays (``data:`` PNGs); no inline script or style, no frame around them.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: What every answer carries (a page sets its own policy first where it needs another: explore's)
SECURITY_HEADERS = {"content-security-policy": PAGE_CSP, "x-content-type-options": "nosniff",
                    "referrer-policy": "no-referrer", "x-frame-options": "DENY"}
#: The runs list reloads itself (a static script: the policy allows no inline one)
RELOAD_SCRIPT = """\
(function () {
  const box = document.querySelector('[data-reload-s]');
  if (box) setTimeout(() => location.reload(), 1000 * parseFloat(box.dataset.reloadS || '10'));
})();
"""


# -- tokens ------------------------------------------------------------------------------------
def ensure_token(token_dir: Path, name: str = DEFAULT_TOKEN) -> Path:
    """The token file ``TOKEN_DIR/NAME`` (mode 0600, its folders 0700), made on first start."""
    d = Path(token_dir)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d.parent, 0o700)
    os.chmod(d, 0o700)
    path = d / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path


def state_token_dir(root: Path) -> Path:
    """Where the tokens of a data root that cannot hold them (read-only) are kept: the user's
    state folder (``$XDG_STATE_HOME`` or ``~/.local/state``), one folder per data root."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    resolved = str(Path(root).resolve())
    tag = hashlib.sha256(resolved.encode()).hexdigest()[:12]
    return base / "castrig" / "tokens" / f"{Path(resolved).name or 'root'}-{tag}"


def _readable_file(path: Path) -> bool:
    """Whether ``path`` is a file this user can read; a folder on the way closed to them (another
    user's ``DATA/.castrig``, 0700: Python 3.11's ``is_file`` raises PermissionError) is a no."""
    from castrig.regular import open_regular

    fh = open_regular(path)  # (a named pipe by that name, opened the ordinary way, waited for a writer)
    if fh is None:
        return False
    fh.close()
    return True


def token_dir_for(root: Path) -> tuple[Path, Path, str]:
    """``(token_dir, token_file, note)`` for serving ``root``: ``DATA/.castrig/tokens`` (made on
    first start); on a data root that cannot be written (a read-only mount, another user's runs)
    a token already there, else one in :func:`state_token_dir` with a note saying so. Neither:
    BadInput naming both folders."""
    from castrig.errors import BadInput

    d = Path(root) / TOKEN_DIR
    for p in (d.parent, d):  # (the data root itself may be a link: it is the operator's to name)
        try:
            linked = p.is_symlink()
        except OSError:  # (another user's DATA/.castrig, 0700: not ours to look in; said below)
            linked = False
        if linked:
            # whoever may write the data root could point it anywhere: serve made the folder it led to
            # 0700 (a home folder, `/` for a root server) and kept the operator token there
            raise BadInput(f"--data {root}: {p} is a symbolic link (to {os.readlink(p)}); castrig keeps its tokens only in "
                           "a real folder of the data root: remove the link and start again", file=str(p))
    try:
        return d, ensure_token(d), ""
    except OSError as exc:
        why = exc.strerror or str(exc)
    if _readable_file(d / DEFAULT_TOKEN) and token_problem(d / DEFAULT_TOKEN) is None:
        return d, d / DEFAULT_TOKEN, ""  # the rig's own token, readable: it still works here
    # (one this user may not take — another user's, read by root — cannot be fixed on a data root
    # this user cannot write: the user's own token, as for a root without one)
    other = state_token_dir(root)
    try:
        path = ensure_token(other)
    except OSError as exc2:
        raise BadInput(f"--data {root}: cannot keep the operator token in {d} ({why}) nor in {other} "
                       f"({exc2.strerror or exc2}); set XDG_STATE_HOME to a folder you can write", file=str(root)) from None
    note = (f"note: cannot write {d} ({why}): serving {root} read-only, the token is in {other}; "
            "pause, resume and abort cannot reach runs there")
    return other, path, note


#: The shortest token file taken: a token is a random secret (castrig makes 43 characters of
#: base64url, 256 bits); a hand-made ``x`` paused a live run over the network.
MIN_TOKEN_CHARS = 22


def token_problem(path: Path) -> str | None:
    """Why the token file ``path`` is not taken, or None: not a regular file, open to other users
    (group or world bits), owned by another user, or shorter than :data:`MIN_TOKEN_CHARS`."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_mode & 0o077:
            return f"open to other users (mode {stat.S_IMODE(st.st_mode):04o}; chmod 600 it)"
        if st.st_uid != os.geteuid():
            # (a server run as root read another user's 0600 file: whoever may write the data root put
            # their own DATA/.castrig there, and the token they chose paused and aborted runs)
            return f"owned by another user (uid {st.st_uid}, not {os.geteuid()}): whoever owns it knows the token"
        secret = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if len(secret) < MIN_TOKEN_CHARS:
        return (f"holds {len(secret)} characters, fewer than {MIN_TOKEN_CHARS} (a token is a random secret: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)")
    return None


def read_key(secret: str) -> str:
    """What the login cookie holds for the token ``secret``: a key that reads, never the token.

    The cookie held the token itself; a browser sends a cookie to every port of the host that set
    it (cookies know no ports), so any web server another user of the rig PC runs there received
    the operator token with each visit, and with it could pause or abort runs. Actions take only
    the token (``Authorization: Bearer``), so what leaks this way reads and no more."""
    return hmac.new(secret.encode(), b"castrig serve: read", hashlib.sha256).hexdigest()


def token_name(token_dir: Path, presented: str | None, *, as_cookie: bool = False) -> str | None:
    """The name of the token in ``token_dir`` that ``presented`` matches (constant-time compare;
    ``as_cookie``: its :func:`read_key`), else None; a file :func:`token_problem` finds fault with
    is no token."""
    if not presented:
        return None
    d = Path(token_dir)
    found = None
    for p in sorted(d.iterdir()) if d.is_dir() else []:
        if token_problem(p) is not None:
            continue
        try:
            secret = p.read_text().strip()
        except OSError:
            continue
        if secret and hmac.compare_digest((read_key(secret) if as_cookie else secret).encode(), presented.encode()):
            found = p.name  # keep comparing: the time taken does not say which file matched
    return found


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the application ---------------------------------------------------------------------------
def create_app(root: Path, *, loopback: bool = True, token_dir: Path | None = None,
               explore_cache_bytes: int | None = None) -> Starlette:
    """The app; ``explore_cache_bytes``: study journals kept replayed at most
    (default :data:`castrig.serve.explore.JOURNALS_CACHE_BYTES`)."""
    root = Path(root)
    tokens = Path(token_dir) if token_dir is not None else root / TOKEN_DIR
    # what decodes micrographs (a report, a saved page, an image) runs one at a time: each may hold
    # up to the image limit decoded, and four report requests at once, no token needed on
    # loopback, took the server to 6.4 GB (six 9990² micrographs a run)
    decoding = anyio.CapacityLimiter(1)
    waiting = [0]
    rows_of = SummaryCache(R.summary)  # the runs list's rows of ended runs, kept while their files are unchanged

    async def decoded(request: Request, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on a worker thread in the decoding slot, for a client still there; a
        Response (503) when :data:`DECODE_QUEUE` requests already wait, None when the client went
        away while this one waited. Requests a client sent and abandoned decoded one after another
        all the same: 20 of them made the next report wait 19 s, 300 made it wait 325 s (no token
        needed on loopback)."""
        if waiting[0] >= DECODE_QUEUE:
            return PlainTextResponse("busy: other reports and micrographs are being prepared; try again shortly",
                                     status_code=503, headers={"Retry-After": "5"})
        waiting[0] += 1
        try:
            async with decoding:
                if await request.is_disconnected():
                    return None
                return await anyio.to_thread.run_sync(fn, *args)
        finally:
            waiting[0] -= 1

    def bearer(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def may_read(request: Request) -> bool:
        return (loopback or token_name(tokens, bearer(request)) is not None
                or token_name(tokens, request.cookies.get(cookie_name(request)), as_cookie=True) is not None)

    def refuse() -> Response:
        return JSONResponse({"error": "unauthorized: give Authorization: Bearer <token> (the token_file castrig serve printed)"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    def bad_query(exc: ValueError) -> Response:
        return JSONResponse({"error": f"{exc} (since: a run time in seconds; after, events_after: a cursor, "
                                      "a whole number ≥ 0)"}, status_code=400)

    def damaged(exc: DamagedRun) -> str:
        """What `castrig report` says of a damaged run folder, without the server's paths."""
        return f"{exc.run_dir.name}: damaged run folder: {exc.reason}".replace(str(root), "DATA")

    def run_or_404(uid: str) -> Path | None:
        return R.find_run(root, uid)

    async def api_runs(request: Request) -> Response:
        if not may_read(request):
            return refuse()
        q = dict(request.query_params)
        try:
            limit = None if q.get("all") else _limit(q.get("limit"))
            rows = await anyio.to_thread.run_sync(_filtered_runs, root, q, rows_of.get, None if limit is None else limit + 1)
        except BadFilter as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        more = limit is not None and len(rows) > limit  # (one more was read: whether older ones are left)
        rows = rows[:limit] if more else rows
        answer = JSONResponse([{"uid": r["uid"], "status": r["status"], "recipe": r["recipe"], "started_utc": r["started_utc"],
                                "step": r["step"], "membranes": r["membranes"],
                                "membrane_counts": r["membrane_counts"], "grades": r["grades"],
                                "operator": r["operator"]} for r in rows])
        if more:
            answer.headers["Link"] = f'<{_next_runs_page(request.url.path, q, rows[-1]["uid"])}>; rel="next"'
        return answer

    async def api_run(request: Request) -> Response:
        if not may_read(request):
            return refuse()
        run_dir = run_or_404(request.path_params["uid"])
        if run_dir is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        return JSONResponse(await anyio.to_thread.run_sync(R.detail, run_dir))

    async def api_samples(request: Request) -> Response:
        if not may_read(request):
            return refuse()
        run_dir = run_or_404(request.path_params["uid"])
        if run_dir is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        q = request.query_params
        channels = [c for c in q.getlist("channel") for c in c.split(",") if c] or None
        try:
            since = _since(q)
            after = _cursor(q, "after")
        except ValueError as exc:
            return bad_query(exc)
        return JSONResponse(await anyio.to_thread.run_sync(lambda: R.samples(run_dir, channels, since, after)))

    async def api_events(request: Request) -> Response:
        if not may_read(request):
            return refuse()
        run_dir = run_or_404(request.path_params["uid"])
        if run_dir is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        try:
            after = _cursor(request.query_params, "after")
        except ValueError as exc:
            return bad_query(exc)
        def read() -> list[dict[str, Any]]:
            with R.open_ro(run_dir) as db:
                return R.events(db, after)
        return JSONResponse(await anyio.to_thread.run_sync(read))

    async def api_action(request: Request) -> Response:
        action = request.path_params["action"]
        who = token_name(tokens, bearer(request))
        if who is None:
            return refuse()
        run_dir = run_or_404(request.path_params["uid"])
        if run_dir is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        if action not in ACTIONS:
            return JSONResponse({"error": f"unknown action {action!r}"}, status_code=404)
        summary = await anyio.to_thread.run_sync(R.summary, run_dir)
        if summary["status"] not in R.LIVE_STATES:
            return JSONResponse({"error": f"the run is not running (status {summary['status']})"}, status_code=409)
        holder = await anyio.to_thread.run_sync(run_holder, run_dir)  # (None: a run on another host, say)
        try:
            cmd = await anyio.to_thread.run_sync(send_command, run_dir, action, f"token:{who}")
        except ChannelRefused as exc:  # RUN/control a link (to another run's channel): nothing sent
            return JSONResponse({"error": str(exc).replace(str(root), "DATA")}, status_code=409)
        except OSError as exc:  # a read-only view of the data root (a mount), a full disk: this server cannot act
            return JSONResponse({"error": control_unwritable(run_dir, exc)}, status_code=503)
        answer, gone, frozen = None, False, False
        pid = (holder or {}).get("pid")
        with anyio.move_on_after(10):
            while answer is None and not gone and not frozen:
                answer = await anyio.to_thread.run_sync(answer_of, run_dir, cmd)
                if answer is None and holder is not None and await anyio.to_thread.run_sync(run_holder, run_dir) is None:
                    answer = await anyio.to_thread.run_sync(answer_of, run_dir, cmd)  # (answered as it ended)
                    gone = answer is None
                # a stopped process reads nothing until it goes on: said now, not after 10 s as "not answered yet"
                frozen = answer is None and not gone and holder is not None and process_stopped(pid, holder.get("host"))
                if answer is None and not gone and not frozen:
                    await anyio.sleep(0.1)
        if gone:  # its process ended (or died) before it read the command: nobody will apply it
            return await anyio.to_thread.run_sync(_ended_before_read, root, run_dir, cmd, action)
        if answer is None:
            message = "sent; the runner has not answered yet"
            if frozen:
                message = (f"sent, but the runner's process {pid} is STOPPED (SIGSTOP or Ctrl-Z: nothing is being "
                           f"controlled); the {action} is applied the moment it goes on (kill -CONT {pid})")
            return JSONResponse({"id": cmd.id, "action": action, "by": cmd.by, "accepted": None,
                                 "message": message}, status_code=202)
        return JSONResponse(answer, status_code=200 if answer.get("accepted") else 409)

    async def stream(request: Request) -> Response:
        """Server-sent events: new samples, new events and the status, about once a second."""
        if not may_read(request):
            return refuse()
        run_dir = run_or_404(request.path_params["uid"])
        if run_dir is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        try:
            cursor = _cursor(request.query_params, "after")
            last_event = _cursor(request.query_params, "events_after")
        except ValueError as exc:
            return bad_query(exc)

        async def gen() -> AsyncIterator[str]:
            nonlocal cursor, last_event
            while True:
                def read() -> dict[str, Any]:
                    s = R.samples(run_dir, None, None, cursor, limit=50_000)
                    with R.open_ro(run_dir) as db:
                        ev = R.events(db, last_event)
                    run = R.detail(run_dir, with_recipe=False)
                    # each grade's status, not every bound of it (the report's part has those)
                    run["membrane_records"] = [R.membrane_glance(mb) for mb in run["membrane_records"]]
                    return {"samples": s, "events": ev, "run": run}
                msg = await anyio.to_thread.run_sync(read)
                cursor = msg["samples"]["cursor"]
                if msg["events"]:
                    last_event = msg["events"][-1]["id"]
                yield f"data: {jsontext.dumps(msg)}\n\n"
                if msg["run"]["status"] not in R.LIVE_STATES:
                    yield "event: end\ndata: {}\n\n"
                    return
                if await request.is_disconnected():
                    return
                await anyio.sleep(STREAM_PERIOD_S)

        return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def image(request: Request) -> Response:
        if not may_read(request):
            return refuse()
        run_dir = run_or_404(request.path_params["uid"])
        if run_dir is None:
            return PlainTextResponse("no such run", status_code=404)
        image_id = int(request.path_params["image_id"])
        if not 0 <= image_id <= _SQLITE_INT_MAX:  # no row has it (and SQLite cannot even be asked)
            return PlainTextResponse("no such image", status_code=404)
        data = await decoded(request, _image_png, run_dir, image_id)
        if isinstance(data, Response):
            return data
        if data is None:
            return PlainTextResponse("no such image", status_code=404)
        if isinstance(data, str):
            return PlainTextResponse(data, status_code=422)
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "reload.js":
            return Response(RELOAD_SCRIPT, media_type="text/javascript")
        if name not in _STATIC:
            return PlainTextResponse("not found", status_code=404)
        text = resources.files("castrig.report").joinpath("static", name).read_text()
        return Response(text, media_type="text/javascript" if name.endswith(".js") else "text/css")

    async def runs_page(request: Request) -> Response:
        if not may_read(request):
            return HTMLResponse(_login_page(), status_code=401)
        q = dict(request.query_params)
        newest = None if q.get("all") else PAGE_RUNS + 1  # (one more: whether older ones were left out)
        try:
            rows = await anyio.to_thread.run_sync(_filtered_runs, root, q, rows_of.get, newest)
        except BadFilter as exc:
            return HTMLResponse(_runs_html(root, [], q, problem=str(exc)), status_code=400)
        return HTMLResponse(_runs_html(root, rows[:PAGE_RUNS] if newest else rows, q,
                                       more=newest is not None and len(rows) > PAGE_RUNS))

    async def run_page(request: Request) -> Response:
        if not may_read(request):
            return HTMLResponse(_login_page(), status_code=401)
        uid = request.path_params["uid"]
        if run_or_404(uid) is None:
            return HTMLResponse(_page("no such run", "<p>No run named <code>" + html.escape(uid) + "</code>.</p>"), status_code=404)
        return HTMLResponse(_run_html(uid))

    async def saved_page(request: Request) -> Response:
        if not may_read(request):
            return refuse()
        run_dir = run_or_404(request.path_params["uid"])
        if run_dir is None:
            return PlainTextResponse("no such run", status_code=404)
        from castrig.serve.report import page_html

        try:
            text = await decoded(request, page_html, run_dir)
        except DamagedRun as exc:
            return PlainTextResponse(damaged(exc), status_code=409)
        if isinstance(text, Response):
            return text
        if text is None:  # the client went away
            return Response(status_code=204)
        from castrig.serve.report import page_csp

        return HTMLResponse(text, headers={"Content-Disposition": attachment(f"{run_dir.name}.html"),
                                           "Content-Security-Policy": page_csp()})

    async def api_report(request: Request) -> Response:
        """The report's part of the page (problems, steps, gaps, bands, membranes, micrographs, recipe)."""
        if not may_read(request):
            return refuse()
        run_dir = run_or_404(request.path_params["uid"])
        if run_dir is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        from castrig.serve.report import live_report_data

        try:
            data = await decoded(request, live_report_data, run_dir)
        except DamagedRun as exc:
            return JSONResponse({"error": damaged(exc)}, status_code=409)
        if isinstance(data, Response):
            return data
        return JSONResponse(data) if data is not None else Response(status_code=204)

    async def login(request: Request) -> Response:
        # the form posts the token (a GET puts it in the browser's history and any proxy's log);
        # /login?token=… still works for a script. The body: one short urlencoded field.
        tok = request.query_params.get("token", "")
        if request.method == "POST":
            body = b""
            try:
                async for chunk in request.stream():  # (no more than a token's worth is read)
                    body += chunk
                    if len(body) > 4096:
                        break
            except ClientDisconnect:  # the body cut short (the client went, or the request timed out):
                # no token to check, and no traceback in the server's log for it
                return PlainTextResponse("the request's body ended before its Content-Length\n", status_code=400)
            tok = urllib.parse.parse_qs(body[:4096].decode("ascii", "replace")).get("token", [""])[0]
        if token_name(tokens, tok) is None:
            return HTMLResponse(_login_page("that token is not valid"), status_code=401)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(cookie_name(request), read_key(tok.strip()), httponly=True, samesite="strict")  # (the token itself acts)
        return resp

    from castrig.serve.explore import JOURNALS_CACHE_BYTES, routes as explore_routes

    routes = [
        Route("/", runs_page),
        # the explore maps and searches under DATA/explore (castrig.serve.explore), before /static/{name}
        *explore_routes(root, may_read=may_read, refuse=refuse, login_page=_login_page, page=_page,
                        journals_cache_bytes=JOURNALS_CACHE_BYTES if explore_cache_bytes is None else explore_cache_bytes),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/runs/{uid}", run_page),
        Route("/runs/{uid}/images/{image_id:int}.png", image),
        Route("/runs/{uid}/report.html", saved_page),
        Route("/static/{name}", static),
        Route("/api/runs", api_runs),
        Route("/api/runs/{uid}", api_run),
        Route("/api/runs/{uid}/samples", api_samples),
        Route("/api/runs/{uid}/events", api_events),
        Route("/api/runs/{uid}/stream", stream),
        Route("/api/runs/{uid}/report", api_report),
        Route("/api/runs/{uid}/{action}", api_action, methods=["POST"]),
    ]
    # on loopback reading needs no token, so the Host header must name loopback: a web page the
    # operator visits could otherwise rebind its own name to 127.0.0.1 (DNS rebinding) and read
    # every run through the browser. Elsewhere reading needs the token, which no page can send.
    middleware = [Middleware(SecurityHeaders), *([Middleware(LoopbackHostOnly)] if loopback else [])]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={Exception: _server_error})


async def _server_error(request: Request, exc: Exception) -> Response:
    """A fault of ours (the traceback goes to stderr): answered by Starlette's outermost layer,
    outside :class:`SecurityHeaders`, so the answer carries the headers itself (a 500 went out
    without them)."""
    return PlainTextResponse("Internal Server Error", status_code=500, headers=SECURITY_HEADERS)


def _ended_before_read(root: Path, run_dir: Path, cmd: Any, action: str) -> Response:
    """409 for a command the run's process never read: it ended (or died) while the command was on
    its way. The command is taken back (a later resume would discard it); a crashed run's rig is as
    its dead process left it, and the answer says how to make it safe (`castrig abort`'s words).
    The 202 "sent; the runner has not answered yet" it had after 10 s read, on the page, as an
    abort under way."""
    withdraw_command(run_dir, cmd)
    ended = R.summary(run_dir)["status"]
    why = f"the run ended ({ended}) before it read the {action}; nothing to {action}, nothing sent"
    if ended == "crashed":
        why += R.crashed_hint(run_dir)
    return JSONResponse({"error": why.replace(str(root), "DATA"), "id": cmd.id, "action": action, "accepted": False},
                        status_code=409)


def control_unwritable(run_dir: Path, exc: OSError) -> str:
    """Why an action could not be sent: the run folder cannot be written (read-only file system,
    permissions) or the write failed (a full disk); names the folder and what the OS said."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"run folder not writable: {run_dir} ({why}); this server cannot send pause, resume or abort there "
                "(use a castrig serve, or the command line, on the rig's own data root)")
    return f"cannot write to the run folder {run_dir}'s control channel ({why}); nothing was sent"


#: SQLite's INTEGER is 64-bit signed: a larger row id or cursor is refused before a query
_SQLITE_INT_MAX = 2**63 - 1


def attachment(filename: str) -> str:
    """A Content-Disposition for a download named ``filename`` (RFC 6266): the name as it is in
    ``filename*`` (RFC 5987), and for older clients ``filename`` with all but letters, digits,
    ``.``, ``_`` and ``-`` replaced. A run folder's name went in raw: one outside Latin-1 ended the
    saved report in a 500, one holding ``"; filename*=…`` chose the download's name and extension."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _cursor(q: Any, name: str) -> int:
    """The query parameter ``name`` as a row cursor (a whole number 0 … 2⁶³−1; absent or empty: 0),
    else ValueError naming it."""
    raw = q.get(name) or "0"
    try:
        v = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw[:40]!r} is not a whole number") from None
    if not 0 <= v <= _SQLITE_INT_MAX:
        raise ValueError(f"{name}={raw[:40]!r} is out of range")
    return v


def _since(q: Any) -> float | None:
    raw = q.get("since")
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"since={raw[:40]!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"since={raw[:40]!r} is not finite")
    return v


#: A Host header, strictly (RFC 9110 §7.2 over RFC 3986's authority, less its userinfo): a name or
#: dotted IPv4 address, or an IPv6 address in brackets, then at most one ``:port`` of digits. Nothing
#: else: ``127.0.0.1:80@evil.com``, ``127.0.0.1:80:80``, a path, a space, a zone id.
_HOST_RE = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9.-]+))(?::(?P<port>[0-9]{1,5}))?")
#: the loopback names a Host header may give (``localhost.``: the same name, fully qualified)
LOOPBACK_NAMES = ("localhost", "localhost.")


def host_of(header: str | None) -> str | None:
    """The host a Host header names, lower case (``[::1]:8765`` → ``::1``, ``localhost:80`` →
    ``localhost``); None unless the header is a host and an optional port 1–65535, nothing more.

    Strict because the header comes from whoever connects: a lenient split read
    ``127.0.0.1:80@evil.com`` as loopback, which a page on evil.com could rebind to."""
    m = _HOST_RE.fullmatch((header or "").lower())
    if m is None or (m["port"] is not None and not 0 < int(m["port"]) <= 65535):
        return None
    if m["ipv6"] is not None:
        try:
            return str(ipaddress.IPv6Address(m["ipv6"]))
        except ValueError:
            return None
    return m["name"]


def cookie_name(request: Request) -> str:
    """``castrig_token_PORT``, PORT the one the browser reached this server on (its Host header's;
    80 where it names none; else the port the server listens on). A browser keeps one cookie per
    name and host whatever the port (RFC 6265 §8.5): a second ``castrig serve`` on another port of
    the same host (another data root, another rig through another SSH tunnel) replaced the first
    one's login cookie, logging the operator out of it."""
    m = _HOST_RE.fullmatch((request.headers.get("host") or "").lower())
    if m is not None:
        port = m["port"] or "80"
    else:
        server = request.scope.get("server") or (None, None)
        port = str(server[1] or 0)
    return f"{COOKIE}_{int(port)}"


def names_loopback(header: str | None) -> bool:
    """Whether a Host header names this machine's loopback: ``localhost``, 127.0.0.0/8 (dotted
    quad) or ``[::1]``, with any port (an SSH tunnel's local port)."""
    host = host_of(header)
    if host is None:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # any other name
        return False


class SecurityHeaders:
    """ASGI middleware: every answer gets :data:`SECURITY_HEADERS` it did not set itself, so no
    page (a 404, the login form, a refusal) goes out without its policy."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers") or []}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in have]
                message = {**message, "headers": [*(message.get("headers") or []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LoopbackHostOnly:
    """ASGI middleware: answer only requests whose Host header names loopback
    (:func:`names_loopback`); anything else is 400 and reaches no route."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            hosts = [v.decode("latin-1") for k, v in scope.get("headers") or [] if k == b"host"]
            if len(hosts) != 1 or not names_loopback(hosts[0]):
                raw = hosts[0] if len(hosts) == 1 else hosts
                resp = PlainTextResponse(f"Host {str(raw)[:80]!r} refused: castrig serve on a loopback address answers only "
                                         "Host: localhost, 127.0.0.1 or [::1] (with any port)", status_code=400)
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


#: the statuses the runs list shows beyond a run's outcomes (``outcome=`` filters on the status)
LIVE_STATUSES = (*R.LIVE_STATES[1:], "damaged")


class BadFilter(ValueError):
    """A runs-list filter that ``castrig runs`` would refuse: the message names the query parameter."""


#: Runs the runs page shows (newest first) unless asked for all (``?all=1``): the page reloads
#: every 10 s, and each reload read every run folder's files (3 000 runs: 3.2 s of the server's
#: CPU the first time, 0.33 s each reload after; 20 000: 10 times that).
PAGE_RUNS = 100
#: The most runs one ``/api/runs`` answer holds (``limit=N``; ``all=1``: every run, as
#: ``castrig runs --all``). Without ``limit`` it held every run: 3 000 runs, one 1.3 MB answer read
#: from every folder; now :data:`PAGE_RUNS`, and a ``Link: <...&before=UID>; rel="next"`` header.
MAX_LIMIT = 10_000


def _limit(text: str | None) -> int:
    """``/api/runs``'s ``limit`` (the newest N runs that match), BadFilter naming it if it is not
    a whole number from 1 to :data:`MAX_LIMIT`; :data:`PAGE_RUNS` if not given."""
    if text is None:
        return PAGE_RUNS
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadFilter(f"limit {text[:40]!r}: a whole number from 1 to {MAX_LIMIT} (the newest runs that match)")
    return int(text)


def _next_runs_page(path: str, q: dict[str, str], last_uid: str) -> str:
    """The path and query of the runs after ``last_uid`` (the last one of this answer), with the same filters."""
    from urllib.parse import urlencode

    return f"{path}?{urlencode({**{k: v for k, v in q.items() if k != 'before'}, 'before': last_uid})}"


def _filtered_runs(root: Path, q: dict[str, str], summary: Any = R.summary, newest: int | None = None) -> list[dict[str, Any]]:
    """Runs under ``root``, newest first, filtered as ``castrig runs`` filters them (the same
    checks: BadFilter naming the parameter and what it allows): since (date), grade, outcome
    (status), recipe, and ``before`` (a run id: only the runs older than it, as their folder names
    sort); ``summary``: what makes a row (the server's :class:`SummaryCache`); ``newest``: at most
    that many (the folders past them are not read)."""
    from castrig.report.filters import OUTCOMES, run_filter
    from castrig.errors import BadInput

    try:
        keep = run_filter(q.get("since") or None, q.get("grade") or None, q.get("outcome") or None,
                          outcomes=(*OUTCOMES, *LIVE_STATUSES))
    except BadInput as exc:  # "--since '2026-13-45': expected …" → "since '2026-13-45': expected …"
        raise BadFilter(str(exc).removeprefix("--")) from None
    before = q.get("before") or None
    out: list[dict[str, Any]] = []
    for d in R.newest_run_dirs(root, None if before is None else (lambda d: d.name < before)):
        if newest is not None and len(out) >= newest:
            break
        r = summary(d)
        if not keep(r.get("started_utc"), r["grades"], r["status"]):
            continue
        if q.get("recipe") and q["recipe"] not in str(r["recipe"]):
            continue
        out.append(r)
    return out


def _image_png(run_dir: Path, image_id: int, max_px: int = 1024) -> bytes | str | None:
    """The micrograph as a PNG (None: no such image; a str: why it cannot be read — a damaged or
    cut-short file was a 500 with a traceback)."""
    import numpy as np

    from castrig.pngio import png_bytes
    from castrig.tiffio import read_micrograph

    rel = R.image_rel(run_dir, image_id)
    if rel is None:
        return None
    with R.held_file_in(run_dir, rel) as path:  # (read as checked: never a pipe or a link put there since)
        if path is None:
            return None
        try:
            img = np.asarray(read_micrograph(path)[0])
        except Exception as exc:  # noqa: BLE001 - whatever the file holds, the answer is one line
            return f"image {image_id} unreadable: {type(exc).__name__}"
    step = max(1, int(np.ceil(max(img.shape[:2]) / max_px)))
    return png_bytes(img[::step, ::step])


# -- pages (the data comes from the API; everything from files is escaped) ---------------------
def _page(title: str, body: str, *, script: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="stylesheet" href="/static/live.css"></head><body>'
            f'<header><a href="/">castrig</a> · {html.escape(title)}</header><main>{body}</main>{script}</body></html>')


def _login_page(note: str = "") -> str:
    return _page("token needed", ("<p class='warn'>" + html.escape(note) + "</p>" if note else "") +
                 "<p>This castrig serves a non-loopback address: reading needs the operator token too.</p>"
                 "<form action='/login' method='post'><label>token <input name='token' type='password' autocomplete='off'></label> "
                 "<button>open</button></form>")


def _dur(s: Any) -> str:
    if s is None:
        return "—"
    s = max(0, int(float(s)))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _runs_html(root: Path, rows: list[dict[str, Any]], q: dict[str, str], *, problem: str = "", more: bool = False) -> str:
    e = html.escape
    def field(name: str, label: str, ph: str = "") -> str:
        return f"<label>{label} <input name='{name}' value='{e(q.get(name, ''))}' placeholder='{ph}'></label> "
    form = ("<form class='filters' method='get'>" + field("since", "since", "2026-12-01") + field("grade", "grade", "claim1")
            + field("outcome", "status", "running") + field("recipe", "recipe") + "<button>filter</button></form>")
    trs = []
    for r in rows:
        step = r["step"] or {}
        step_txt = "" if step.get("step_index", -1) < 0 else f"{step['step_index'] + 1}/{step.get('n_steps', '?')} {step.get('step_label', '')}"
        trs.append(
            f"<tr class='st-{e(r['status'])}'><td><a href='/runs/{e(quote(r['uid'], safe=''))}'>{e(r['uid'])}</a></td>"
            f"<td><span class='badge {e(r['status'])}'>{e(r['status'])}</span></td><td>{e(str(r['recipe']))}</td>"
            f"<td>{e(step_txt)}</td><td>{e(r['membrane_counts'] or str(r['membranes']))}</td><td>{e(', '.join(r['grades']))}</td>"
            f"<td>{e(str(r['started_utc'] or ''))}</td><td>{e(str(r['operator'] or ''))}</td></tr>")
    table = ("<table id='runs'><thead><tr><th>run</th><th>status</th><th>recipe</th><th>step</th><th>membranes</th>"
             "<th>grades</th><th>started (UTC)</th><th>operator</th></tr></thead><tbody>" + "".join(trs) + "</tbody></table>")
    if problem:  # a filter that cannot be used: say which, show no table (and no reload)
        nav = "<p class='nav'><a href='/'>all runs</a></p>"
        return _page(f"runs in {root}", nav + form + "<p class='warn'>bad filter: " + e(problem) + "</p>")
    if not rows:
        table += "<p>no runs</p>"
    if more:  # (the filters kept: the same runs, all of them)
        every = urlencode({**{k: v for k, v in q.items() if k in ("since", "grade", "outcome", "recipe") and v}, "all": "1"})
        table += (f"<p class='nav'>the newest {len(rows)} runs that match are shown; "
                  f"<a href='/?{e(every)}'>show every run</a> (slower with thousands)</p>")
    nav = "<p class='nav'><a href='/explore'>explore: process-window maps and searches</a></p>"
    return _page(f"runs in {root}", nav + form + f"<div data-reload-s='10'>{table}</div>",
                 script="<script src='/static/reload.js'></script>")


def _run_html(uid: str) -> str:
    body = (f"<div id='run' data-uid='{html.escape(uid)}'></div>")
    return _page(f"run {uid}", body, script="<script src='/static/live.js'></script>")


# -- the command -------------------------------------------------------------------------------
def serve(root: Path, host: str = "127.0.0.1", port: int = 8765, *, max_connections: int | None = None,
          request_timeout_s: float | None = None, explore_cache_mib: int | None = None) -> None:
    """Print ``{"url", "token_file"}`` and serve until SIGINT/SIGTERM, holding at most
    ``max_connections`` (default from the file-descriptor limit) and closing a connection that
    has not sent its whole request within ``request_timeout_s`` (default 10; :mod:`castrig.serve.guard`),
    keeping at most ``explore_cache_mib`` MiB of study journals replayed (default 256)."""
    import uvicorn

    from castrig.errors import BadInput
    from castrig.serve.guard import bounded_config, limits, request_timeout

    limits(max_connections)  # a --max-connections the descriptor limit cannot hold: refused before anything is made
    request_timeout(request_timeout_s)  # likewise a --request-timeout-s out of range
    check_bindable(host, port)  # a port in use: exit 2 naming --port, before a folder or token is made
    root = Path(root)
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
    token_dir, token_file, note = token_dir_for(root)
    if note:
        print(note, file=sys.stderr, flush=True)
    why = token_problem(token_file)
    if why is not None:
        raise BadInput(f"{token_file}: not usable as the operator token: {why}; remove it and castrig serve makes a "
                       "new one", file=str(token_file))
    for other in sorted(p for p in token_dir.iterdir() if p != token_file):
        why = token_problem(other)
        if why is not None:
            print(f"warning: {other} is not taken as a token: {why}", file=sys.stderr, flush=True)
    loopback = is_loopback(host)
    app = create_app(root, loopback=loopback, token_dir=token_dir,
                     explore_cache_bytes=None if explore_cache_mib is None else explore_cache_mib << 20)
    config = bounded_config(app, max_connections=max_connections, request_timeout_s=request_timeout_s,
                            host=host, port=port, log_level="warning", timeout_graceful_shutdown=2, lifespan="off")
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    real_startup = server.startup

    async def startup(sockets: Any = None) -> None:  # the line goes out once the port is bound
        await real_startup(sockets)
        bound = port
        for s in server.servers:
            for sock in s.sockets:
                bound = sock.getsockname()[1]
        if not loopback:  # (the port bound: with --port 0 it said "serving 0.0.0.0:0")
            print(f"warning: serving {shown}:{bound} without TLS: the token and the run data cross the network in clear; "
                  "reading needs the token too. Prefer an SSH tunnel to 127.0.0.1 (see the README).", file=sys.stderr, flush=True)
        print(json.dumps({"url": f"http://{shown}:{bound}/", "token_file": str(token_file.resolve())}), flush=True)

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    except SystemExit:
        if server.started:
            raise
        # uvicorn's own exit 3 ("startup failure": it lost a race for the port since the check) is
        # not castrig's 3 (a run aborted, the rig left safe): bad input, as the check says it
        raise BadInput(f"--port {port}: cannot serve on {shown}:{port} (see the line above; allowed: a free port, "
                       "or 0 for any free port)", field="--port") from None


def check_bindable(host: str, port: int) -> None:
    """:class:`BadInput` naming ``--port`` (or ``--host``) when ``host:port`` cannot be bound now:
    in use by another process, a privileged port, an address this machine does not have."""
    import errno
    import socket

    from castrig.errors import BadInput

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise BadInput(f"--host {host}: not an address of this machine ({exc}); allowed: an IP address or a host "
                       "name, e.g. 127.0.0.1", field="--host") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                why = "already in use (another castrig serve?)" if exc.errno == errno.EADDRINUSE else "needs privileges"
                raise BadInput(f"--port {port}: port {port} on {host} {why} (allowed: a free port from 1024 to 65535, "
                               "or 0 for any free port)", field="--port") from None
            raise BadInput(f"--host {host}: cannot serve on it: {exc.strerror or exc} (allowed: an address of this "
                           "machine, e.g. 127.0.0.1)", field="--host") from None


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
