"""Reliability campaign: faults at every step, kill -9 and resume, link faults, bad inputs.

    python benchmarks/reliability.py                 # the full campaign (~8 min on 2 cores)
    python benchmarks/reliability.py --quick         # the CI-sized seeded sample (~1 min)

Prints one table of faults injected per kind and how each ended (recovered, safe-stopped,
failed; lost samples and tracebacks must be 0), then crash/resume trials passed out of run,
link-level fault trials (TCP and pty) passed out of run, contention trials (two resumes at once,
resume of a live run, a second run on a served rig) passed and left safe, bad inputs rejected cleanly out
of tried, and storage faults and rig limits (disk full, read-only and damaged run folders, flows above full
scale, 200 mg/mL) handled cleanly out of tried, with the time and peak memory of the worst one. Exits 1 if anything failed. ``--json FILE`` writes every trial.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from castrig.reliability import badinputs, contention, crash, linkfaults  # noqa: E402
from castrig.reliability.faults import catalogue, schedule  # noqa: E402
from castrig.reliability.harness import Campaign  # noqa: E402
from castrig.reliability.report import FAULT_COLUMNS, fault_rows, format_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="CI-sized sample: 30 fault trials, 3 crashes of a mini overnight")
    ap.add_argument("--faults", type=int, default=None, help="fault trials to draw (default: every fault at every step)")
    ap.add_argument("--crashes", type=int, default=None, help="kill/resume trials (default 20)")
    ap.add_argument("--crash-recipe", type=Path, default=None, help="default recipes/overnight.yaml")
    ap.add_argument("--jobs", type=int, default=2, help="crash trials in parallel")
    ap.add_argument("--contention", type=int, default=None,
                    help="seeded moments for the two-resumes and live-resume trials (default 6; --quick 1)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--profile", type=Path, action="append", default=None,
                    help="run the fault matrix on this profile (repeatable; default hw_profiles/sim.yaml), e.g. "
                         "hw_profiles/sim-watlow-f4.yaml and sim-watlow-f4t.yaml for the Watlow chamber kinds")
    args = ap.parse_args(argv)
    n_faults = args.faults if args.faults is not None else (30 if args.quick else None)
    n_crash = args.crashes if args.crashes is not None else (3 if args.quick else 20)
    crash_recipe = args.crash_recipe or (ROOT / "tests" / "data" / "reliability" / "overnight_mini.yaml" if args.quick
                                         else ROOT / "recipes" / "overnight.yaml")
    out: dict[str, object] = {"seed": args.seed}
    failed = False

    t0 = time.perf_counter()
    trials = []
    for profile_path in args.profile or [None]:
        from castrig.rig.profile import load_profile

        camp = Campaign(profile=load_profile(profile_path) if profile_path else None, seed=args.seed)
        try:
            plan = schedule(catalogue(camp.profile.device_configs()), camp.recipe, seed=args.seed, sample=n_faults)
            trials += [camp.trial(f, p) for f, p in plan]
        finally:
            camp.close()
    rows = fault_rows(trials)
    total = rows[-1]
    profiles = ", ".join(str(p) for p in args.profile) if args.profile else "hw_profiles/sim.yaml"
    print(f"fault injection: recipe {camp.recipe.name} ({len(camp.recipe.steps)} steps) on {profiles}, seed {args.seed}, "
          f"{len(trials)} trials in {time.perf_counter() - t0:.0f} s")
    print(format_table(rows, FAULT_COLUMNS))
    for t in trials:
        if t.verdict == "failed":
            print(f"  FAILED {t.fault} at step {t.step} ({t.step_type}) +{t.offset_s:g} s: {t.outcome}: {t.reason}; {t.problems}")
    failed |= bool(total["failed"] or total["lost_samples"] or total["tracebacks"])
    out["faults"] = [t.to_dict() for t in trials]

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="castrig-crash-") as tmp:
        ctrials, _ = crash.campaign(crash_recipe, n=n_crash, seed=args.seed, workdir=Path(tmp), jobs=args.jobs,
                                    every_step=not args.quick)  # + one kill inside every step (evaporations mid-way)
    passed = sum(t.passed for t in ctrials)
    outcomes = {o: sum(t.outcome == o for t in ctrials) for o in sorted({t.outcome for t in ctrials})}
    lost = sum(bool(getattr(t, "lost", None)) for t in ctrials)
    print(f"\ncrash/resume ({crash_recipe.name}, SIGKILL at {n_crash} seeded moments"
          f"{'' if args.quick else ' + one inside every step'}): {passed}/{len(ctrials)} passed, {lost} with a membrane lost "
          f"{outcomes} in {time.perf_counter() - t0:.0f} s")
    for t in ctrials:
        if not t.passed:
            print(f"  FAILED kill at t={t.kill_at_s:g} s: {t.outcome} {t.reason}; {t.problems}")
    failed |= passed != len(ctrials)
    out["crashes"] = [t.to_dict() for t in ctrials]

    t0 = time.perf_counter()
    if args.quick:
        ltrials = [linkfaults.link_trial(d, "tcp", "drop") for d in linkfaults.DEVICES]
        ltrials += [linkfaults.link_trial("alicat", "pty", f) for f in ("no_reply", "garbage", "truncate")]
        ltrials += linkfaults.stall_campaign()
    else:
        ltrials = linkfaults.link_campaign()
    lpassed = sum(t.passed for t in ltrials)
    print(f"\nlink faults over TCP/pty (sim serve): {lpassed}/{len(ltrials)} recovered with typed errors only "
          f"in {time.perf_counter() - t0:.0f} s")
    print(linkfaults.format_stall_figures([t for t in ltrials if t.safe_verified is not None]))
    for t in ltrials:
        if not t.passed:
            print(f"  FAILED {t.device} {t.transport} {t.fault}: recovered_after={t.recovered_after} untyped={t.untyped}")
    failed |= lpassed != len(ltrials)
    out["links"] = [t.__dict__ for t in ltrials]

    t0 = time.perf_counter()
    n_cont = args.contention if args.contention is not None else (1 if args.quick else 6)
    cont = contention.contention_campaign(crash_recipe, n=n_cont, seed=args.seed)
    cpassed = sum(t.passed for t in cont)
    safe = sum(t.safe_verified for t in cont)
    print(f"\ncontention (a second process on the same run folder or rig): {cpassed}/{len(cont)} passed, "
          f"safe state verified in {safe}/{len(cont)}, in {time.perf_counter() - t0:.0f} s")
    for case in dict.fromkeys(t.case for t in cont):
        group = [t for t in cont if t.case == case]
        print(f"  {case}: {sum(t.passed for t in group)}/{len(group)} (exit codes {[t.codes for t in group]})")
    for t in cont:
        if not t.passed:
            print(f"  FAILED {t.case} ({t.detail}): {t.outcome}; safe={t.safe_verified}; {t.problems}")
    failed |= cpassed != len(cont)
    out["contention"] = [t.__dict__ for t in cont]

    bad = badinputs.run_corpus()
    clean = sum(r.clean for r in bad)
    files = len({r.file for r in bad})
    print(f"\nbad inputs: {clean}/{len(bad)} rejected cleanly ({files} files, check and run; exit 2, file/field/allowed named, "
          "no traceback, no run folder)")
    for r in bad:
        if not r.clean:
            print(f"  FAILED {r.file} ({r.command}): {r.problems}")
    failed |= clean != len(bad)
    out["bad_inputs"] = [{"file": r.file, "command": r.command, "exit": r.exit_code, "problems": r.problems} for r in bad]

    storage = badinputs.storage_report()
    print("\n" + badinputs.format_storage_report(storage))
    failed |= any(r["clean"] is False for r in storage)
    out["storage"] = storage

    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    print("\nRESULT:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
