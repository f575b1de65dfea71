"""Prefect tasks and the action registries.

The registries are the `ACTIONS` tuples of `tasks.containment`, `tasks.eradication` and
`tasks.recovery` (and `tasks.hardening` for readiness); `tasks.registry` composes the first three:
`registry()` maps every action name to its action and `phases()` groups them by phase. (Not here,
because an editable install may import `tasks` as a namespace package, which never runs this file.)
"""
