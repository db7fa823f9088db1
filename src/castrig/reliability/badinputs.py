"""The bad-input corpus (``tests/data/bad_inputs/index.yaml``): each file must be refused cleanly.

"Cleanly" = exit 2, a message that names the file and contains the index's expected strings
(the field, the allowed range or choices), no traceback, and no run folder under the data root.
The CLI is driven in-process (``castrig.cli.main.main``) with stderr captured, so the corpus is
cheap enough for CI; a subprocess spot check in the tests covers the real entry point.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "data" / "bad_inputs"
SIM_PROFILE = ROOT / "hw_profiles" / "sim.yaml"
SHORT_RECIPE = ROOT / "tests" / "data" / "short.yaml"


@dataclass
class BadInputResult:
    file: str
    command: str
    exit_code: int
    message: str
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


def load_index(corpus: Path = CORPUS) -> list[dict[str, Any]]:
    return [e for e in yaml.safe_load((corpus / "index.yaml").read_text())["inputs"] if e["as"] != "profile-good"]


def _cli(argv: list[str]) -> tuple[int, str]:
    from castrig.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException as exc:  # noqa: BLE001 - anything escaping main() is a traceback
            import traceback

            return -1, err.getvalue() + "Traceback (escaped main): " + "".join(traceback.format_exception(exc))
    return code, err.getvalue() + out.getvalue()


def commands(entry: dict[str, Any], corpus: Path, data: Path) -> list[list[str]]:
    """The command lines a corpus entry is tried with."""
    f = str(corpus / entry["file"])
    kind = entry["as"]
    if kind == "recipe":
        return [["check", f], ["run", f, "--data", str(data), "-q"]]
    if kind == "recipe-run":
        return [["run", f, "--data", str(data), "-q"]]
    if kind == "recipe-run-nocam":
        return [["run", f, "--profile", str(corpus / "profile_no_camera.yaml"), "--data", str(data), "-q"]]
    if kind == "profile":
        return [["check", f], ["run", str(SHORT_RECIPE), "--profile", f, "--data", str(data), "-q"]]
    raise ValueError(f"{entry['file']}: unknown 'as' {kind!r}")


def try_entry(entry: dict[str, Any], corpus: Path = CORPUS) -> list[BadInputResult]:
    out = []
    for argv in commands(entry, corpus, Path("unused")):
        with tempfile.TemporaryDirectory(prefix="castrig-bad-") as tmp:
            data = Path(tmp) / "runs"
            argv = [str(data) if a == "unused" else a for a in argv]
            code, text = _cli(argv)
            r = BadInputResult(entry["file"], argv[0], code, text)
            if code != 2:
                r.problems.append(f"exit {code}, expected 2")
            if "Traceback" in text:
                r.problems.append("traceback in the output")
            flat = " ".join(text.split())  # rich may wrap long lines
            if entry["file"] not in flat:
                r.problems.append("the message does not name the file")
            for want in entry["expect"]:
                if " ".join(want.split()) not in flat:
                    r.problems.append(f"the message lacks {want!r}")
            if data.exists() and any(p.is_dir() for p in data.iterdir()):
                r.problems.append("a run folder was created")
            out.append(r)
    return out


def run_corpus(corpus: Path = CORPUS) -> list[BadInputResult]:
    results: list[BadInputResult] = []
    for entry in load_index(corpus):
        results += try_entry(entry, corpus)
    return results
