"""``castrig serve`` met with the requests the audit sent (repro_6), over real HTTP.

On loopback reading needs no token, so a page that rebinds its own name to 127.0.0.1 (DNS
rebinding) must not be answered: only Host headers naming loopback are. Numbers in paths and
queries that are not numbers, or too large for SQLite, are 400/404 — never a 500 with a
traceback in the server's log.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import os
import shutil
import signal
import stat
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from conftest import ROOT, RUN_FOLDER_DAMAGES, raw_get


def request(url: str, path: str, **kw: Any) -> tuple[int, str]:
    return raw_get(url, path, **kw)[:2]


def server_log(served) -> str:
    """Stop the server as Ctrl-C would and return what it wrote to stderr."""
    served.proc.send_signal(signal.SIGINT)
    served.proc.wait(timeout=10)
    return served.proc.stderr.read()


@pytest.fixture
def finished_run(finished_demo_run) -> tuple[Path, str]:
    return finished_demo_run  # one demo run per test process, shared with the report page's test


@pytest.fixture(scope="module")
def shared_server(finished_demo_run):
    """The module's loopback server over the demo run's data root (conftest.SharedServer):
    the four tests below that only read from it (no token, no cookie, nothing written) each
    started their own, ~0.6 s of CPU; its whole log is checked at the module's end."""
    from conftest import SharedServer, castrig_serve_process

    data, _ = finished_demo_run
    with castrig_serve_process(data) as served:
        server = SharedServer(served)
        yield server
        log = server.whole_log()
        assert "Traceback" not in log and "Error" not in log, log[-3000:]


@pytest.fixture
def served_here(shared_server):
    """``(the module's server, where its log stood as the test began)``: ``server.log_since(mark)``."""
    return shared_server, shared_server.mark()


def test_loopback_answers_only_loopback_host_names(finished_run, served_here):
    data, uid = finished_run
    served, mark = served_here
    port = urlsplit(served.url).port
    for host in ("rebind.attacker.example", f"rebind.attacker.example:{port}", f"127.0.0.1.nip.io:{port}",
                 f"localhost.attacker.example:{port}", "10.0.0.5", ""):
        for path in ("/api/runs", f"/api/runs/{uid}", "/", f"/api/runs/{uid}/samples"):
            code, body = request(served.url, path, host=host)
            assert code == 400, (host, path, code)
            assert uid not in body
    # the names a person (or an SSH tunnel's local port) uses are answered
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", "LOCALHOST:9000", f"127.0.0.2:{port}", "[::1]:8765"):
        code, body = request(served.url, "/api/runs", host=host)
        assert code == 200 and json.loads(body)[0]["uid"] == uid, (host, code, body)
    assert request(served.url, f"/api/runs/{uid}")[0] == 200  # urllib/curl's own Host
    assert "Traceback" not in served.log_since(mark)


#: Host headers that name loopback, in the forms browsers, curl and SSH tunnels send
GOOD_HOSTS = ("127.0.0.1", "127.0.0.1:8765", "localhost", "LocalHost:80", "localhost.:8765", "127.255.255.254:65535",
              "[::1]", "[::1]:8765", "[0:0:0:0:0:0:0:1]:1")
#: Host headers a lenient split read as loopback, or that are no host and port at all
BAD_HOSTS = ("127.0.0.1:80@evil.com", "127.0.0.1@evil.com", "user@127.0.0.1", "user:pw@localhost:8765",
             "evil.com#@127.0.0.1", "localhost.evil.com", "127.0.0.1.evil.com", "localhost:8765:8765", "127.0.0.1:80:80",
             "127.0.0.1:", "localhost:0", "localhost:65536", "localhost:123456", "localhost:+80", "localhost:8o",
             "127.0.0.1/evil", "127.0.0.1?x", "127.0.0.1#x", "127.0.0.1 evil.com", "localhost..", "127.0.0.1.",
             "[::1", "::1", "::1:8765", "[::1]evil.com", "[::1]:80@evil.com", "[::1]:80:80", "[::1%25lo]",
             "[127.0.0.1]", "[::ffff:127.0.0.1]", "127.1", "0x7f.0.0.1", "2130706433", "127.000.000.001",
             "localh\xf6st", ("127.0.0.1", "evil.com"), ("evil.com", "127.0.0.1"))


def test_the_host_header_is_parsed_strictly(finished_run, served_here):
    """``Host: 127.0.0.1:80@evil.com`` (and a userinfo, a name ending in a loopback name, two ports,
    trailing junk) was read as loopback: a rebinding page sending it read every run. Only a host
    and an optional port, naming loopback, are answered; the rest is the 400 a foreign name gets."""
    data, uid = finished_run
    served, mark = served_here
    for host in GOOD_HOSTS:
        code, body = request(served.url, "/api/runs", host=host)
        assert code == 200 and json.loads(body)[0]["uid"] == uid, (host, code, body)
    for host in BAD_HOSTS:
        for path in ("/api/runs", "/"):
            code, body = request(served.url, path, host=host)
            assert code == 400 and uid not in body, (host, path, code, body[:200])
    assert "Traceback" not in served.log_since(mark)


def test_bad_numbers_are_400_or_404_not_500(finished_run, served_here):
    data, uid = finished_run
    served, mark = served_here
    assert request(served.url, f"/runs/{uid}/images/1.png")[0] == 200
    for n in ("99999999999999999999999", str(2**63), "0"):
        assert request(served.url, f"/runs/{uid}/images/{n}.png")[0] == 404, n
    for path in ("stream?after=abc", "stream?events_after=x", "stream?after=-1", f"stream?after={2**64}",
                 "samples?after=abc", f"samples?after={2**64}", "samples?since=nan", "samples?since=abc",
                 "events?after=abc", f"events?after={10**30}"):
        code, body = request(served.url, f"/api/runs/{uid}/{path}")
        assert code == 400 and "error" in json.loads(body), (path, code, body)
    code, body = request(served.url, f"/api/runs/{uid}/events?after=0")
    assert code == 200 and json.loads(body)
    err = served.log_since(mark)
    assert "Traceback" not in err and "Error" not in err, err[-2000:]


def test_a_damaged_run_folder_is_named_not_500(finished_run, tmp_path: Path, castrig_serve):
    """The report routes said 500 (a traceback in the server's log) where `castrig report` says
    'damaged run folder' (exit 2): they answer 409 with the reason."""
    data, uid = finished_run
    root = tmp_path / "data"
    shutil.copytree(data / uid, root / uid)  # a good run beside them
    for name, (file, spoil, _reason) in RUN_FOLDER_DAMAGES.items():
        run_dir = root / f"{uid}-{name}"
        shutil.copytree(data / uid, run_dir)
        spoil(run_dir / file)
    with castrig_serve(root) as served:
        for name in RUN_FOLDER_DAMAGES:
            for path in (f"/api/runs/{uid}-{name}/report", f"/runs/{uid}-{name}/report.html"):
                code, body = request(served.url, path)
                assert code == 409 and "damaged run folder" in body and str(root) not in body, (path, code, body)
            assert request(served.url, f"/api/runs/{uid}-{name}")[0] == 200  # status 'damaged', as before
        # a run.json field of the wrong type (started_utc: 12345) made the filtered list a 500 for
        # every run; now the good run is listed and the damaged ones (no start time) left out
        code, body = request(served.url, "/api/runs?since=2026-01-01")
        assert code == 200 and [r["uid"] for r in json.loads(body)] == [uid], (code, body[-2000:])
        code, page = request(served.url, "/?since=2026-01-01")
        assert code == 200 and "no runs" not in page, (code, page[-2000:])
        code, page = request(served.url, "/")
        assert code == 200 and f"{uid}-started_utc_number" in page, (code, page[-2000:])
        err = server_log(served)
        assert "Traceback" not in err, err[-2000:]


def test_bad_runs_filters_are_400_naming_the_parameter(finished_run, served_here):
    """The runs list said 200 [] (the page: 'no runs') to filters `castrig runs` refuses (exit 2):
    now 400 naming the parameter and what it allows; good filters still filter."""
    data, uid = finished_run
    served, mark = served_here
    for query, name, allowed in (("since=2026-13-45", "since", "YYYY-MM-DD"), ("since=nan", "since", "YYYY-MM-DD"),
                                 ("outcome=x", "outcome", "completed, aborted"), ("grade=claim9", "grade", "claim1, claim2")):
        code, body = request(served.url, f"/api/runs?{query}")
        assert code == 400 and name in json.loads(body)["error"] and allowed in body, (query, code, body)
        code, page = request(served.url, f"/?{query}")
        assert code == 400 and allowed in page and "no runs" not in page, (query, code, page)
    day = uid[:4] + "-" + uid[4:6] + "-" + uid[6:8]
    for query, n in ((f"since={day}", 1), ("since=2999-01-01", 0), ("since=2999-01-01T00:00:00Z", 0),
                     ("outcome=completed", 1), ("outcome=paused", 0), ("grade=claim1", None), ("", 1)):
        code, body = request(served.url, f"/api/runs?{query}")
        assert code == 200 and (n is None or len(json.loads(body)) == n), (query, code, body)
    assert "Traceback" not in served.log_since(mark)


def test_a_read_only_data_root_is_served(finished_run, tmp_path: Path, read_only_mount, castrig_serve):
    """`serve --data` on a read-only data root died (OSError making DATA/.castrig, exit 1) where
    runs, report --out, export and lots work: it serves, its token kept in the user's state folder."""
    data, uid = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(data / uid, copy / uid)
    ro = read_only_mount(copy)
    state = tmp_path / "state"
    with castrig_serve(ro, env={"XDG_STATE_HOME": str(state)}) as served:
        assert served.token_file.is_relative_to(state) and len(served.token) > 20
        code, body = request(served.url, "/api/runs")
        assert code == 200 and json.loads(body)[0]["uid"] == uid, (code, body)
        assert request(served.url, f"/api/runs/{uid}/report")[0] == 200
        err = server_log(served)
        assert "Traceback" not in err and "read-only" in err and str(state) in err, err[-2000:]
    with castrig_serve(ro, "--host", "0.0.0.0", env={"XDG_STATE_HOME": str(state)}) as served:  # the same token again
        local = served.url.replace("0.0.0.0", "127.0.0.1")
        assert served.token_file.is_relative_to(state)
        assert request(local, "/api/runs")[0] == 401
        assert request(local, "/api/runs", token=served.token)[0] == 200
    assert sorted(p.name for p in ro.iterdir()) == [uid]  # nothing written there


def test_a_read_only_data_roots_token_that_is_a_named_pipe_is_not_waited_on(finished_run, tmp_path: Path, read_only_mount,
                                                                            castrig_serve):
    """On a read-only data root `serve` takes the rig's own token if it can read it, opening
    DATA/.castrig/tokens/operator to see: a named pipe there waited for ever for a writer, and the
    server never started. It is no token: the one in the user's state folder serves."""
    import os

    data, uid = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(data / uid, copy / uid)
    tokens = copy / ".castrig" / "tokens"
    tokens.mkdir(parents=True, mode=0o700)
    os.mkfifo(tokens / "operator", 0o600)
    ro = read_only_mount(copy)
    state = tmp_path / "state"
    with castrig_serve(ro, env={"XDG_STATE_HOME": str(state)}) as served:
        assert served.token_file.is_relative_to(state)
        assert request(served.url, "/api/runs")[0] == 200


def _without_root_file_powers() -> None:
    """In the child, before exec: drop the capabilities that let root open any file (DAC override,
    read-search, owner), so files of another user are closed to it as to any other user. (Not
    setuid(nobody): the interpreter may live where nobody can read, such as /root/.pyenv.)"""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone from the bounding set, so at exec
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the data root to another user (nobody)")
def test_another_users_data_root_is_served(reap):
    """`serve --data ROOT` run by another user than ROOT's owner (DATA/.castrig is 0700) died
    with a PermissionError traceback (exit 1) looking for the rig's token there: it serves, its
    token kept in the user's state folder, as on a read-only data root."""
    import select
    import subprocess
    import sys
    import tempfile

    from castrig.serve.app import TOKEN_DIR, ensure_token

    top = Path(tempfile.mkdtemp(prefix="castrig-other-user-"))
    try:
        data = top / "data"
        data.mkdir()
        ensure_token(data / TOKEN_DIR)  # the rig's own token, as its owner's first `castrig serve` made it
        for p in (data, *data.rglob("*")):
            os.chown(p, 65534, 65534)  # all nobody's
        assert (data / ".castrig").stat().st_mode & 0o777 == 0o700
        state = top / "state"
        state.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "CASTRIG_STORE"}
        env.update(PYTHONUNBUFFERED="1", HOME=str(state), XDG_STATE_HOME=str(state), PYTHONPATH=str(ROOT / "src"))
        try:
            proc = reap(subprocess.Popen([sys.executable, "-m", "castrig", "serve", "--data", str(data), "--port", "0"],
                                         cwd=state, env=env, preexec_fn=_without_root_file_powers, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"cannot drop root's file capabilities here: {exc}")
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            pytest.fail(f"castrig serve printed nothing (exit {proc.wait(10)}): {proc.stderr.read()[-2000:]}")
        info = json.loads(line)
        assert Path(info["token_file"]).is_relative_to(state), info
        assert request(info["url"], "/api/runs") == (200, "[]")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        err = proc.stderr.read()
        assert "Traceback" not in err and str(data / TOKEN_DIR) in err and str(state) in err, err[-2000:]
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_run_links_reach_a_folder_whose_name_is_no_url(tmp_path: Path, finished_run, castrig_serve):
    """A run folder renamed by hand ('run #5?x=1'): the runs page's link must lead to it — the
    name goes into the href percent-encoded ('#' and '?' would end the path), and escaped."""
    data, uid = finished_run
    root = tmp_path / "data"
    name = "run #5?x=1&y=<b>"
    shutil.copytree(data / uid, root / name)
    with castrig_serve(root) as served:
        code, page = request(served.url, "/")
        assert code == 200
        (href,) = [h for h in (p.split("'")[0] for p in page.split("href='")[1:]) if h.startswith("/runs/")]
        assert href == "/runs/run%20%235%3Fx%3D1%26y%3D%3Cb%3E", href
        code, body = request(served.url, href)
        assert code == 200 and "&lt;b&gt;" in body and "<b>" not in body.split("<main>", 1)[1].split("</header>")[0]


def test_non_loopback_login_sets_the_cookie_that_reads_the_runs(finished_run, castrig_serve, tmp_path):
    """On a non-loopback address a browser without the token gets the login form; /login with a
    wrong token says so, with the right one sets the cookie, and with it the pages and the API
    read (the samples filtered by channel and run time as the live page asks for them). The
    login route and these refusals had never run in a test.

    And a non-loopback server keeps the token and answers any host name (this was its own test,
    test_non_loopback_keeps_the_token_and_any_host, with a server of the same options)."""
    data, uid = finished_run
    with castrig_serve(data, "--host", "0.0.0.0") as served:
        local = served.url.replace("0.0.0.0", "127.0.0.1")
        assert request(local, "/api/runs", host="rig-pc.lab.example:8765")[0] == 401
        code, body = request(local, "/api/runs", host="rig-pc.lab.example:8765", token=served.token)
        assert code == 200 and json.loads(body)[0]["uid"] == uid
        u = urlsplit(served.url.replace("0.0.0.0", "127.0.0.1"))

        def get(path: str, cookie: str | None = None, form: str | None = None) -> tuple[int, dict[str, str], str]:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
            try:
                if form is not None:  # as the login page's form posts it
                    conn.request("POST", path, body=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
                else:
                    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
                r = conn.getresponse()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode(errors="replace")
            finally:
                conn.close()

        code, _, page = get(f"/runs/{uid}")
        # the form posts the token: a GET would leave it in the browser's history
        assert code == 401 and "action='/login' method='post'" in page and uid not in page
        for path in (f"/api/runs/{uid}", f"/api/runs/{uid}/samples"):
            assert get(path)[0] == 401, path
        code, _, page = get("/login", form="token=not-the-token")
        assert code == 401 and "that token is not valid" in page
        code, headers, _ = get("/login", form=urlencode({"token": served.token}))
        assert code == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"].split(";")[0]
        assert cookie.startswith(f"castrig_token_{u.port}=") and "httponly" in headers["set-cookie"].lower()
        # the cookie is no token: a browser sends it to every port of this host (another user's web
        # server there got the operator token, which aborts runs); what it holds reads, never acts
        assert served.token not in headers["set-cookie"]
        key = cookie.split("=", 1)[1]
        for bearer, code in ((key, 401), (served.token, 409)):  # (the run is over: the token gets "not running")
            done = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
            done.request("POST", f"/api/runs/{uid}/abort", headers={"Authorization": f"Bearer {bearer}", "Cookie": cookie})
            assert done.getresponse().status == code, bearer
            done.close()
        # a script may still log in with the token in the query
        code, headers, _ = get(f"/login?token={served.token}")
        assert code == 303 and headers["set-cookie"].split(";")[0] == cookie
        code, _, page = get("/", cookie)
        assert code == 200 and uid in page
        code, _, body = get(f"/api/runs/{uid}/samples?channel=rh_near_pct&since=100", cookie)
        channels = json.loads(body)["channels"]
        assert code == 200 and list(channels) == ["rh_near_pct"], body[:300]
        assert channels["rh_near_pct"] and all(t > 100 for t, _ in channels["rh_near_pct"])

        # a second server on another port of the same host (another data root, its own token), logged
        # in to by the same browser: both cookies had one name, and a browser keeps one per host
        # whatever the port (RFC 6265 §8.5): the second login logged the operator out of the first
        other = tmp_path / "other"
        other.mkdir()
        jar = http.cookiejar.CookieJar()  # a browser's: a cookie goes to every port of its host
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        first = f"http://127.0.0.1:{u.port}"
        with castrig_serve(other, "--host", "0.0.0.0") as second:
            second_url = second.url.replace("0.0.0.0", "127.0.0.1").rstrip("/")
            for url, token in ((first, served.token), (second_url, second.token)):
                browser.open(url + "/login", data=urlencode({"token": token}).encode(), timeout=20).close()
            for url, runs in ((first, [uid]), (second_url, [])):
                with browser.open(url + "/api/runs", timeout=20) as r:
                    assert [run["uid"] for run in json.loads(r.read())] == runs, url
        assert len(jar) == 2
        assert "Traceback" not in server_log(served)


def test_a_login_body_cut_short_is_no_traceback_in_the_log(tmp_path, castrig_serve):
    """POST /login declaring 100 bytes and sending 8, then the client gone (or the request timing
    out): Starlette's ClientDisconnect reached the server's log as "Exception in ASGI application"
    and its traceback. Now the login gives up quietly, and the server answers the next request."""
    import socket

    (tmp_path / "data").mkdir()
    with castrig_serve(tmp_path / "data") as served:
        u = urlsplit(served.url)
        with socket.create_connection((u.hostname, u.port), timeout=10) as s:
            s.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: 100\r\n\r\ntoken=ab")
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(4096)
            except OSError:
                pass
        code, _ = request(served.url, "/api/runs")
        assert code in (200, 401), code
        log = server_log(served)
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]


def test_a_weak_or_open_token_file_is_no_token(tmp_path, castrig_serve, finished_demo_run, capsys):
    """Any file in the tokens folder was a token, however short and whatever its mode: a hand-made
    ``x`` (mode 0644) paused a live run over the network (an outside tester). Such a file is now
    no token, and `castrig serve` says why as it starts; an operator token file of that kind is
    refused (exit 2) rather than printed as the token to use."""
    import secrets

    from castrig.serve.app import TOKEN_DIR, ensure_token
    from conftest import castrig_main

    data, run_id = finished_demo_run
    root = tmp_path / "runs"
    shutil.copytree(data / run_id, root / run_id)
    tokens = root / TOKEN_DIR
    ensure_token(tokens)
    (tokens / "bench").write_text("x\n")
    (tokens / "bench").chmod(0o600)
    strong_but_open = secrets.token_urlsafe(32)
    (tokens / "shared").write_text(strong_but_open + "\n")
    (tokens / "shared").chmod(0o644)
    good = secrets.token_urlsafe(32)
    (tokens / "lab").write_text(good + "\n")
    (tokens / "lab").chmod(0o600)
    with castrig_serve(root, "--host", "0.0.0.0") as served:
        local = served.url.replace("0.0.0.0", "127.0.0.1")
        for token, status in (("x", 401), (strong_but_open, 401), (good, 200), (served.token, 200)):
            got, body = request(local, "/api/runs", host="rig-pc.lab.example:8765", token=token)
            assert got == status, (token, got, body)
        err = server_log(served)
    assert f"warning: {tokens / 'bench'} is not taken as a token: holds 1 characters, fewer than 22" in err, err
    assert f"warning: {tokens / 'shared'} is not taken as a token: open to other users (mode 0644" in err, err
    os.chmod(tokens / "operator", 0o644)
    done = castrig_main(capsys, "serve", "--data", str(root), "--port", "0")
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and f"{tokens / 'operator'}: not usable as the operator token: open to other users" in said, said


@pytest.mark.parametrize("link", [".castrig", ".castrig/tokens"])
def test_a_tokens_folder_linked_out_of_the_data_root_is_refused(tmp_path, link, capsys):
    """Whoever may write the data root made ``DATA/.castrig`` (or its ``tokens``) a symlink to a
    folder elsewhere: `castrig serve` made that folder 0700 (a home folder; ``/`` for a server run
    as root) and kept the operator token there. Now it refuses to start (exit 2) naming the link,
    and the folder it leads to is left as it was."""
    from conftest import castrig_main

    root, elsewhere = tmp_path / "runs", tmp_path / "someone's folder"
    elsewhere.mkdir(mode=0o755)
    (root / link).parent.mkdir(parents=True)
    (root / link).symlink_to(elsewhere)
    done = castrig_main(capsys, "serve", "--data", root, "--port", "0")  # (refused before it serves: in this process)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and f"{root / link} is a symbolic link" in said and "Traceback" not in said, said
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755 and list(elsewhere.iterdir()) == []


def test_a_token_file_owned_by_another_user_is_no_token(tmp_path, capsys, read_only_mount, castrig_serve):
    """Whoever may write the data root put their own ``DATA/.castrig/tokens/operator`` there (mode
    0600, a token they chose): a `castrig serve` run as root read it, printed it as the operator
    token, and took it for pause and abort. A token file another user owns is now refused; on a
    read-only data root (nothing to remove there) the user's own token serves instead."""
    import secrets

    from castrig.serve.app import TOKEN_DIR, ensure_token
    from conftest import castrig_main

    if os.geteuid() != 0:
        pytest.skip("needs root: only root reads another user's 0600 file")
    root = tmp_path / "runs"
    planted = ensure_token(root / TOKEN_DIR)
    planted.write_text(secrets.token_urlsafe(32) + "\n")
    for p in (root / ".castrig", root / TOKEN_DIR, planted):
        os.chown(p, 65534, 65534)  # nobody's
    done = castrig_main(capsys, "serve", "--data", root, "--port", "0")  # (refused before it serves: in this process)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and f"{planted}: not usable as the operator token: owned by another user (uid 65534" in said, said
    state = tmp_path / "state"
    with castrig_serve(read_only_mount(root), env={"XDG_STATE_HOME": str(state)}) as served:
        assert served.token_file.is_relative_to(state), served.token_file
