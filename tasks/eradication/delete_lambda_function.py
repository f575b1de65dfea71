"""Delete a Lambda function the attacker created (in its region).

The before-state keeps its role, runtime and code hash. A function that is gone is done. Not
undoable: the code package is not kept (download it into evidence first if it matters).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tasks.actions import Action, ActionContext, Target, error_code


class DeleteLambdaFunction(Action):
    name: ClassVar[str] = "delete_lambda_function"
    summary: ClassVar[str] = "Delete an attacker-created Lambda function."
    permissions: ClassVar[tuple[str, ...]] = ("lambda:GetFunctionConfiguration", "lambda:DeleteFunction")
    requires_approval: ClassVar[bool] = True
    undo_unsupported_reason: ClassVar[str | None] = "a deleted function's code package is gone"
    target_kinds: ClassVar[tuple[str, ...]] = ("lambda_function",)

    def read(self, ctx: ActionContext, target: Target) -> dict[str, Any]:
        try:
            config = ctx.client("lambda", target.region).get_function_configuration(FunctionName=target.id)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return {"exists": False}
            raise
        return {"exists": True, "role": config.get("Role"), "runtime": config.get("Runtime"),
                "code_sha256": config.get("CodeSha256")}

    def is_done(self, ctx: ActionContext, target: Target, state: Mapping[str, Any]) -> bool:
        return not state["exists"]

    def describe(self, target: Target, before: Mapping[str, Any]) -> str:
        return f"delete Lambda function {target.id} in {target.region}"

    def write(self, ctx: ActionContext, target: Target, before: Mapping[str, Any]) -> None:
        try:
            ctx.client("lambda", target.region).delete_function(FunctionName=target.id)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise


ACTION = DeleteLambdaFunction()
