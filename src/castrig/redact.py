"""Passwords out of what castrig writes down: logs, messages, run.json, reports, the fleet store.

One function, :func:`redact`, for a URL (or any text holding URLs): the password of every
``scheme://user:password@host`` becomes ``***``, as does a ``password=`` query parameter
(libpq's ``?password=``). :func:`redact_urls` applies it to every string of a nested structure —
a profile as it is recorded (``store: postgresql://…``, a camera's ``rtsp://user:pw@…``), whatever
its field is called. :func:`restore_redacted` puts the operator's own values back for a resume,
which must reach the same store and devices with their real credentials.

>>> redact("postgresql://castrig:s3cr@t@db:5432/fleet")
'postgresql://castrig:***@db:5432/fleet'
>>> redact("postgresql://castrig:pa?s#s/x@db:5432/fleet")
'postgresql://castrig:***@db:5432/fleet'
>>> redact("postgresql://db/fleet?user=castrig&password=s3cret")
'postgresql://db/fleet?user=castrig&password=***'
>>> redact("host=db user=castrig password='s3 cret' dbname=fleet")
'host=db user=castrig password=*** dbname=fleet'
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# userinfo's password runs to the last '@' before the host: a password may hold an unescaped '@',
# '?', '#' or '/' (libpq takes them as written), so it ends only at an '@' followed by a host and
# then the URL's end (its path, query, fragment, whitespace, a quote or the text's end)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#\s]*):(?:(?!://)\S)*?@"
                       r"(?=[^\s@/?#]*(?:[/?#\s\"',;)\]]|$))")
_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)[^&#\s]*", re.IGNORECASE)
# libpq's keyword/value form ("host=db user=castrig password=s3cret"): a value quoted in single
# quotes may hold spaces and escaped quotes
_CONNINFO = re.compile(r"(?P<head>(?:^|(?<=[\s'\"=]))password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _QUERY.sub(lambda m: f"{m['head']}{MASK}", text)
    return _CONNINFO.sub(lambda m: f"{m['head']}{MASK}", text) if "assword" in text or "ASSWORD" in text else text


def _userinfo(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, user, password, the rest after the '@') of a URL by its own structure (its
    userinfo runs to the last ``@``); None without a password."""
    head, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not (sep and at and ":" in userinfo):
        return None
    user, _, password = userinfo.partition(":")
    return head, user, password, host


def redact_url(url: str) -> str:
    """One URL with its password replaced by ``***``, found by the URL's own structure:
    :func:`redact`, which looks for URLs in free text, stops at whitespace, and a password with
    a space in it was shown whole."""
    parts = _userinfo(url)
    if parts is not None:
        url = f"{parts[0]}://{parts[1]}:{MASK}@{parts[3]}"
    return redact(url)


def secrets_of(url: str) -> list[str]:
    """The password(s) ``url`` holds, as written and percent-decoded."""
    from urllib.parse import unquote

    parts = _userinfo(url)
    found = [parts[2]] if parts is not None else []
    found += [m.group(0).split("=", 1)[1] for m in _QUERY.finditer(url)]
    found = [f for f in found if f and f != MASK]
    return sorted({*found, *(unquote(f) for f in found)} - {"", MASK}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (an error a database driver raised about ``url``) with ``url``'s password taken
    out wherever it stands: the driver quotes the URL, or a piece of it ("invalid
    percent-encoded token: s3%zzPW"), in forms :func:`redact` does not recognise."""
    for secret in secrets_of(url):
        text = text.replace(secret, MASK)
    return redact(text)


def redact_urls(value: Any) -> Any:
    """A copy of ``value`` (dicts, lists, strings, as ``model_dump(mode="json")`` gives them)
    with every string passed through :func:`redact`."""
    if isinstance(value, str):
        return redact(value) if "://" in value or "password" in value.lower() else value
    if isinstance(value, dict):
        return {k: redact_urls(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_urls(v) for v in value]
    return value


def restore_redacted(recorded: Any, current: Any) -> Any:
    """``recorded`` (a redacted copy) with each redacted string taken from ``current`` (the
    operator's own profile, same shape) where that one redacts to it — the same URL, with its
    password. Strings without a redaction, and those ``current`` does not match, stay as recorded."""
    if isinstance(recorded, str):
        if MASK in recorded and isinstance(current, str) and current != recorded and recorded in (redact(current), redact_url(current)):
            return current
        return recorded
    if isinstance(recorded, dict):
        cur = current if isinstance(current, dict) else {}
        return {k: restore_redacted(v, cur.get(k)) for k, v in recorded.items()}
    if isinstance(recorded, list):
        cur = current if isinstance(current, list) and len(current) == len(recorded) else [None] * len(recorded)
        return [restore_redacted(v, c) for v, c in zip(recorded, cur)]
    return recorded


def is_redacted(value: Any) -> bool:
    """Whether any string in ``value`` had a password taken out by :func:`redact`."""
    if isinstance(value, str):
        return f":{MASK}@" in value or bool(re.search(rf"[?&](?:password|passwd|pwd)={re.escape(MASK)}", value, re.IGNORECASE))
    if isinstance(value, dict):
        return any(is_redacted(v) for v in value.values())
    if isinstance(value, list):
        return any(is_redacted(v) for v in value)
    return False
