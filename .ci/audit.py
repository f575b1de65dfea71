"""Known vulnerabilities in a lock file (pip-audit), offline-tolerant and never silently green.

    .venv/bin/python .ci/audit.py requirements/dev.lock [--timeout 300]

pip-audit looks each pinned package up in a vulnerability service (PyPI's JSON API by default). Where
the service cannot be reached, pip-audit itself says "No known vulnerabilities found" and exits 0
after skipping every package; this script counts what was really checked and prints it:

    audit: requirements/dev.lock: 200 packages; 0 checked, 200 could not be checked (...); 0 known vulnerabilities

Exit 1 when a known vulnerability is found in a package that was checked; 0 otherwise, including
when nothing could be checked (the line above says so, with pip-audit's reason).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path


def summarize(report: dict[str, object]) -> tuple[list[str], list[str], list[str]]:
    """(checked packages, skipped ones with their reason, findings) of pip-audit's JSON report."""
    checked: list[str] = []
    skipped: list[str] = []
    findings: list[str] = []
    for dep in report.get("dependencies", []):  # type: ignore[union-attr]
        name = f"{dep['name']}=={dep.get('version', '?')}"
        if "skip_reason" in dep:
            skipped.append(f"{name}: {dep['skip_reason']}")
            continue
        checked.append(name)
        for vuln in dep.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed version"
            findings.append(f"{name}: {vuln['id']} (fixed in {fixes})")
    return checked, skipped, findings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        cmd = [sys.executable, "-m", "pip_audit", "--requirement", str(args.lock), "--require-hashes",
               "--disable-pip", "--progress-spinner", "off", "--format", "json", "--output", str(out)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
        except subprocess.TimeoutExpired:
            print(f"audit: {args.lock}: NOT CHECKED: pip-audit gave no answer within {args.timeout:.0f} s")
            return 0
        if not out.exists():
            reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"audit: {args.lock}: NOT CHECKED: pip-audit could not run (exit {proc.returncode}): {reason}")
            return 0
        report = json.loads(out.read_text())
    checked, skipped, findings = summarize(report)
    reasons = Counter(reason.split(": ", 1)[1].split(":")[0] for reason in skipped)
    why = "; ".join(f"{count} x {reason}" for reason, count in reasons.most_common(3))
    total = len(checked) + len(skipped)
    print(f"audit: {args.lock}: {total} packages; {len(checked)} checked, {len(skipped)} could not be checked"
          f"{f' ({why})' if why else ''}; {len(findings)} known vulnerabilities")
    if skipped and not checked:
        print("audit: NOTHING WAS CHECKED: the vulnerability data (PyPI's JSON API) did not answer for any package here")
    for finding in findings:
        print(f"audit: VULNERABLE {finding}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
