"""The `keyresponse` command line. Each command lives in its own module and is registered here.

Bad input exits with code 2 and one line on stderr that says what is wrong.
"""

from __future__ import annotations

import typer

from keyresponse.cli import sandbox as sandbox_cmd
from keyresponse.cli import simulate as simulate_cmd

app = typer.Typer(
    name="keyresponse",
    help="Respond to an exposed AWS access key: investigate, contain, eradicate, recover, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# --- commands --- (one line each; keep alphabetical within groups)
app.add_typer(sandbox_cmd.app, name="sandbox")
app.command("simulate")(simulate_cmd.simulate)
app.command("demo")(sandbox_cmd.demo)
