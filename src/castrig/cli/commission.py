"""Commissioning commands: ``castrig tune rh`` and ``castrig calibrate camera``.

Both measure something about the rig, say how well they measured it, and write it into the
profile only when asked (``--write``), keeping the file's comments and layout
(:mod:`castrig.rig.profile_edit`).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Optional

import typer

from castrig.sigint_hold import SigintHold

tune_app = typer.Typer(no_args_is_help=True, help="Commission the RH loop: step test, FOPDT model, SIMC gains.")
calibrate_app = typer.Typer(no_args_is_help=True, help="Calibrate the camera's pixel size from a target of known pitch.")


def mount(app: typer.Typer) -> None:
    app.add_typer(tune_app, name="tune")
    app.add_typer(calibrate_app, name="calibrate")


def _open_rig(profile_path: Path, seed: Optional[int], purpose: str):  # type: ignore[no-untyped-def]
    """Own the profile's devices (Busy before a byte is sent), then open them (RigUnreachable:
    what answers is made safe first, as ``castrig run`` does)."""
    from castrig.errors import RigUnreachable
    from castrig.recipe.run_unopened import make_safe_and_refuse
    from castrig.rig.ownership import open_owned_rig
    from castrig.rig.profile import load_profile

    profile = load_profile(profile_path)
    try:
        return open_owned_rig(profile, seed=seed, purpose=purpose)
    except RigUnreachable as exc:
        make_safe_and_refuse(profile, profile_path, seed=seed, purpose=purpose, exc=exc, command="step test",
                             nothing_ran="no step test was run")


class _StopsEndTheTest:
    """SIGTERM, SIGHUP, SIGQUIT and SIGXCPU during ``castrig tune rh``'s step test end it like Ctrl-C: out
    of the test to the safe state, then exit 3 (``Terminated``). Their default action killed the
    process where it stood -- ``kill``, a closed terminal or a dropped ssh session in an hour-long
    test left the wet air stepping (exit 143 / 129, no safe state tried). While the rig is made
    safe (``only_noted``) a stop is noted, not raised into it; ``end`` raises it after."""

    SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGXCPU")

    def __init__(self) -> None:
        self.heard: list[int] = []
        self._raising = True
        self._raised = False  # a stop already raised out of the test (not raised again by end())
        self._old: dict[int, object] = {}

    def _on(self, signum: int, frame: object) -> None:
        from castrig.cli.main import raise_terminated

        self.heard.append(signum)
        if self._raising:
            self._raising, self._raised = False, True
            raise_terminated(signum, frame)  # (a SIGHUP's says the terminal closed)

    def __enter__(self) -> "_StopsEndTheTest":
        import signal

        for name in self.SIGNALS:
            signum = getattr(signal, name)
            if name == "SIGHUP" and signal.getsignal(signum) is signal.SIG_IGN:
                continue  # under nohup: the test was meant to outlive its terminal
            self._old[signum] = signal.signal(signum, self._on)
        return self

    def __exit__(self, *exc: object) -> None:
        return None  # the handlers stay (noting) until end(): the safe state comes after the test

    def only_noted(self) -> None:
        self._raising = False

    def end(self) -> None:
        import signal

        for signum, old in self._old.items():
            signal.signal(signum, old)  # type: ignore[arg-type]
        self._old.clear()
        if self.heard and not self._raised:
            from castrig.cli.main import raise_terminated

            raise_terminated(self.heard[0], None)


def _say_safe(safe: object) -> bool:
    """Say the rig's state after the step test (on stderr, with a stop); True."""
    typer.echo(safe.summary() if not safe.safe else "rig left in the safe state (verified)", err=True)  # type: ignore[attr-defined]
    return True


class _CtrlCWhileMadeSafe(SigintHold):
    """Ctrl-C while ``castrig tune rh`` makes the rig safe after its step test, and closes it:
    said, noted, and raised once that is done (exit 130). A Ctrl-C pressed twice -- the first
    ends the test -- raised KeyboardInterrupt into the safe state, cut short: the wet air left as
    the test had set it, and nothing said of the rig."""

    def _on_int(self, signum: int, frame: object) -> None:
        if not self.asked:
            typer.echo("Ctrl-C: the rig is being made safe and closed; the step test stops when that is done", err=True)
        self.asked = True


#: The smallest step test (%RH): 5 %RH steps on the twin fit within 4 % of the step (0.17-0.19 %RH).
MIN_STEP_PCT = 5.0


@tune_app.command("rh")
def tune_rh(
    profile: Optional[Path] = typer.Option(None, "--profile", help="The rig (or twin) to tune (default hw_profiles/sim.yaml)."),
    rh_from: float = typer.Option(40.0, "--from", min=5, max=90, help="Step test: starting RH level, %RH."),
    rh_to: float = typer.Option(60.0, "--to", min=5, max=90, help="Step test: RH level stepped to, %RH."),
    max_phase_s: float = typer.Option(3600.0, "--max-phase-s", min=10, max=86400, help="Bound on each phase of the test, s."),
    tau_c_s: Optional[float] = typer.Option(None, "--tau-c", min=0.1, max=86400,
                                            help="SIMC closed-loop time constant, s (default 4 x the dead time)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="The twin's seed."),
    write: bool = typer.Option(False, "--write", help="Write the proposed gains into the profile (the operator's confirmation)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Where the SVG plot goes (default: beside the profile with "
                                        "--write, else ./PROFILE-tune-rh.svg)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Bounded step test of the RH loop, FOPDT identification, SIMC PI gains, predicted step."""
    from castrig.cli.main import default_profile, writable_file
    from castrig.control.safety import make_rig_safe
    from castrig.control.tune import MFC, gains_updates, plot_svg, tune
    from castrig.errors import BadInput
    from castrig.rig.not_suspended import not_suspended
    from castrig.rig.profile_edit import write_profile_values
    from castrig.atomic import atomic_write_bytes

    if rh_to <= rh_from:
        raise BadInput(f"--to = {rh_to:g} must be above --from = {rh_from:g} (allowed: 5 <= from < to <= 90 %RH)", field="--to")
    if rh_to - rh_from < MIN_STEP_PCT:
        # a step the sensor's noise rivals identifies no model: 88 -> 90 fitted no dead time, and its
        # gains (kp 20 times the shipped one), written, made the loop ring and the run fault
        raise BadInput(f"--from {rh_from:g} --to {rh_to:g}: a step of {rh_to - rh_from:g} %RH is too small to identify the "
                       f"loop (allowed: a step of at least {MIN_STEP_PCT:g} %RH)", field="--to")
    _write_needs_profile(write, profile)
    path = Path(profile or default_profile())
    # a dry run leaves the profile's folder alone (it may be the installation's, or read-only);
    # where anything will be written is checked before the rig is touched, not after the test
    plot_path = plot or (path.with_name(f"{path.stem}-tune-rh.svg") if write else Path.cwd() / f"{path.stem}-tune-rh.svg")
    writable_file(plot_path, "--plot", "give a writable path with --plot FILE")
    if write:
        writable_file(path, "--profile (with --write)")
        from castrig.rig.profile import load_profile
        from castrig.rig.profile_edit import check_writable

        devices = load_profile(path).devices  # (the MFC loop's gains where both MFCs are there, as tune() picks)
        mfcs = getattr(devices, "dry_mfc", None) is not None and getattr(devices, "wet_mfc", None) is not None
        check_writable(path, [("control", f"{'' if mfcs else 'chamber_'}{g}") for g in ("kp", "ki", "kd")])
    if tau_c_s is not None:
        _tau_c_not_below_the_period(tau_c_s, path)
    stops = _StopsEndTheTest()
    ctrl_c = _CtrlCWhileMadeSafe(now=False)
    safe, said = None, False
    rig = _open_rig(path, seed, "castrig tune rh")  # (a SIGHUP or SIGTERM meanwhile: exit 3, said, nothing driven)
    try:
        stopped = True
        try:
            with stops, not_suspended(lambda text: typer.echo(text, err=True),
                               "Ctrl-C stops the step test and leaves the rig in the safe state"):
                # (the test runs for minutes to hours on a rig: say it has begun, and what stops it
                # -- once a Ctrl-Z no longer suspends it: said before, a Ctrl-Z typed on reading it
                # could stop the process, the wet air left stepping)
                typer.echo(f"step test {rh_from:g} -> {rh_to:g} %RH on {rig.profile.name}, each phase up to "
                           f"{max_phase_s:g} s: Ctrl-C stops it and leaves the rig in the safe state (if it is killed "
                           f"instead: castrig safe --profile {path})", err=True)
                result = tune(rig, rh_lo=rh_from, rh_hi=rh_to, max_phase_s=max_phase_s, tau_c_s=tau_c_s)
            stopped = False
        finally:
            stops.only_noted()  # a stop from here on waits for the safe state (raised after it)
            ctrl_c.take()  # so does a Ctrl-C (the second, as the first ends the test): it cut the safe state short
            safe = make_rig_safe(rig, retry_for_s=rig.profile.control.safe_state_retry_s)
            if stopped or stops.heard or ctrl_c.asked:  # the test drove the rig: its state is said with the stop
                said = _say_safe(safe)
        test_s = result.test.t_s[-1] if result.test.t_s else 0.0
    finally:
        try:
            rig.close()
        finally:
            ctrl_c.restore()
            if safe is not None and not said and (stops.heard or ctrl_c.asked):  # (a stop as the rig was closed)
                said = _say_safe(safe)
            stops.end()  # Terminated (exit 3) for a stop heard while the rig was made safe or closed
    if ctrl_c.asked:  # (the test had ended: nothing is written after a Ctrl-C)
        from castrig.cli.main import ctrl_c as interrupted

        interrupted(signal.SIGINT, None)  # KeyboardInterrupt, remembered: the CLI says "interrupted" (130)
    atomic_write_bytes(plot_path, plot_svg(result, f"castrig tune rh ({rig.profile.name})").encode())
    updates = gains_updates(result)
    if write:
        write_profile_values(path, updates)
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "test_s": test_s, "plot": str(plot_path), "written": write,
                               "safe": safe.safe, "profile_keys": {".".join(k): v for k, v in updates.items()}}))
        return
    m, g = result.model, result.gains
    unit = "%RH per unit wet fraction" if result.kind == MFC else "%RH per %RH of chamber set point"
    reached = result.test.levels_pct()
    typer.echo(f"step test ({result.test.u_label}) {rh_from:g} -> {rh_to:g} %RH: {len(result.test.t_s)} samples over {test_s:.0f} s"
               + (f", RH measured {reached[0]:.1f} -> {reached[1]:.1f} %RH" if reached else "")
               + (f"; stopped: {result.test.aborted}" if result.test.aborted else ""))
    typer.echo(f"FOPDT model: gain K = {m.gain:.4g} {unit}, time constant tau = {m.tau_s:.1f} s, "
               f"dead time theta = {m.dead_time_s:.1f} s (fit RMS {m.rms_pct:.2f} %RH)")
    typer.echo(f"{g.rule}: tau_c = {g.tau_c_s:.1f} s, tau_I = {g.tau_i_s:.1f} s -> "
               + ", ".join(f"{'.'.join(k)} = {v:.4g}" for k, v in updates.items()))
    typer.echo(result.prediction_text())
    typer.echo(f"plot: {plot_path}")
    typer.echo(safe.summary() if not safe.safe else "rig left in the safe state (verified)")
    if write:
        typer.echo(f"gains written to {path}")
    else:
        typer.echo(f"not written: run again with --write to put these gains into {path}")


#: Peak memory of a calibration per pixel of the image, bytes: ~33 on an 81 Mpx 8-bit target
#: (peak RSS, the image included); the estimate keeps room above that.
CALIBRATION_BYTES_PER_PX = 40


@calibrate_app.command("camera")
def calibrate_camera(
    image: Path = typer.Argument(..., help="An image of a stage micrometer or calibration grid."),
    pitch_um: float = typer.Option(..., "--pitch-um", min=0.01, max=100000, help="The target's line pitch, µm."),
    profile: Optional[Path] = typer.Option(None, "--profile", help="The profile whose camera to calibrate (with --write)."),
    write: bool = typer.Option(False, "--write", help="Write the pixel size into the profile's camera."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """The pixel size (µm) from an image of a target of known pitch, with its uncertainty."""
    from castrig.analysis.calibration import pixel_size_from_image
    from castrig.cli.main import default_profile
    from castrig.errors import BadInput
    from castrig.rig.profile_edit import write_profile_values

    from castrig.cli.analyse import check_memory

    _write_needs_profile(write, profile)
    result = pixel_size_from_image(image, pitch_um,
                                   loaded=lambda a: check_memory([(image, a, None)], bytes_per_px=CALIBRATION_BYTES_PER_PX))
    path = Path(profile or default_profile())
    if write:
        from castrig.rig.profile import load_profile

        cam = load_profile(path).devices.camera
        if cam is None:
            raise BadInput(f"{path}: devices.camera is not set (nothing to calibrate)", file=str(path), field="devices.camera")
        write_profile_values(path, {("devices", "camera", "pixel_size_um"): float(f"{result.pixel_size_um:.6g}")})
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "written": str(path) if write else None}))
        return
    typer.echo(f"pixel size {result.pixel_size_um:.5g} ± {result.uncertainty_um:.2g} µm "
               f"({result.relative_uncertainty * 100:.3f} %, k=1), {result.pitch_px:.4f} px per {pitch_um:g} µm pitch; "
               f"method {result.method}, lines at {result.angle_deg:.2f}°")
    typer.echo(f"written to {path} (devices.camera.pixel_size_um)" if write
               else "not written: add --write (and --profile P) to put it into the profile's camera")


def _write_needs_profile(write: bool, profile: Path | None) -> None:
    """``--write`` changes the profile named, never the default one unasked: `calibrate camera
    --write` alone rewrote the twin's shipped hw_profiles/sim.yaml, and every later run used it."""
    if write and profile is None:
        from castrig.errors import BadInput

        raise BadInput("--write needs --profile PROFILE: name the profile to change (nothing measured, nothing written)",
                       field="--profile")


def _tau_c_not_below_the_period(tau_c_s: float, path: Path) -> None:
    """SIMC's closed loop is no faster than the loop's control period: a --tau-c below it was
    raised to the period without a word, and gains labelled with the value asked for written."""
    from castrig.errors import BadInput
    from castrig.rig.profile import load_profile

    period_s = load_profile(path).control.control_period_s
    if tau_c_s < period_s:
        raise BadInput(f"--tau-c {tau_c_s:g}: the closed loop cannot be faster than its control period, "
                       f"control.control_period_s = {period_s:g} s in {path} (allowed: {period_s:g} to 86400 s)",
                       field="--tau-c")
