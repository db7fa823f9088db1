"""One rig, one owner: a lock per device resource, taken before a single byte is sent.

Two runs whose profiles name the same serial port, socket, VISA resource or camera must not both
drive it: the second would re-send ``SAF0``/``DIA`` to a pump that another run is casting with.
Every resource a profile names is turned into a *key* that is the same however it is spelled
(a device file by its number: ``/dev/serial/by-id/…``, the ``/dev/ttyUSB0`` it points to and
another node of it; every address of this machine as one host: ``socket://localhost:47101``,
``socket://127.0.1.1:47101``, ``socket://[::1]:47101``; ``TCPIP::host::5025::SOCKET`` and
``socket://host:5025``), and each key — with the key castrig took before, for a run of the
castrig before an upgrade — is locked through :mod:`castrig.oslock` in a machine-wide folder
(``$CASTRIG_LOCK_DIR``, else ``/run/lock/castrig`` where /run/lock is open to every user, else
``/tmp/castrig-locks``: one folder for every user, root included). The OS drops
the locks when the process dies. Devices on the in-process simulator link are private to their
run and take no lock.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import re
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from castrig import oslock
from castrig.errors import Busy, RigUnreachable
from castrig.rig.profile import OpenCVCameraConfig, Profile, SerialLinkConfig, VisaLinkConfig


#: The folders a machine's lock folder is made in (one place, which a test points elsewhere): /tmp,
#: not the user's $TMPDIR, which differs between users.
RUN_LOCK = Path("/run/lock")
SHARED_TMP = Path("/tmp")


def lock_dir() -> Path:
    """Where device locks live: the same folder for every user and process of this machine.

    Decided by what /run/lock is, never by who asks: open to every user (Debian's 1777) →
    /run/lock/castrig; else (root's alone, as on Fedora) /tmp/castrig-locks for everyone, root
    included. Decided by whether the caller could write /run/lock, root locked in one folder and
    every other user in another: `sudo castrig safe` drove the sockets of a user's live run."""
    env = os.environ.get("CASTRIG_LOCK_DIR")
    if env:
        return Path(env)
    if _open_to_all(RUN_LOCK):
        return RUN_LOCK / "castrig"
    return SHARED_TMP / "castrig-locks"


def _open_to_all(folder: Path) -> bool:
    """A folder every user may make files in and none may remove another's (world-writable, sticky)."""
    try:
        st = folder.stat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_mode & (stat.S_ISVTX | stat.S_IWOTH) == stat.S_ISVTX | stat.S_IWOTH


def _host(host: str, resolve: bool = True) -> str:
    """The host's address: looked up (``resolve``), or only as written — ``localhost`` and IPv4
    literals are known without asking DNS, which a profile's validation must not wait on."""
    h = host.lower().rstrip(".")
    if h == "localhost" or h == "127.0.0.1":
        return "127.0.0.1"
    literal = _ip_literal(h)
    if literal is not None:
        return literal
    if not resolve:
        return h
    try:
        return socket.gethostbyname(host)
    except OSError:
        return h


def _ip_literal(host: str) -> str | None:
    """An address written as a literal, in one spelling: ``127.1``, ``0x7f000001`` (the short
    forms connect() takes, as inet_aton reads them) and ``::ffff:127.0.0.1`` are 127.0.0.1.
    Compared as written (validation asks no DNS), two sensors on ``127.0.0.1:P`` and ``127.1:P``
    were a valid profile: the run then opened one port twice. None for a name.

    The unspecified address (``0.0.0.0``, ``0``, ``::``) is the loopback it connects to: Linux
    connects a socket aimed at it to 127.0.0.1 (``::1``). Kept as written, a second run with its
    rig spelled ``socket://0.0.0.0:P`` passed a live run's device locks and sent SAF0 to its pumps."""
    h = host.strip("[]")
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        try:
            if not (h and all(c in "0123456789abcdefx." for c in h)):
                return None
            ip = ipaddress.ip_address(socket.inet_ntoa(socket.inet_aton(h)))
        except OSError:
            return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "127.0.0.1" if ip.version == 4 else "::1"
    return str(ip)


def device_key(path: str, before: bool = False) -> str:
    """A device file as its lock: a character device by its number (``chr:MAJOR:MINOR``), the one
    thing every spelling of it shares — a symlink (``/dev/serial/by-id/…``), the node it points to,
    and another node of the same device (``docker run --device /dev/ttyUSB0:/dev/pump``, a node
    made with mknod, a bind mount), which its real path alone told apart: a second run so spelled
    took its own lock and drove the pump of a run in progress (pyserial's ``exclusive`` flock is
    per node, no guard either). Anything else (a path that is no device yet, a Windows ``COM3``)
    by its real path."""
    import stat

    real = os.path.realpath(path)
    if before:  # (the key castrig took before: see resource_keys)
        return "dev:" + real
    try:
        st = os.stat(real)
    except (OSError, ValueError):
        return "dev:" + real
    if stat.S_ISCHR(st.st_mode):
        return f"chr:{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return "dev:" + real


#: A TCP endpoint's host in its lock when the address is this machine's: every loopback address
#: (127.0.0.0/8, ::1), the unspecified one, the addresses of its own interfaces
THIS_MACHINE = "this-machine"


def _endpoint_host(host: str, resolve: bool = True) -> str:
    """A device server's host as its lock names it: :data:`THIS_MACHINE` for any address of this
    machine, else its address (a name looked up only with ``resolve``; of several, the least IPv4
    one, as a connect would take first).

    One lock for all of this machine's addresses, because a server listening on 0.0.0.0 (or on
    ``::`` for both families, as ``castrig sim serve`` on a lab PC or a device's own bridge may)
    is one socket at 127.0.0.1:P, 127.0.1.1:P (Debian's address for the host name), [::1]:P and
    the LAN address: each spelled as a lock of its own, a second run so spelled sent SAF0 to the
    pumps of a run in progress. Two servers bound to two loopback addresses at one port are then
    one lock: a second run refused that could have gone (busy, exit 4), the safe side of it."""
    h = host.lower().rstrip(".")
    addresses = [_host(h, resolve=False)]
    if _ip_literal(addresses[0]) is None and resolve:
        try:
            addresses = sorted({str(a[4][0]).split("%", 1)[0] for a in socket.getaddrinfo(h, None, type=socket.SOCK_STREAM)})
        except (OSError, UnicodeError):
            pass
    if any(_on_this_machine(a) for a in addresses):
        return THIS_MACHINE
    literals = [a for a in addresses if _ip_literal(a) is not None]
    v4 = [a for a in literals if ":" not in a]
    return _ip_literal(min(v4 or literals, key=lambda a: ipaddress.ip_address(a))) if literals else addresses[0]  # type: ignore[return-value]


def _on_this_machine(address: str) -> bool:
    """Whether ``address`` (a literal; a name is not) is one of this machine's: a loopback or
    unspecified one, or one a socket can be bound to (the interfaces' own: asked of the OS, no
    name server). Not trusted where the OS binds any address (``ip_nonlocal_bind``: a documentation
    address binds too), which would make every remote server one lock."""
    literal = _ip_literal(address)
    if literal is None:
        return False
    ip = ipaddress.ip_address(literal)
    if ip.is_loopback or ip.is_unspecified:
        return True
    return not ip.is_link_local and _binds(literal) and not _binds("203.0.113.254" if ip.version == 4 else "2001:db8::fe")


def _binds(literal: str) -> bool:
    family = socket.AF_INET6 if ":" in literal else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((literal, 0))
        return True
    except OSError:
        return False


def serial_key(url: str, resolve: bool = True, before: bool = False) -> str:
    """The resource behind a pyserial URL: a device (:func:`device_key`) or a TCP endpoint
    (its host looked up only with ``resolve``)."""
    if "://" not in url:
        return device_key(url, before)
    parts = urlsplit(url)
    if parts.scheme in ("socket", "rfc2217") and parts.hostname and parts.port:
        return f"tcp:{(_host if before else _endpoint_host)(parts.hostname, resolve)}:{parts.port}"
    if parts.scheme == "loop":
        return ""  # a loopback in this process: nothing outside it to own
    if parts.scheme in ("spy", "alt"):
        # a port wrapped (spy://PORT?file=…, alt://PORT?class=…): the port it opens is the one
        # owned (as an opaque key, a second run spelling the port so drove the rig of a run in
        # progress: it found the water pump pumping and stopped it mid pre-wet)
        return serial_key(url.split("://", 1)[1].split("?", 1)[0], resolve, before)
    if parts.scheme == "hwgrep":
        from serial.tools import list_ports

        found = next(iter(list_ports.grep(url.split("://", 1)[1].split("&", 1)[0])), None)
        return serial_key(found.device, resolve, before) if found is not None else url
    return url


def visa_key(resource: str, resolve: bool = True, before: bool = False) -> str:
    """``TCPIP[n]::host::port::SOCKET`` → the TCP endpoint; ``ASRLn``/``ASRL/dev/x`` → the port."""
    r = resource.strip()
    m = re.match(r"(?i)^TCPIP\d*::([^:]+)::(\d+)::SOCKET$", r)
    if m:
        return f"tcp:{(_host if before else _endpoint_host)(m.group(1), resolve)}:{int(m.group(2))}"
    m = re.match(r"(?i)^TCPIP\d*::([^:]+)(::.*)?::INSTR$", r)
    if m and before:
        return f"visa:{_host(m.group(1), resolve)}{(m.group(2) or '').lower()}"
    if m:  # the device name VISA takes when none is given (inst0), HiSLIP's own port (4880) left out
        name = re.sub(r",4880$", "", (m.group(2) or "::inst0").lower())
        return f"visa:{_endpoint_host(m.group(1), resolve)}{name}"
    m = re.match(r"(?i)^ASRL(/.+?)(::INSTR)?$", r)
    if m:
        return device_key(m.group(1), before)
    return "visa:" + r.upper()


def url_key(url: str, resolve: bool = True, before: bool = False) -> str:
    """A camera's URL as its lock: :func:`url_in_one_spelling` without the user. Taken whole,
    ``rtsp://lab:PASSWORD@host/s`` became a lock file named with the password in the folder every
    user lists (lock files stay), and the same camera written with another password was another lock."""
    return "url:" + url_in_one_spelling(url, resolve=resolve, this_machine=not before)


def url_in_one_spelling(url: str, *, resolve: bool = True, user: bool = False, this_machine: bool = False) -> str:
    """``scheme://[user@]host[:port]/path?query`` as one device or service is written whichever
    way it was given: no password (in the user part, or ``password=`` in the path or query:
    cameras that take the login there, rtsp://IP/user=admin&password=PW&channel=1), the scheme in
    lower case, the host in one spelling (:func:`_host`), no port where it is the scheme's default
    (rtsp://h/s and rtsp://h:554/s are one camera). ``user``: keep the user name (a database's).
    ``this_machine``: every address of this machine as :data:`THIS_MACHINE` (a device's lock: see
    :func:`_endpoint_host`)."""
    from castrig.redact import redact

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = f":{parts.port}" if parts.port not in (None, _DEFAULT_PORTS.get(scheme)) else ""
    except ValueError:  # (a port that is no number: the URL as written, its credentials out)
        port = ""
    host = (_endpoint_host if this_machine else _host)(parts.hostname, resolve) if parts.hostname else ""
    host = f"[{host}]" if ":" in host else host
    name = f"{parts.username}@" if user and parts.username else ""
    query = f"?{parts.query}" if parts.query else ""
    return redact(f"{scheme}://{name}{host}{port}{parts.path}{query}")


#: a URL's port when it gives none: rtsp://host/s and rtsp://host:554/s are one camera, a database
#: on postgresql://db/x and postgresql://db:5432/x one database
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935, "postgresql": 5432, "mysql": 3306}


def resource_keys(profile: Profile, before: bool = False) -> dict[str, list[str]]:
    """{resource key: [roles]} for every device of ``profile`` that reaches outside the process.
    ``before``: the keys castrig took before device files were keyed by number and this machine's
    addresses as one (a real path; a TCP host as its one IPv4 address)."""
    keys: dict[str, list[str]] = {}
    for role, cfg in profile.device_configs().items():
        link = getattr(cfg, "link", None)
        key = ""
        if isinstance(link, SerialLinkConfig):
            key = serial_key(link.url, before=before)
        elif isinstance(link, VisaLinkConfig):
            key = visa_key(link.resource, before=before)
        elif isinstance(cfg, OpenCVCameraConfig):
            from castrig.devices.camera import is_stream_url

            key = (device_key(f"/dev/video{cfg.source}", before) if isinstance(cfg.source, int)
                   else url_key(cfg.source, before=before) if is_stream_url(cfg.source) else device_key(cfg.source, before))
        if key:
            keys.setdefault(key, []).append(role)
    return keys


def _shown(key: str, profile: Profile, role: str) -> str:
    """A lock's device as a refusal names it: as this profile spells it, with what makes it the
    same device as another spelling (its device number, ``this machine's port P``); the key alone
    (``136:8``, ``this-machine:47103``) said nothing to whoever reads it."""
    kind, _, rest = key.partition(":")
    cfg = profile.device_configs()[role]
    link = getattr(cfg, "link", None)
    spelled = getattr(link, "url", None) or getattr(link, "resource", None) or str(getattr(cfg, "source", ""))
    if kind == "chr":
        return f"{spelled}, device {rest}"
    if kind == "url" and f"//{THIS_MACHINE}" in rest:
        return f"{url_in_one_spelling(spelled, resolve=False)}, on this machine"
    host, _, port = rest.rpartition(":")
    if host == THIS_MACHINE:
        return f"{spelled}, this machine's port {port}"
    return rest


def _lock_path(key: str) -> Path:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_")[:80]
    return lock_dir() / f"{readable}-{hashlib.sha1(key.encode()).hexdigest()[:10]}.lock"


@dataclass
class RigClaim:
    """The device locks of one rig, held until :meth:`release` (or the process ends)."""

    profile_name: str
    paths: list[Path] = field(default_factory=list)

    def release(self) -> None:
        for p in reversed(self.paths):
            oslock.release(p)
        self.paths.clear()

    def __enter__(self) -> "RigClaim":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _shared_folder(folder: Path) -> None:
    """The lock folder as /tmp is: every user may make locks in it, none may remove another's
    (sticky). Made by the first user with the default mode (0755), it refused every other user's
    run on every rig, and the advice to set $CASTRIG_LOCK_DIR gave that user locks nobody else sees.

    In /tmp another user may have made it first, or put a symlink in its place (root would then
    make and chmod lock files wherever it points): a symlink is refused (``O_NOFOLLOW``), root takes
    a folder another user made (else that user could remove root's locks), and a folder that is
    not 1777 and cannot be made so is refused, saying whose it is."""
    try:
        os.mkdir(folder, 0o755)
    except FileExistsError:
        pass
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if os.getuid() == 0 and st.st_uid != 0:
            os.fchown(fd, 0, 0)
        elif st.st_uid != os.getuid():
            if stat.S_IMODE(st.st_mode) & 0o1777 != 0o1777:
                raise PermissionError(errno.EPERM, f"made by uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):04o}, "
                                                   "not 1777 (open to every user, sticky)")
            return
        if stat.S_IMODE(st.st_mode) != 0o1777:
            os.fchmod(fd, 0o1777)
    finally:
        os.close(fd)


def _shared_file(path: Path) -> None:
    """A device's lock file readable and lockable by every user (made 0644 under the umask); the
    file itself, never what a symlink put in its place points to."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid():
            os.fchmod(fd, 0o666)
    except OSError:
        pass
    finally:
        os.close(fd)


def claim_rig(profile: Profile, *, purpose: str) -> RigClaim:
    """Lock every device resource of ``profile`` (all or none), or raise :class:`Busy`.

    Re-entrant within a process, so a queue can hold the rig across its runs.
    """
    claim = RigClaim(profile.name)
    try:
        # the keys of before too: a castrig of before, still running the night's run after an
        # upgrade, holds those, and a castrig safe of this one, not seeing them, drove its pumps
        keys = resource_keys(profile)
        for key, roles in resource_keys(profile, before=True).items():
            keys.setdefault(key, roles)
        for key, roles in sorted(keys.items()):
            path = _lock_path(key)
            what = f"device {', '.join(roles)} ({_shown(key, profile, roles[0])}) of profile {profile.name!r}"
            try:
                shared = not os.environ.get("CASTRIG_LOCK_DIR")  # (a folder of the user's own choice is left as it is)
                if shared:
                    _shared_folder(path.parent)
                oslock.acquire(path, purpose=purpose, what=what)
                if shared:
                    _shared_file(path)
            except Busy:
                raise
            except OSError as exc:  # the lock folder itself is unusable: say where
                raise RigUnreachable(f"cannot lock {what}: {path}: {exc.strerror or exc} "
                                     "(set $CASTRIG_LOCK_DIR to a writable folder shared by all users)") from None
            claim.paths.append(path)
    except BaseException:
        claim.release()
        raise
    return claim


def open_owned_rig(profile: Profile, *, seed: int | None, purpose: str, camera_answers: bool = False,
                   partial: bool = False) -> Any:
    """Own every device of ``profile`` (else :class:`Busy`, before a byte is sent), then open them
    (else :class:`RigUnreachable`, nothing recorded; with ``partial``, those that open, the others
    named in ``rig.unreached``). The rig holds its claim until it is closed."""
    from castrig.errors import CastrigError
    from castrig.rig.build import build_rig, make_clock

    claim = claim_rig(profile, purpose=purpose)
    try:
        rig = build_rig(profile, clock=make_clock(profile), seed=seed, camera_answers=camera_answers, partial=partial)
    except Busy:
        claim.release()
        raise
    except CastrigError as exc:
        claim.release()
        raise RigUnreachable(f"cannot open the rig of profile {profile.name!r}: {exc}") from exc
    except BaseException:
        claim.release()
        raise
    rig.claim = claim
    return rig
