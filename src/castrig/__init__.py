"""castrig: control and data acquisition for a breath-figure membrane casting rig."""

#: Free room under which castrig's modules are not byte-compiled (their .pyc files, ~5 MB in all).
_PYC_ROOM_BYTES = 64 * 2**20


def _no_bytecode_without_room() -> None:
    """No .pyc written under a file-size limit (``ulimit -f``) or on a nearly full disk: Python
    writes one in one write() and installs it whatever that wrote, so a `castrig run` under a
    4 KiB limit left sqlite_connect's .pyc cut at 4096 bytes, and every castrig after it, with
    room again, ended "interrupted" (exit 130: click's word for the EOFError of the import). This
    package's own .pyc (under 1 KiB) is written before this runs; the rest are not."""
    import os
    import sys

    if sys.dont_write_bytecode:
        return
    try:
        import resource

        limited = resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY
        disk = os.statvfs(sys.pycache_prefix or os.path.dirname(__file__))
    except (ImportError, OSError, ValueError):
        return
    if limited or disk.f_bavail * disk.f_frsize < _PYC_ROOM_BYTES:
        sys.dont_write_bytecode = True


_no_bytecode_without_room()


def __getattr__(name: str) -> str:
    # castrig.__version__ read when asked: importlib.metadata takes ~60 ms, and the castrig process
    # imports this package before its early signal handlers are in place (cli/entry.py)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("castrig")
        except PackageNotFoundError:  # running from a source tree that was not installed
            value = "0.0.0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'castrig' has no attribute {name!r}")
