from __future__ import annotations

from prefect import flow, get_run_logger


@flow(name="smoke-flow")
def _smoke(x: int) -> int:
    get_run_logger().info("smoke %s", x)
    return x * 2


def test_a_flow_runs_against_the_session_server(prefect_server: str) -> None:
    from prefect import get_client

    state = _smoke(21, return_state=True)
    assert state.is_completed() and state.result() == 42
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name and run.state_type.value == "COMPLETED"
