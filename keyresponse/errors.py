"""The error tree. Every failure keyresponse raises on purpose is one of these.

    KeyResponseError
    ├── ConfigurationError        settings are missing or contradictory
    ├── InputError                bad input from a user or an alert (exit code 2, HTTP 4xx)
    │   ├── InvalidAccessKeyId    not an AWS access key id
    │   └── UnknownScenario       no such simulator scenario
    ├── SandboxError              the embedded AWS sandbox could not start or answer
    ├── GuardrailRefusal          a mutating step was refused by a guardrail (the reason is the message)
    ├── AwsCallError              an AWS call failed after the retries that are safe
    │   └── MissingPermission     AccessDenied: names the missing IAM action
    └── VerificationFailed        a change was applied but re-reading AWS does not show it; or stored
                                  evidence does not match its chained manifest
"""

from __future__ import annotations


class KeyResponseError(Exception):
    """Base of every error keyresponse raises on purpose."""


class ConfigurationError(KeyResponseError):
    """Settings are missing or contradictory."""


class InputError(KeyResponseError):
    """Bad input from a user or an alert: the message says what is wrong."""


class InvalidAccessKeyId(InputError):
    """The string is not an AWS access key id (AKIA/ASIA + 16 base32 characters)."""


class UnknownScenario(InputError):
    """No simulator scenario has that name."""


class SandboxError(KeyResponseError):
    """The embedded AWS sandbox (moto server) could not start or did not answer."""


class GuardrailRefusal(KeyResponseError):
    """A guardrail refused a mutating step; the message is the reason."""


class AwsCallError(KeyResponseError):
    """An AWS call failed after every retry that is safe."""


class MissingPermission(AwsCallError):
    """AWS answered AccessDenied; the message names the IAM action that is missing."""


class VerificationFailed(KeyResponseError):
    """A change was applied but re-reading AWS does not show it; or stored evidence does not match its
    chained manifest (`keyresponse/evidence.py`)."""
