"""A JSON Schema of one CloudTrail record, held to reality: real records (Stratus Red Team
detonation logs) must pass it, and so must every record the simulator writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_KEY_ID = {"type": "string", "pattern": "^(AKIA|ASIA)[A-Z0-9]{16}$"}
_ACCOUNT = {"type": "string", "pattern": "^[0-9]{12}$"}
_ISSUER = {
    "type": "object",
    "required": ["type", "principalId", "arn", "accountId"],
    "properties": {"type": {"enum": ["Role", "IAMUser", "Root"]}, "arn": {"type": "string", "pattern": "^arn:aws"},
                   "accountId": _ACCOUNT},
}

USER_IDENTITY: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["IAMUser", "AssumedRole", "FederatedUser", "AWSService", "Root", "AWSAccount",
                          "Unknown", "SAMLUser", "WebIdentityUser", "IdentityCenterUser"]},
        "principalId": {"type": "string"},
        "arn": {"type": "string", "pattern": "^arn:aws(-[a-z]+)*:(iam|sts)::"},
        "accountId": _ACCOUNT,
        "accessKeyId": _KEY_ID,
        "userName": {"type": "string"},
        "invokedBy": {"type": "string"},
        "sessionContext": {
            "type": "object",
            "properties": {
                "sessionIssuer": {"anyOf": [_ISSUER, {"type": "object", "maxProperties": 0}]},
                "attributes": {"type": "object", "required": ["creationDate", "mfaAuthenticated"],
                               "properties": {"mfaAuthenticated": {"enum": ["true", "false"]}}},
            },
        },
    },
    "allOf": [
        {"if": {"properties": {"type": {"const": "IAMUser"}}},
         "then": {"required": ["principalId", "arn", "accountId", "userName"]}},
        {"if": {"properties": {"type": {"const": "AssumedRole"}}},
         "then": {"required": ["principalId", "arn", "accountId", "sessionContext"],
                  "properties": {"arn": {"pattern": ":assumed-role/"},
                                 "sessionContext": {"required": ["sessionIssuer", "attributes"]}}}},
        {"if": {"properties": {"type": {"const": "FederatedUser"}}},
         "then": {"required": ["principalId", "arn", "accountId", "sessionContext"],
                  "properties": {"arn": {"pattern": ":federated-user/"}}}},
        {"if": {"properties": {"type": {"const": "AWSService"}}}, "then": {"required": ["invokedBy"]}},
        {"if": {"required": ["accessKeyId"], "properties": {"accessKeyId": {"pattern": "^ASIA"}}},
         "then": {"required": ["sessionContext"]}},
    ],
}

RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "CloudTrail record",
    "type": "object",
    "required": ["eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
                 "sourceIPAddress", "userAgent", "eventID", "eventType", "recipientAccountId", "readOnly",
                 "managementEvent", "eventCategory", "requestParameters", "responseElements"],
    "properties": {
        "eventVersion": {"type": "string", "pattern": "^1\\.[0-9]{2}$"},
        "userIdentity": USER_IDENTITY,
        "eventTime": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"},
        "eventSource": {"type": "string", "pattern": "^[a-z0-9.-]+\\.amazonaws\\.com$"},
        "eventName": {"type": "string", "pattern": "^[A-Za-z0-9]+$"},
        "awsRegion": {"type": "string", "pattern": "^[a-z0-9-]+$"},
        "sourceIPAddress": {"type": "string", "minLength": 1},
        "userAgent": {"type": "string"},
        "errorCode": {"type": "string", "minLength": 1},
        "errorMessage": {"type": "string"},
        "requestParameters": {"type": ["object", "null"]},
        "responseElements": {"type": ["object", "null"]},
        "additionalEventData": {"type": "object"},
        "requestID": {"type": "string", "minLength": 1},
        "eventID": {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
        "readOnly": {"type": "boolean"},
        "resources": {"type": "array", "items": {"type": "object"}},
        "eventType": {"enum": ["AwsApiCall", "AwsServiceEvent", "AwsConsoleAction", "AwsConsoleSignIn",
                               "AwsCloudTrailInsight", "AwsVpceEvent"]},
        "managementEvent": {"type": "boolean"},
        "recipientAccountId": _ACCOUNT,
        "eventCategory": {"enum": ["Management", "Data", "Insight", "NetworkActivity"]},
        "tlsDetails": {"type": "object", "required": ["tlsVersion", "cipherSuite", "clientProvidedHostHeader"]},
        "sessionCredentialFromConsole": {"enum": ["true", "false"]},
    },
    "allOf": [
        {"if": {"required": ["errorCode"]}, "then": {"required": ["errorMessage"]}},
        {"if": {"properties": {"eventType": {"const": "AwsApiCall"}}}, "then": {"required": ["requestID"]}},
    ],
}


def validator() -> Callable[[object], object]:
    """A compiled validator: `validator()(record)` raises `fastjsonschema.JsonSchemaException`."""
    import fastjsonschema

    return fastjsonschema.compile(RECORD_SCHEMA)
