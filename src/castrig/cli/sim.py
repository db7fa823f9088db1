"""``castrig sim``: the digital twin's emulators on real OS links, and micrographs with truth."""

from __future__ import annotations

import errno
import json
import signal
import threading
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command()
def serve(
    profile: Optional[Path] = typer.Option(None, "--profile", help="Profile whose simulated devices to serve (default hw_profiles/sim.yaml)."),
    pty: bool = typer.Option(False, "--pty", help="Serve on pseudo-terminals (the default)."),
    tcp: Optional[int] = typer.Option(None, "--tcp", min=0, max=65000, help="Serve on loopback TCP ports from BASEPORT on (0: any free ports)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0),
) -> None:
    """Serve every emulator of the profile in wall-clock time; prints {device: address} as JSON."""
    from castrig.clock import WallClock
    from castrig.rig.profile import load_profile
    from castrig.sim.serve import serve_pty, serve_tcp
    from castrig.sim.twin import Twin
    from castrig.cli.main import default_profile

    if pty and tcp is not None:
        from castrig.errors import BadInput

        raise BadInput("--pty and --tcp: choose one")
    prof = load_profile(profile or default_profile())
    # Serve the devices as simulated whatever links the profile names: the point is to reach
    # them over real links, e.g. with hw_profiles/sim-serial.yaml.
    sim_profile = prof.model_copy(deep=True)
    for _, cfg in sim_profile.device_configs().items():
        if getattr(cfg, "link", None) is not None:
            cfg.link = _sim_link()
    twin = Twin(sim_profile, WallClock(), seed)
    servers = []
    addresses: dict[str, str] = {}
    try:
        for i, (role, emu) in enumerate(sorted(twin.emulators.items())):
            if tcp is not None:
                port = 0 if tcp == 0 else tcp + i
                try:
                    srv = serve_tcp(emu, port=port)
                except OSError as exc:
                    from castrig.errors import BadInput

                    why = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
                    raise BadInput(f"--tcp {tcp}: port {port} on 127.0.0.1 (for {role}) cannot be served: {why} "
                                   f"(give a base port whose {len(twin.emulators)} consecutive ports are free, "
                                   "or 0 for any free ports)", field="--tcp") from None
                addresses[role] = srv.visa_address if role == "chamber" else srv.address
            else:
                srv = serve_pty(emu)
                addresses[role] = srv.address
            srv.start()
            servers.append(srv)
        typer.echo(json.dumps(addresses), nl=True)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        while not stop.wait(0.5):
            for srv in servers:
                if srv.error is not None:
                    typer.echo(f"server {srv.emulator.name} failed: {srv.error}", err=True)
                    stop.set()
    finally:
        for srv in servers:
            srv.stop()


def _sim_link():
    from castrig.rig.profile import SimLinkConfig

    return SimLinkConfig(kind="sim")


@app.command()
def render(
    out: Path = typer.Option(..., "--out", help="Folder for the images and truth.json."),
    n: int = typer.Option(4, "--n", min=1, max=1000, help="How many membranes."),
    seed: int = typer.Option(0, "--seed", min=0),
    rh_pct: Optional[float] = typer.Option(None, "--rh", min=20, max=100, help="Chamber RH during evaporation (default: spread 60-90)."),
    concentration_mg_ml: float = typer.Option(5.0, "--concentration", min=0.5, max=100),
    pixel_size_um: float = typer.Option(0.25, "--pixel-size", min=0.01, max=10, help="Top views, µm per pixel."),
    section_pixel_size_um: float = typer.Option(0.05, "--section-pixel-size", min=0.005, max=10, help="Section view, µm per pixel."),
    width_px: int = typer.Option(1024, "--width", min=64, max=4096),
    bit_depth: int = typer.Option(8, "--bit-depth"),
) -> None:
    """Write simulated micrographs (reflected, transmitted, section) and their ground truth."""
    from castrig.sim.render_set import render_set

    if bit_depth not in (8, 16):
        from castrig.errors import BadInput

        raise BadInput(f"--bit-depth = {bit_depth}: allowed 8 or 16", field="--bit-depth")
    truth = render_set(out, n=n, seed=seed, rh_pct=rh_pct, concentration_mg_ml=concentration_mg_ml,
                       pixel_size_um=pixel_size_um, section_pixel_size_um=section_pixel_size_um, width_px=width_px,
                       bit_depth=bit_depth)
    typer.echo(f"{len(truth)} membranes in {out} (truth.json beside the images)")
