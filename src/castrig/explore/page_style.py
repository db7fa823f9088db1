"""The search map's one stylesheet, in a module of its own: ``castrig serve`` allows it by hash
(serve/explore.py: FRAME_CSP) as it starts, without importing the map's plots (castrig.explore.plots
reads search settings: pydantic, the recipe and profile models, numpy; ~0.2 s of CPU)."""

PAGE_STYLE = ("body{font-family:sans-serif;margin:1.5em} .maps{display:flex;flex-wrap:wrap;gap:12px}"
              "table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}")
