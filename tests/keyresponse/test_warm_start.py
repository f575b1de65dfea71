"""`keyresponse.warm_start` in a process of its own (it changes Prefect's modules for good): the two
Prefect seams it uses are there and taken, flows pickle by reference, and a forkserver killed between
two runs is started again for the next one (multiprocessing's own `ensure_running`).

The end-to-end side (runs started by `keyresponse serve` are forked warm, and a run killed mid-apply
exits with its runner) is in `tests/flows/test_durable_runs.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(180)

_SCRIPT = r"""
import json, os, signal, time
import cloudpickle, psutil
import multiprocessing.forkserver as forkserver
from keyresponse import warm_start

warm_start.install()
import prefect.flow_engine
import prefect.runner._starter_direct as starter
from flows.respond_to_exposed_key import respond_to_exposed_key

context = prefect.flow_engine.multiprocessing.get_context("spawn")

def start():
    process = context.Process(target=time.sleep, args=(30,))
    process.start()
    parent = psutil.Process(process.pid).ppid()
    process.terminate()
    process.join(10)
    return process, parent

first, first_parent = start()
server = forkserver._forkserver._forkserver_pid
os.kill(server, signal.SIGKILL)
time.sleep(0.5)
second, second_parent = start()
print(json.dumps({
    "seam_taken": bool(getattr(starter.run_flow_in_subprocess, "warm", False)),
    "warm_class": type(first).__name__,
    "first_parent_is_forkserver": first_parent == server,
    "second_parent": second_parent, "killed_server": server,
    "second_parent_is_forkserver": second_parent == forkserver._forkserver._forkserver_pid,
    "by_reference": cloudpickle.loads(cloudpickle.dumps(respond_to_exposed_key)) is respond_to_exposed_key,
}))
"""


def test_install_takes_both_seams_pickles_flows_by_reference_and_survives_a_killed_forkserver() -> None:
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["seam_taken"] and facts["warm_class"] == "WarmProcess", facts
    assert facts["first_parent_is_forkserver"], facts  # forked, not spawned
    assert facts["second_parent"] != facts["killed_server"] and facts["second_parent_is_forkserver"], facts
    assert facts["by_reference"], facts
