"""Diagnosis benchmark: grade every learner-style file of a corpus and compare the named
mistakes with the ones the file declares (`# mistakes: a, b` in its first line).

Per file and in total: named (declared and diagnosed), unnamed (declared, not diagnosed) and
wrong (diagnosed, not declared: the figure that must stay 0). Correct files (`# mistakes: none`)
count a wrong name for every diagnosis they get. Totals are also given per part: files marked
`# style: public` (public implementations' styles adapted to the contract) and the others
(learner styles). A file may declare `# cases: id, id` to be graded on those cases only (a
course's reduced spec, `--case`, `pytest -k`). `--no-probes` diagnoses from the case outputs
alone (the designed probes of harness/probes.py switched off).

    python bench/bench_diagnosis.py [DIR ...] [--json OUT] [--jobs N] [--no-probes]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from attnspec.grade import GradeOptions, grade, torch_available
from attnspec.loader import load_spec
from attnspec.runner import WorkerPool

HEADER = re.compile(r"#\s*mistakes:\s*(.*)")
CASES = re.compile(r"#\s*cases:\s*(.*)")


def declared(path: Path) -> list[str]:
    text = path.read_text()
    match = HEADER.search(text[:2000])
    if match is None:
        raise SystemExit(f"{path}: no '# mistakes:' header")
    ids = [i.strip() for i in match.group(1).replace("\\n", "").strip('" ,').split(",")]
    return sorted(i for i in ids if i and i != "none")


def part(path: Path) -> str:
    return "public" if "# style: public" in path.read_text()[:2000] else "learner"


def case_ids(path: Path) -> tuple[str, ...]:
    match = CASES.search(path.read_text()[:2000])
    if match is None:
        return ()
    return tuple(i.strip() for i in match.group(1).replace("\\n", "").strip('" ,').split(",") if i.strip())


class _NoProbes:
    def __init__(self, *args, **kwargs):
        pass

    def run(self, probes):
        for p in probes:
            p.status = "not_run"


def run_file(path: Path, spec, pool) -> dict:
    want = set(declared(path))
    start = time.monotonic()
    result = grade(str(path), spec, GradeOptions(case_ids=case_ids(path)), pool)
    got = {d.id for ex in result.exercises for d in ex.diagnoses}
    probed = any(d.evidence.get("probes") for ex in result.exercises for d in ex.diagnoses) or any(
        f.get("feature") == "probes" for ex in result.exercises for f in ex.diagnosis_facts)
    return {
        "file": path.name,
        "part": part(path),
        "declared": sorted(want),
        "diagnosed": sorted(got),
        "named": sorted(want & got),
        "unnamed": sorted(want - got),
        "wrong": sorted(got - want),
        "notes": [ex.diagnosis_note for ex in result.exercises if ex.diagnosis_note and not ex.diagnoses],
        "probed": probed,
        "params": {d.id: d.params for ex in result.exercises for d in ex.diagnoses if d.params},
        "seconds": round(time.monotonic() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", default=[str(Path(__file__).parent / "diagnosis_corpus")])
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-probes", action="store_true", help="diagnose from the case outputs alone")
    args = ap.parse_args(argv)
    if args.no_probes:
        import attnspec.grade

        attnspec.grade.SessionProber = _NoProbes
    files = sorted(p for d in args.dirs for p in Path(d).iterdir() if p.suffix in (".py", ".ipynb") and not p.name.startswith("_"))
    if not torch_available():
        files = [p for p in files if "torch" not in p.read_text()]
    spec = load_spec()
    with WorkerPool() as pool:
        if torch_available():
            pool.preload(["torch"])
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            rows = []
            for r in ex.map(lambda p: run_file(p, spec, pool), files):
                rows.append(r)
                mark = "WRONG" if r["wrong"] else ("ok" if not r["unnamed"] else "partial")
                print(f"{mark:7} {r['file']:40} named {len(r['named'])}/{len(r['declared'])}" + (f"  unnamed {r['unnamed']}" if r["unnamed"] else "")
                      + (f"  WRONG {r['wrong']}" if r["wrong"] else ""), flush=True)
    total = {k: sum(len(r[k]) for r in rows) for k in ("declared", "named", "unnamed", "wrong")}
    clean = sum(1 for r in rows if not r["declared"] and not r["diagnosed"])
    correct_files = sum(1 for r in rows if not r["declared"])
    pct = 100.0 * total["named"] / total["declared"] if total["declared"] else 100.0
    print(f"\n{len(rows)} files: {total['named']}/{total['declared']} mistakes named ({pct:.1f}%), {total['unnamed']} unnamed, {total['wrong']} wrong; "
          f"correct files without a diagnosis: {clean}/{correct_files}")
    parts = {}
    for name in sorted({r["part"] for r in rows}):
        sub = [r for r in rows if r["part"] == name]
        t = {k: sum(len(r[k]) for r in sub) for k in ("declared", "named", "unnamed", "wrong")}
        t["files"] = len(sub)
        parts[name] = t
        print(f"  {name:8} {t['files']} files: {t['named']}/{t['declared']} named ({100.0 * t['named'] / max(1, t['declared']):.1f}%), {t['unnamed']} unnamed, {t['wrong']} wrong")
    probed = [r["file"] for r in rows if r.get("probed")]
    print(f"  probes ran and contributed in {len(probed)} files" + (f": {', '.join(probed)}" if probed else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"files": rows, "total": total, "parts": parts, "named_percent": pct}, indent=2) + "\n")
    return 1 if total["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
