"""Prefect flows: which tasks run in what order, and the approval pauses."""
