"""One ``castrig serve`` shared by the tests of a module that only read through it (each started
its own, ~0.6 s of CPU): its stderr read as it grows, so a test still checks that nothing it
asked left a traceback in the server's log. (A candidate for conftest.)"""

from __future__ import annotations

import os
import signal
import time


class SharedServer:
    """A started ``castrig serve`` (conftest ``Served``) whose log is read as it grows:
    ``mark()`` where it stands now, ``log_since(mark)`` what came after, ``whole_log()`` all of
    it once stopped as Ctrl-C would (the module's end: a traceback written after a test's last
    look still fails there)."""

    def __init__(self, served) -> None:
        self.served, self.url, self.proc, self.token = served, served.url, served.proc, served.token
        self._log = b""
        os.set_blocking(served.proc.stderr.fileno(), False)

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.proc.stderr.fileno(), 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._log += chunk

    def mark(self) -> int:
        self._read()
        return len(self._log)

    def log_since(self, mark: int) -> str:
        """What the server wrote to stderr since ``mark`` (after a moment: uvicorn logs a
        request's traceback after its 500 is sent)."""
        time.sleep(0.3)
        self._read()
        return self._log[mark:].decode(errors="replace")

    def whole_log(self) -> str:
        """Stop it as Ctrl-C would; all it wrote to stderr."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        os.set_blocking(self.proc.stderr.fileno(), True)
        self._read()
        return self._log.decode(errors="replace")
