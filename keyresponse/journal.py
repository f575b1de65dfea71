"""The journal of one response run: what its finished stages returned, so that running it again
from the top (a resumed suspension, a retry after a crash) picks up where it was.

A response run is executed more than once when:
- it waits for an approval as a deployment run: Prefect *suspends* it (no process waits) and, once
  answered, runs the flow again from the top (`keyresponse.approval`);
- its process died (the runner was killed, the host rebooted) and it was retried, by hand or by
  `keyresponse serve` at start (`keyresponse.orphans`).

Every stage writes its result here when it finishes (the validation, the early containment, the
investigation, each phase's outcome, each approval with the changes it approved); a stage found here
is not run again. Effects on AWS never depend on the journal: every action checks AWS before it acts
and the ledger (with its intents) records each change exactly once. The journal saves time (the
investigation is not redone), keeps the record whole (an earlier attempt's outcomes, approvals and
times), and binds a replayed approval to the changes it approved then, not to the plan of now.

One folder per flow run (`<home>/incidents/<incident>/journal/<flow_run_id>/`), one JSON file per
stage, written atomically: a new run about the same incident starts afresh.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from keyresponse.files import write_atomic
from keyresponse.ledger import validate_incident_id
from keyresponse.settings import get_settings

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,80}$")


class Journal:
    """The stages a flow run finished, by name."""

    def __init__(self, incident_id: str, flow_run_id: str, home: Path | None = None) -> None:
        run = str(flow_run_id)
        if not re.fullmatch(r"[0-9a-f-]{1,64}", run):
            raise ValueError(f"{run!r} is not a flow run id")
        self.folder = (home or get_settings().home) / "incidents" / validate_incident_id(incident_id) / "journal" / run

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a journal stage name")
        return self.folder / f"{name}.json"

    def get(self, name: str) -> Any | None:
        """What stage `name` returned, or None when it has not finished."""
        path = self._path(name)
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def put(self, name: str, value: object) -> Any:
        """Record that stage `name` finished with `value` (JSON); returns `value` as read back."""
        data = json.dumps(value, sort_keys=True, default=str).encode()
        write_atomic(self._path(name), data)
        return json.loads(data)
