"""``castrig sim``: the digital twin's emulators on real OS links, and micrographs with truth."""

from __future__ import annotations

import errno
import json
import signal
import threading
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command()
def serve(
    profile: Optional[Path] = typer.Option(None, "--profile", help="Profile whose simulated devices to serve (default hw_profiles/sim.yaml)."),
    pty: bool = typer.Option(False, "--pty", help="Serve on pseudo-terminals (the default)."),
    tcp: Optional[int] = typer.Option(None, "--tcp", min=0, max=65000, help="Serve on loopback TCP ports from BASEPORT on (0: any free ports)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Seed of the twin (default: the profile's sim.seed)."),
    silence_floor_ms: float = typer.Option(10.0, "--silence-floor-ms", min=1.0, max=200.0,
                                           help="Modbus RTU (Watlow F4): least silence that ends a request, in wall time "
                                                "(an OS link may deliver one frame in pieces ms apart)."),
    stalled_client_s: float = typer.Option(10.0, "--stalled-client-s", min=0.1, max=3600.0,
                                           help="A TCP client that takes none of its replies this long is dropped, so "
                                                "that the device's line is free again; on a pty, replies nobody reads this "
                                                "long are dropped (each said on stderr)."),
) -> None:
    """Serve every emulator of the profile in wall-clock time; prints {device: address} as JSON.

    A Watlow F4 is a Modbus RTU slave (unit 1 unless the profile says another) on a pty, or RTU
    bytes on a raw TCP port with ``--tcp``; a Watlow F4T is a Modbus TCP server on loopback in
    both modes (``--pty`` gives it any free port). Any Modbus client can read and set them.
    """
    from castrig.clock import WallClock
    from castrig.rig.profile import load_profile
    from castrig.sim.scpi_chamber import ScpiChamberEmulator
    from castrig.sim.serve import SharedLine, serve_pty, serve_tcp
    from castrig.sim.twin import Twin
    from castrig.sim.watlow import WatlowF4Emulator, WatlowF4TEmulator
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
    # devices the profile puts on one serial line (an RS-485 bus of Alicat units, daisy-chained
    # pumps) are served on one address, as one line: each answers what is addressed to it
    lines = prof.shared_lines()
    served: dict[str, tuple[int, Any]] = {}  # role: (its place in role order, what is served)
    for i, (role, emu) in enumerate(sorted(twin.emulators.items())):
        peers = lines.get(role)
        if peers and peers[0] != role:
            continue  # served with the first unit of its line (its own port, BASE + i, unused)
        served[role] = (i, SharedLine([twin.emulators[r] for r in peers]) if peers else emu)
    try:
        for role, (i, emu) in served.items():
            if isinstance(emu, WatlowF4Emulator):
                emu.set_silence_floor(silence_floor_ms / 1000.0)
            if tcp is not None or isinstance(emu, WatlowF4TEmulator):  # Modbus TCP needs a socket
                port = 0 if not tcp else tcp + i
                try:
                    srv = serve_tcp(emu, port=port, stalled_client_s=stalled_client_s)
                except OSError as exc:
                    from castrig.errors import BadInput

                    if tcp is None or exc.errno not in (errno.EADDRINUSE, errno.EACCES):  # not the port asked for
                        _failed(f"{role}: no loopback TCP port {port} could be opened for it: {_why(exc)}")
                    why = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
                    raise BadInput(f"--tcp {tcp}: port {port} on 127.0.0.1 (for {role}) cannot be served: {why} "
                                   f"(give a base port whose {len(twin.emulators)} consecutive ports are free, "
                                   "or 0 for any free ports)", field="--tcp") from None
                addresses[role] = srv.visa_address if isinstance(emu, ScpiChamberEmulator) else srv.address
            else:
                try:
                    srv = serve_pty(emu, stalled_client_s=stalled_client_s)
                except OSError as exc:
                    _failed(f"{role}: no pseudo-terminal could be opened for it: {_why(exc)}")
                addresses[role] = srv.address
            srv.start()
            servers.append(srv)
        for role, peers in lines.items():
            addresses[role] = addresses[peers[0]]
        # Ctrl-C, SIGTERM or a server failing wakes this thread; nothing else does (idle, it
        # takes no CPU). Taken over before the addresses are printed: a host that reads them and
        # at once stops the server is a served simulator stopped (exit 0), not one interrupted
        # while starting (130, as a Ctrl-C landing between the two was on a loaded machine)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        typer.echo(json.dumps(dict(sorted(addresses.items()))), nl=True)
        for srv in servers:
            srv.on_error = stop.set
        if any(srv.error is not None for srv in servers):  # (failed before it could say so)
            stop.set()
        while not stop.wait(60.0):
            pass
        failed = [srv for srv in servers if srv.error is not None]
        if failed:
            _failed("; ".join(f"{srv.emulator.name} on {srv.address} failed while serving: {_why(srv.error)}"
                              for srv in failed))
    finally:
        for srv in servers:
            srv.stop()


def _why(exc: BaseException | None) -> str:
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__) if exc is not None else ""


def _failed(message: str) -> None:
    """A server could not be set up or failed while serving: one line, every server stopped,
    exit 3 (DESIGN §7: faulted), never a clean 0 nor a traceback."""
    from castrig.cli.main import EXIT_ABORTED, err
    from rich.markup import escape

    err.print(f"[bold red]error:[/] sim serve: {escape(message)}; every server stopped", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_ABORTED)


def _sim_link():
    from castrig.rig.profile import SimLinkConfig

    return SimLinkConfig(kind="sim")


@app.command()
def render(
    out: Path = typer.Option(..., "--out", help="Folder for the images and truth.json."),
    n: int = typer.Option(4, "--n", min=1, max=1000, help="How many membranes."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the rendering (same seed, same images)."),
    rh_pct: Optional[float] = typer.Option(None, "--rh", min=20, max=100, help="Chamber RH during evaporation (default: spread 60-90)."),
    concentration_mg_ml: float = typer.Option(5.0, "--concentration", min=0.5, max=100, help="Polymer concentration, mg/mL."),
    pixel_size_um: float = typer.Option(0.25, "--pixel-size", min=0.01, max=10, help="Top views, µm per pixel."),
    section_pixel_size_um: float = typer.Option(0.05, "--section-pixel-size", min=0.005, max=10, help="Section view, µm per pixel."),
    width_px: int = typer.Option(1024, "--width", min=64, max=4096, help="Image width and height, px."),
    bit_depth: int = typer.Option(8, "--bit-depth", help="Bits per pixel: 8 or 16."),
) -> None:
    """Write simulated micrographs (reflected, transmitted, section) and their ground truth."""
    from castrig.cli.main import usable_folder
    from castrig.sim.render_set import render_set

    usable_folder(out, "--out", holds="the folder for the images and truth.json", writes=True)
    if bit_depth not in (8, 16):
        from castrig.errors import BadInput

        raise BadInput(f"--bit-depth = {bit_depth}: allowed 8 or 16", field="--bit-depth")
    try:
        truth = render_set(out, n=n, seed=seed, rh_pct=rh_pct, concentration_mg_ml=concentration_mg_ml,
                           pixel_size_um=pixel_size_um, section_pixel_size_um=section_pixel_size_um, width_px=width_px,
                           bit_depth=bit_depth)
    except OSError as exc:  # a full disk (or ulimit -f) under --out: it was a traceback, exit 1
        from castrig.errors import BadInput

        raise BadInput(f"--out {out}: cannot write the images ({exc.strerror or exc}); each image written is whole, "
                       "truth.json is written last: render again once there is room", file=str(out), field="--out") from None
    typer.echo(f"{len(truth)} membranes in {out} (truth.json beside the images)")


@app.command()
def fit(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders recorded on the rig to model."),
    profile: Optional[Path] = typer.Option(None, "--profile", help="The twin to start from (default hw_profiles/sim.yaml)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the fitted twin's profile here (the start profile, sim.* fitted)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Fit the twin's chamber (volume, leak, sensor lag, wet-line RH) to recorded runs; print
    the replay RMS of the near-membrane RH per run."""
    from castrig.cli.main import default_profile, writable_file
    from castrig.rig.profile import load_profile
    from castrig.sim.fit import fit as fit_runs
    from castrig.sim.fit import load_run, write_profile

    from castrig.errors import BadInput

    start_path = Path(profile or default_profile())
    if out is not None:  # said before the fit's minutes, not as a traceback after them
        writable_file(out, "--out")
    seen: dict[Path, Path] = {}
    for d in run_dirs:  # one run twice counted its samples twice ("2 run(s)", one listed)
        if d.resolve() in seen:
            raise BadInput(f"{d}: given twice (as {seen[d.resolve()]}) (allowed: each run folder once)", file=str(d))
        seen[d.resolve()] = d
    start = load_profile(start_path)
    runs = [load_run(d) for d in run_dirs]
    result = fit_runs(runs, start)
    if out is not None:
        write_profile(start_path, out, result.params)
    if as_json:
        typer.echo(json.dumps({"kind": result.kind, "params": result.params, "start": result.start,
                               "rms_pct": result.rms_pct, "start_rms_pct": result.start_rms_pct,
                               "rms_total_pct": result.rms_total_pct, "evaluations": result.evaluations,
                               "out": str(out) if out else None}))
        return
    typer.echo(f"{len(runs)} run(s), {result.kind} chamber, {sum(len(r.t_s) for r in runs)} RH samples; "
               f"scipy least_squares, {result.evaluations} evaluations")
    typer.echo(f"{'parameter':<18} {'start':>10} {'fitted':>10}")
    for name, value in result.params.items():
        typer.echo(f"{name:<18} {result.start[name]:>10.4g} {value:>10.4g}")
    for path, rms in result.rms_pct.items():
        typer.echo(f"replay RMS {rms:.3f} %RH (start twin {result.start_rms_pct[path]:.3f}): {path}")
    typer.echo(f"replay RMS over all runs: {result.rms_total_pct:.3f} %RH")
    typer.echo(f"fitted profile written to {out}" if out else "not written: add --out PROFILE to write the fitted twin")
