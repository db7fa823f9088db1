"""The analysis's worker threads: one pool per process, sized by ``$CASTRIG_ANALYSIS_THREADS``.

numpy and scipy release the GIL in their loops, so two threads overlap the independent stages of
one analysis (the rim check beside the cores, the transmitted image beside the reflected one).
"""

from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor
import threading

_POOL: ThreadPoolExecutor | None = None


_POOL_LOCK = threading.Lock()


class _Inline(Executor):
    """An executor that runs each job at once in the calling thread (no worker threads).

    An :class:`~concurrent.futures.Executor`, so ``map`` and the rest behave as the pool's do (it
    had ``submit`` only, and the first ``map`` on a large merged-pore region raised
    AttributeError in every explore worker that ran without threads)."""

    def submit(self, fn, *args, **kwargs) -> Future:  # type: ignore[no-untyped-def]
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, as a thread's would be
            fut.set_exception(exc)
        return fut


def analysis_threads() -> int:
    """Worker threads of the analysis: ``$CASTRIG_ANALYSIS_THREADS`` (default 2; 0 runs every job
    in the calling thread). ``castrig explore`` sets 0 in its worker processes when they already
    use every core: a thread pool per process would only oversubscribe them."""
    from castrig.envvars import whole_number

    return whole_number("CASTRIG_ANALYSIS_THREADS")  # (checked as the castrig command starts)


def pool() -> ThreadPoolExecutor | _Inline:
    global _POOL
    if _POOL is None:
        with _POOL_LOCK:
            if _POOL is None:
                n = analysis_threads()
                _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="castrig-analysis") if n else _Inline()  # type: ignore[assignment]
    return _POOL  # type: ignore[return-value]
