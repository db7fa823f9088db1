"""Reliability harnesses shared by ``tests/reliability`` and ``benchmarks/reliability.py``.

* :mod:`.faults` — the fault catalogue and a seeded schedule of (fault, step, time) points;
* :mod:`.harness` — one recipe run in-process on the twin with one fault injected through the
  emulators (or the store, or the clock) at a point, judged: recovered, safe-stopped or failed;
* :mod:`.linkfaults` — the same link faults over real OS links (TCP, pty) via ``sim serve``;
* :mod:`.crash` — SIGKILL a ``castrig run`` child at seeded moments, ``castrig resume``, compare
  with an uninterrupted run of the same seed;
* :mod:`.badinputs` — the malformed-recipe/profile corpus under ``tests/data/bad_inputs``.
"""
