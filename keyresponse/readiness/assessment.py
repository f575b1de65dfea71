"""The assessment: who and where the checks run (`open_scope`), then every registered check, in order (`assess`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from keyresponse import aws
from keyresponse.keyscan import ScanResult
from keyresponse.readiness.checks import CHECKS
from keyresponse.readiness.model import Check, ReadinessOptions
from keyresponse.readiness.unit import Scope
from keyresponse.settings import Settings, get_settings

if TYPE_CHECKING:
    import boto3

    from keyresponse.aws import ClientFactory

#: The reads of `open_scope` itself: who the clients are, and which regions the account has enabled.
ASSESS_PERMISSIONS: tuple[str, ...] = ("sts:GetCallerIdentity", "ec2:DescribeRegions")
#: Every read-only call `assess` makes: its own and the registered checks'. `keyresponse policy --readiness`
#: grants these and the hardening actions' declared permissions; a test runs `assess` and every hardening
#: action with only that policy.
PERMISSIONS: tuple[str, ...] = tuple(dict.fromkeys(
    [*ASSESS_PERMISSIONS, *(permission for check in CHECKS for permission in check.permissions)]))


class _ClientsLike:
    """An action context's `Clients`, or a plain boto3 session (one client per service and region)."""

    def __init__(self, source: ClientFactory | boto3.Session) -> None:
        self._source = source
        self._cache: dict[tuple[str, str | None], Any] = {}

    def __call__(self, service: str, region: str | None = None) -> Any:
        if callable(self._source):
            return self._source(service, region)
        key = (service, region)
        if key not in self._cache:
            self._cache[key] = aws.client(service, region=region, boto_session=self._source)
        return self._cache[key]


def is_emulated(clients: ClientFactory) -> bool:
    """True when the clients talk to a local stand-in (the moto sandbox), not to AWS."""
    host = urlparse(str(clients("iam").meta.endpoint_url)).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or not host.endswith(("amazonaws.com", "amazonaws.com.cn"))


def enabled_regions(clients: ClientFactory, home: str) -> list[str]:
    """Every region enabled in the account (home region first)."""
    found = sorted(r["RegionName"] for r in clients("ec2", home).describe_regions(AllRegions=False)["Regions"])
    return [home, *(r for r in found if r != home)]


def open_scope(
    clients: ClientFactory | boto3.Session | None = None,
    settings: Settings | None = None,
    options: ReadinessOptions | None = None,
    *,
    scan: ScanResult | None = None,
    emulated: bool | None = None,
    reached_via_role: str | None = None,
) -> Scope:
    """The account `clients` act in, its regions to check (the home region first), and what the checks are told.

    `clients` is a `tasks.actions.Clients`, a boto3 `Session`, or None (the default credential chain).
    """
    settings = settings or get_settings()
    options = options or ReadinessOptions()
    call = _ClientsLike(clients if clients is not None else aws.session(region=settings.region))
    home = settings.region
    emulated = is_emulated(call) if emulated is None else emulated
    identity = call("sts").get_caller_identity()
    regions = list(options.regions) if options.regions else enabled_regions(call, home)
    if home not in regions:
        regions.insert(0, home)
    return Scope(clients=call, settings=settings, options=options, account_id=str(identity["Account"]),
                 responder_arn=str(identity["Arn"]), home=home, regions=regions, emulated=emulated,
                 reached_via_role=reached_via_role, scan=scan)


def assess(
    clients: ClientFactory | boto3.Session | None = None,
    settings: Settings | None = None,
    options: ReadinessOptions | None = None,
    *,
    scan: ScanResult | None = None,
    emulated: bool | None = None,
    reached_via_role: str | None = None,
) -> list[Check]:
    """Every readiness check for the account `clients` act in (read-only), in registry order.

    `clients` is a `tasks.actions.Clients`, a boto3 `Session`, or None (the default credential chain).
    `scan` reuses a preventive scan's result instead of fetching the credential report again.
    `emulated` (default: detected from the endpoint) marks facts the sandbox cannot show as not verifiable.
    """
    scope = open_scope(clients, settings, options, scan=scan, emulated=emulated, reached_via_role=reached_via_role)
    return [found for check in CHECKS for region in check.regions(scope)
            if (found := check.run(scope, region)) is not None]
