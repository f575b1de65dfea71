"""Prefect tasks and the action registries.

The registries are the `ACTIONS` tuples of `tasks.containment`, `tasks.eradication` and
`tasks.recovery`; `tasks.actions.registry()` maps every action name to its action and
`tasks.actions.phases()` groups them by phase. (They live there, not here, because an editable
install may import `tasks` as a namespace package, which never runs this file.)
"""
