"""The readiness check contract: every check is one `ReadinessCheck`, declared in a module of its own.

A unit declares what it is, for the people who read the report and for the code that acts on it:

| field | what |
|---|---|
| `id` | the `Check.id` it emits; equal to its module's stem under `keyresponse/readiness/checks/` |
| `title` | what holds when it passes |
| `per` | `region` (run in every region checked), `home_region` (run in the home region, the check names it) or `account` (once; the check names no region) |
| `severity` | `critical`, `high`, `medium` or `low`: how much the gap costs the next incident |
| `rationale` | why an incident responder needs it |
| `remediation` | the fix, as the report shows it (`{placeholders}` are filled by the run) |
| `permissions` | the read-only IAM actions its run makes (the readiness policy grants their union) |
| `references` | AWS documentation, the AWS incident-response playbook (https URLs) |
| `attack` | MITRE ATT&CK techniques the gap leaves unseen, or is the trace of |
| `cis` | CIS AWS Foundations Benchmark recommendations (of `CIS_VERSION`) it checks |
| `hardened_by` | the hardening actions (`tasks/hardening/`) that close the gap; empty when a human must |
| `run` | `run(scope, region)`: the check itself, a `Check` (or None: nothing to say here) |

`tests/keyresponse/test_readiness_contracts.py` checks every unit of the registry
(`keyresponse.readiness.checks.CHECKS`), and that every module of the package is registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from botocore.exceptions import BotoCoreError, ClientError

from keyresponse.errors import KeyResponseError
from keyresponse.keyscan import ScanResult
from keyresponse.readiness.model import Check, ReadinessOptions
from keyresponse.settings import Settings

if TYPE_CHECKING:
    from keyresponse.aws import ClientFactory

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
Per = Literal["region", "home_region", "account"]
PERS: tuple[Per, ...] = ("region", "home_region", "account")
#: The benchmark version the `cis` numbers refer to (the numbers move between versions).
CIS_VERSION = "CIS AWS Foundations Benchmark v3.0.0"
#: A read that failed this way makes a check `not_verifiable`; anything else is a bug and propagates.
READ_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError, KeyResponseError)

T = TypeVar("T")


@dataclass
class Scope:
    """What every check of one account reads from: its clients, the settings and options, the regions, and
    the reads several checks share (made once, through `memo`)."""

    clients: ClientFactory
    settings: Settings
    options: ReadinessOptions
    account_id: str
    responder_arn: str
    home: str
    regions: list[str]
    #: The clients talk to a local stand-in (moto): facts it cannot show are not verifiable.
    emulated: bool
    #: The role assumed to reach this account, if any (the responder's own account: None).
    reached_via_role: str | None = None
    #: A preventive scan's result to reuse instead of fetching the credential report again.
    scan: ScanResult | None = None
    _memo: dict[str, tuple[bool, Any]] = field(default_factory=dict, repr=False)

    def memo(self, key: str, read: Callable[[], T]) -> T:
        """`read()` once per scope: its result, or the same read error, to every check that asks."""
        if key not in self._memo:
            try:
                self._memo[key] = (True, read())
            except READ_ERRORS as exc:
                self._memo[key] = (False, exc)
        ok, value = self._memo[key]
        if not ok:
            raise value
        return cast(T, value)


@dataclass(frozen=True)
class ReadinessCheck:
    """One readiness check: its declared metadata (module docstring above) and its `run`."""

    id: str
    title: str
    per: Per
    severity: Severity
    rationale: str
    remediation: str
    permissions: tuple[str, ...]
    run: Callable[[Scope, str], Check | None]
    references: tuple[str, ...] = ()
    attack: tuple[str, ...] = ()
    cis: tuple[str, ...] = ()
    hardened_by: tuple[str, ...] = ()

    def regions(self, scope: Scope) -> list[str]:
        """Where `assess` runs it: every region checked, or the home region only."""
        return list(scope.regions) if self.per == "region" else [scope.home]
