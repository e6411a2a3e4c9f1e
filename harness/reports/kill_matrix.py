"""Text rendering of `attnspec spec check`: one matrix per exercise, misconceptions x cases."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..misconceptions import BY_ID
from . import plural

if TYPE_CHECKING:
    from ..spec_check import KillMatrix


def render_kill_matrix(matrix: KillMatrix) -> str:
    lines = [f"Kill matrix on {', '.join(matrix.backends)}: x = the case fails for that misconception (it is caught)", ""]
    if matrix.reference_failures:
        lines.append(f"REFERENCE FAILS {len(matrix.reference_failures)} case instance(s) (the spec or a tolerance is wrong):")
        for f in matrix.reference_failures:
            lines.append(f"  {f['case']} [{f['backend']}, {f['dtype']}]: {f['message'].splitlines()[0]}")
    else:
        lines.append("Reference: passes every case.")
    for exercise, case_ids in matrix.cases.items():
        rows = [r for r in matrix.rows if r.exercise == exercise]
        lines += ["", f"{exercise}: {plural(len(rows), 'misconception')} x {plural(len(case_ids), 'case')}"]
        lines += _legend(case_ids)
        width = max([len(r.id) for r in rows] + [12])
        tens = "".join(str((i + 1) // 10) if i + 1 >= 10 else " " for i in range(len(case_ids)))
        units = "".join(str((i + 1) % 10) for i in range(len(case_ids)))
        if tens.strip():
            lines.append(f"  {'':{width}}  {tens}")
        lines.append(f"  {'':{width}}  {units}")
        for r in rows:
            marks = "".join("x" if cid in r.killed_by else "." for cid in case_ids)
            verdict = f"killed by {len(r.killed_by)}" if r.killed else ("SURVIVES" if r.checked_on else f"not checked (exists on {', '.join(_backends_of(r.id))} only)")
            lines.append(f"  {r.id:{width}}  {marks}  {verdict}")
    lines.append("")
    survivors = matrix.survivors
    checked = [r for r in matrix.rows if r.checked_on]
    killed = len(checked) - len(survivors)
    lines.append(f"Mutation score: {killed}/{len(checked)} misconceptions killed" + (f"; survivors: {', '.join(r.id for r in survivors)}" if survivors else ""))
    if matrix.unchecked:
        lines.append(f"Not checked on {', '.join(matrix.backends)}: {', '.join(r.id for r in matrix.unchecked)}")
    lines.append("OK" if matrix.ok else "FAILED: " + ("the reference fails some cases; " if matrix.reference_failures else "") + ("some misconceptions survive" if survivors else ""))
    return "\n".join(lines) + "\n"


def _legend(case_ids: list[str]) -> list[str]:
    entries = [f"{i + 1}={cid}" for i, cid in enumerate(case_ids)]
    lines, current = [], "  cases:"
    for entry in entries:
        if len(current) + len(entry) + 2 > 100:
            lines.append(current)
            current = "        "
        current += f" {entry}"
    lines.append(current)
    return lines


def _backends_of(misconception_id: str) -> tuple[str, ...]:
    return BY_ID[misconception_id].backends
