"""``castrig serve``'s answers carry a Content-Security-Policy and the other security headers.

Every HTML page (the runs list, a run, a saved report, the explore list and a map, the 404, 400
and login pages) is asked over real HTTP from a real ``castrig serve``; the pages' working under
that policy is checked in Chromium (test_serve_chromium.py, test_serve_explore.py), with no
violation in the browser's console.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import make_study, raw_get

#: what every answer must carry, beside its Content-Security-Policy
HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def csp_directives(policy: str) -> dict[str, list[str]]:
    """``{directive: [sources]}`` of a Content-Security-Policy header."""
    parts = (d.split() for d in policy.split(";") if d.strip())
    return {p[0]: p[1:] for p in parts}


def assert_strict(path: str, code: int, headers: dict[str, str], *, framed_by: str = "'none'") -> None:
    """The answer to ``path`` has the headers and a policy that loads nothing from elsewhere and
    runs no inline script but by hash."""
    for name, value in HEADERS.items():
        assert headers.get(name) == value, (path, code, name, headers)
    csp = csp_directives(headers.get("content-security-policy", ""))
    assert csp.get("default-src") in (["'self'"], ["'none'"]), (path, csp)
    assert csp.get("frame-ancestors") == [framed_by], (path, csp)
    scripts = csp.get("script-src", csp["default-src"])
    assert all(s == "'self'" or s.startswith("'sha256-") for s in scripts), (path, csp)
    elsewhere = [(d, s) for d, v in csp.items() for s in v
                 if s.startswith(("http", "*", "'unsafe-eval")) or (s == "data:" and d != "img-src")]
    assert not elsewhere, (path, elsewhere)


def test_every_page_carries_a_strict_content_security_policy(tmp_path: Path, finished_demo_run, castrig_serve):
    """Live pages went out with no Content-Security-Policy, no nosniff, no Referrer-Policy and no
    frame-ancestors: an injected script or a framing page met no second line of defence."""
    demo, uid = finished_demo_run
    data = tmp_path / "data"
    shutil.copytree(demo / uid, data / uid)
    make_study(data / "explore" / "map-claim1")
    pages = {"/": 200, "/?since=2026-13-45": 400, f"/runs/{uid}": 200, "/runs/nope": 404, f"/runs/{uid}/report.html": 200,
             "/explore": 200, "/explore/map-claim1": 200, "/explore/nope": 404, "/explore/map-claim1/panels": 200,
             "/login": 401}
    with castrig_serve(data) as served:
        for path, status in pages.items():
            code, body, headers = raw_get(served.url, path)
            assert code == status and headers["content-type"].startswith("text/html"), (path, code)
            assert_strict(path, code, headers)
        for path in ("/api/runs", f"/api/runs/{uid}", "/static/live.js", "/static/reload.js", "/nothing-here"):
            code, _, headers = raw_get(served.url, path)
            assert_strict(path, code, headers)
        code, body, _ = raw_get(served.url, "/")
        assert code == 200 and "<script src='/static/reload.js'></script>" in body and "<script>" not in body
        assert raw_get(served.url, "/", host="evil.example")[2]["x-content-type-options"] == "nosniff"


def test_a_fault_of_the_servers_own_is_answered_with_the_security_headers_too(tmp_path, castrig_serve):
    """An outside tester: the 500s that one odd run folder caused went out as Starlette's plain
    "Internal Server Error" without the policy headers every other answer carries (Starlette
    answers a fault outside the middleware that adds them). A fault is made here in the server
    process (its runs list raises), since none known is left."""
    from conftest import raw_get, with_sitecustomize

    hook = ("import castrig.serve.app as a\n"
            "def broken(*args, **kwargs):\n    raise RuntimeError('a fault of the server')\n"
            "a._filtered_runs = broken\n")
    (tmp_path / "data").mkdir()
    with castrig_serve(tmp_path / "data", env=with_sitecustomize(tmp_path, hook)) as served:
        status, body, headers = raw_get(served.url, "/")
    assert status == 500 and "a fault of the server" not in body
    for name in ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy"):
        assert name in headers, (name, headers)
