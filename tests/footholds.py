"""Records no public log holds, hand-written from a real Stratus Red Team record of the same kind
(tests/fixtures/cloudtrail/): a console sign-in by the user an attacker created, and an access key
a root session created. Shared by the query tests and the investigation tests."""

from __future__ import annotations

import copy
from typing import Any

#: The key Stratus's create-admin-user detonation made for malicious-iam-user (CreateAccessKey,
#: by christophe's key): no record is made *with* it.
ADMIN_USER_KEY = "AKIAXAFZN8JEPF6L682H"
ADMIN_USER = "malicious-iam-user"
ADMIN_ACCOUNT = "229654561268"
#: The key of christophe that made it.
CREATOR_KEY = "AKIAOZUDECYXYM4ONAN4"
ROOT_MADE_KEY = "AKIA2R00TMADE0KEY001"


def sign_in_as(records: list[dict[str, Any]], user: str, account: str, at: str) -> dict[str, Any]:
    """Stratus's real ConsoleLogin record, as the named IAM user of `account` signing in at `at`."""
    real = next(r for r in records if r["eventName"] == "ConsoleLogin")
    login = copy.deepcopy(real)
    login.update(eventTime=at, eventID="0b7c1e52-4a6d-4f3e-9a8b-2c1d0e9f8a71", recipientAccountId=account)
    login["userIdentity"] = {"type": "IAMUser", "principalId": "AIDAL1XMLVWIUOK8KAF0", "accountId": account,
                             "arn": f"arn:aws:iam::{account}:user/{user}", "userName": user}
    return login


def root_creates_key(records: list[dict[str, Any]], key: str, user: str = "deploy-bot") -> dict[str, Any]:
    """Stratus's real CreateAccessKey record as a root console session makes it: the caller is the
    account's root, with the session key CloudTrail logs for the console, from its own address."""
    real = next(r for r in records if r["eventName"] == "CreateAccessKey"
                and r["responseElements"]["accessKey"]["accessKeyId"] == ADMIN_USER_KEY)
    record = copy.deepcopy(real)
    account = record["recipientAccountId"]
    record.update(eventID="9c2f7e4a-51d3-4b8e-a6f0-7d1c2b3a4e5f", eventTime="2024-08-01T13:50:00Z",
                  requestParameters={"userName": user}, sourceIPAddress="192.0.2.44",
                  userAgent="AWS Internal")
    record["userIdentity"] = {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root",
                              "accountId": account, "accessKeyId": "ASIA4ROOTCONSOLE0001",
                              "sessionContext": {"attributes": {"creationDate": "2024-08-01T13:45:00Z",
                                                                "mfaAuthenticated": "true"}}}
    record["responseElements"]["accessKey"].update(accessKeyId=key, userName=user)
    return record
