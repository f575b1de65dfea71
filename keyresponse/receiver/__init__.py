"""The alert receiver: a FastAPI app that authenticates an alert, normalizes it, spools it, starts a run.

    POST /alerts/{guardduty,health,securityhub,cloudtrail,generic}
        X-Keyresponse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}." + body)>
        or Authorization: Bearer <EventBridge connection token>   (not on /alerts/generic)
        or Authorization: Bearer <static bearer token>             (never automatic containment)
    POST /alerts/github      X-Hub-Signature-256: sha256=<hex HMAC-SHA256(github secret, body)> (GitHub's scheme)
    GET  /healthz            counters kept in memory (never a read of the spool); 429 past a per-address rate

One secret per source, each its own variable; the receiver refuses to start when two are the same, or
one is set but empty:

| credential | variable | routes | may trigger automatic containment |
|---|---|---|---|
| `hmac` | KEYRESPONSE_WEBHOOK_SECRET (+ _SECRETS) | all but github | yes: signed with a timestamp, replays refused after `replay_window_seconds` |
| `eventbridge` | KEYRESPONSE_WEBHOOK_EVENTBRIDGE_TOKEN | guardduty, health, securityhub, cloudtrail | yes: AWS's own delivery (below) |
| `bearer` | KEYRESPONSE_WEBHOOK_BEARER_TOKEN | all but github | no: a static header anyone who sees it once can send |
| `github` | KEYRESPONSE_WEBHOOK_GITHUB_SECRET | github | no: GitHub signs without a timestamp (a delivery can be replayed) and its alerts are never high-confidence |

An alert accepted with a credential that may not trigger automatic containment is kept with
`high_confidence` false: neither the receiver's first response nor the flow's early containment runs,
and its containment waits for an approval like any other (the answer says so: `"automatic_containment":
false`). The EventBridge connection's token is the exception among static tokens: EventBridge API
destinations cannot sign a request, the token lives only in the connection (EventBridge keeps it in
Secrets Manager) and in the receiver's environment, it is accepted only on the routes AWS's events
arrive on, and the first response still checks with STS and IAM that the key is in an account in
scope and not the responder's or a protected principal's.

Order of checks: body size (413), authentication (401), JSON (400), alert contents (422); a well-formed
alert that asks for nothing (GitHub alert about another secret type, sample finding) is 200 "ignored".
An accepted alert is written to the spool *before* the launcher runs, then answered with 202
`{"incident_id", "alert_id", "flow_run_id", "ui_url", "status"}`. The same finding again maps to the same
incident and run; another alert about a key whose incident is still open is attached to that incident
(`"duplicate_of"`), never a second run. When the deployment does not exist yet the answer is 503 with
Retry-After, and the spooled alert is launched on redelivery or by `relaunch_pending` at the next start.

The receiver follows its runs. A key stays attached to its incident (`<spool>/open/`) until the run
closes it, `keyresponse release KEY` frees it, or `incident_open_seconds` pass. On each alert about a key
with an open incident, the receiver reads that incident's flow run once, by id (`RunReader.run_state`):

* **Terminal** (the run will never do anything again): Prefect's final states Completed, Failed,
  Crashed and Cancelled, and a run Prefect no longer knows. The key is freed and the alert opens a new
  incident, with a first response when it is high-confidence; the answer names the ended incident
  (`"replaced"`). A Completed run has normally freed its keys itself; one that did not (its spool
  write failed) frees them here.
* **Alive**: everything else — Scheduled, Late, Pending, Running, Paused (waiting for an approval),
  Cancelling, AwaitingRetry — and an incident whose run is still being launched. The alert is
  attached (`"duplicate"` / `"redelivered"`, with `"run_state"`).
* **Prefect cannot be reached** (or does not answer within `run_check_timeout_seconds`): the safe
  answer is to keep the key attached. The alert is spooled and attached as before, the answer says so
  (`"warning"`), and the next alert about the key checks again. An alert is never dropped.

A redelivery is answered from the spool as before, unless the incident it belongs to still holds its
key and that incident's run has ended: then it opens a new incident like any other alert about the key.

Incident generations. An alert's first incident is its generation 1; each time the incident it belongs
to ends without closing, the alert's next incident is one generation more. The Prefect idempotency key
is `source:alert_id@gen<N>` (Prefect never forgets one: without the generation, the alert's old run
would come back forever) and generation N > 1 has an incident id of its own. When a launch is answered
with a run that had already ended (a spool started afresh while Prefect kept its runs), the alert moves
to its next generation and is launched again: the answer is never "launched" with an ended run.

The package, one job a module:

| module | job |
|---|---|
| `config` | `WebhookSettings`: the `KEYRESPONSE_WEBHOOK_*` variables, and the check that refuses to start |
| `wire` | reading a request (its body under the size limit, JSON under the depth limit) and error answers |
| `auth` | the credentials above: signing (`sign`, `sign_github`: what a client does) and checking each |
| `throttle` | the per-address rate of the routes that take no credentials (429) |
| `spool` | `AlertSpool`: the accepted alerts on disk, and which incident holds each key while it is open |
| `launcher` | flow runs in Prefect: `PrefectLauncher` starts them, `PrefectRuns` reads their states |
| `intake` | `AlertIntake`: spool, then launch; duplicates, run checks, generations, relaunches, stuck alerts |
| `app` | `create_app`: the FastAPI app and its routes, answering within EventBridge's 5 s |

Nothing is re-exported here: each name is imported from the module that defines it (flows and the
CLI read the spool without importing FastAPI).
"""

from __future__ import annotations

import logging

#: The receiver's logger, one for the package, under the name it had as a single module
#: (`keyresponse.webhook`): log filters, and the tests, select its records by that name.
log = logging.getLogger("keyresponse.webhook")
