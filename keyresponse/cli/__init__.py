"""The `keyresponse` command line. Each command lives in its own module and is registered here.

Bad input exits with code 2 and one line on stderr that says what is wrong.
"""

from __future__ import annotations

import typer

from keyresponse.cli import contain as contain_cmd
from keyresponse.cli import incidents as incidents_cmd
from keyresponse.cli import investigate as investigate_cmd
from keyresponse.cli import policy as policy_cmd
from keyresponse.cli import readiness as readiness_cmd
from keyresponse.cli import report as report_cmd
from keyresponse.cli import runner as runner_cmd
from keyresponse.cli import sandbox as sandbox_cmd
from keyresponse.cli import scan_keys as scan_keys_cmd
from keyresponse.cli import serve as serve_cmd
from keyresponse.cli import simulate as simulate_cmd
from keyresponse.cli import undo as undo_cmd
from keyresponse.cli import verify_evidence as verify_evidence_cmd

app = typer.Typer(
    name="keyresponse",
    help="Respond to an exposed AWS access key: investigate, contain, eradicate, recover, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# --- commands --- (one line each; keep alphabetical within groups)
app.command("verify-evidence")(verify_evidence_cmd.verify_evidence)
app.command("serve")(runner_cmd.serve)
app.command("readiness")(readiness_cmd.readiness)
app.command("report")(report_cmd.report)
app.command("serve-webhook")(serve_cmd.serve_webhook)
app.command("investigate")(investigate_cmd.investigate)
app.command("contain")(contain_cmd.contain)
app.command("policy")(policy_cmd.policy)
app.command("undo")(undo_cmd.undo)
app.command("incidents")(incidents_cmd.incidents)
app.command("release")(incidents_cmd.release)
app.command("scan-keys")(scan_keys_cmd.scan_keys)
app.add_typer(sandbox_cmd.app, name="sandbox")
app.command("simulate")(simulate_cmd.simulate)
app.command("demo")(sandbox_cmd.demo)
