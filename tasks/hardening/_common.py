"""What the hardening actions share: the "not found" answers of each service and our resource tag."""

from __future__ import annotations

from botocore.exceptions import ClientError

from tasks.actions import error_code

#: Every resource the hardening plan creates carries this tag (where the service takes tags).
MANAGED_TAG = {"managed-by": "keyresponse"}

NOT_FOUND = frozenset({
    "ResourceNotFoundException", "EntityNotFoundException", "TrailNotFoundException", "NoSuchEntity",
    "NoSuchBucketPolicy", "ObjectLockConfigurationNotFoundError", "BadRequestException",
})


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in NOT_FOUND
