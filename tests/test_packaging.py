"""What ships: the data packages, the extras, the lock files, and the smoke test's log folder.

The wheel itself is built, installed and run by `.ci/smoke-wheel` (`make smoke`), outside the source tree.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

from keyresponse.errors import ConfigurationError
from keyresponse.files import data_folder
from keyresponse.queries import QUERIES_DIR, QueryContractError, registry

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCKS = ROOT / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def _pins(lock: str) -> dict[str, str]:
    text = (LOCKS / lock).read_text()
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in _PIN.findall(text)}


def _names(requirements: list[str]) -> set[str]:
    return {re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]).lower() for req in requirements}


def test_query_files_and_templates_are_package_data_of_their_packages() -> None:
    assert QUERIES_DIR == data_folder("queries", pattern="*.sql") == ROOT / "queries"
    assert "key_events" in registry()
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert {"*.sql", "ddl/*.sql"} <= set(data["queries"]) and "*.j2" in data["reports"]
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {"queries*", "reports*"} <= set(include)


def test_an_install_without_its_data_files_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "emptydata"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError, match=r"no \*\.sql files in .*emptydata.*incomplete"):
        data_folder("emptydata", pattern="*.sql")
    with pytest.raises(ConfigurationError, match="not installed"):
        data_folder("keyresponse_no_such_package", pattern="*.sql")
    sys.modules.pop("emptydata", None)
    with pytest.raises(QueryContractError, match="no query files"):
        registry(package)


def test_the_base_install_leaves_the_sandbox_to_its_extra() -> None:
    project = PYPROJECT["project"]
    base = _names(project["dependencies"])
    assert not base & {"moto", "flask", "werkzeug"}
    assert "moto" in _names(project["optional-dependencies"]["sandbox"])
    assert "keyresponse[sandbox]" in project["optional-dependencies"]["dev"]
    assert all(re.search(r"<|==", req) for req in project["dependencies"]), "every range has an upper bound"


def test_every_lock_pins_what_pyproject_asks_for_with_hashes_and_they_agree() -> None:
    project = PYPROJECT["project"]
    runtime, sandbox, dev = _pins("runtime.lock"), _pins("sandbox.lock"), _pins("dev.lock")
    base = _names(project["dependencies"])
    assert base <= set(runtime) and not set(runtime) & {"moto", "flask", "werkzeug"}
    assert base | {"moto"} <= set(sandbox)
    assert base | (_names(project["optional-dependencies"]["dev"]) - {"keyresponse"}) <= set(dev)
    for smaller in (runtime, sandbox):
        assert {name: dev[name] for name in smaller} == smaller, "a lock disagrees with dev.lock: run `make lock`"
    for lock in ("runtime.lock", "sandbox.lock", "dev.lock", "bootstrap.lock"):
        lines = [line for line in (LOCKS / lock).read_text().splitlines() if line and not line.startswith("#")]
        blocks: list[list[str]] = []
        for line in lines:
            if line[0].isspace():
                blocks[-1].append(line)
            else:
                blocks.append([line])
        assert blocks, f"{lock} pins nothing"
        for block in blocks:
            assert _PIN.match(block[0]), f"{lock}: {block[0]!r} is not a pin"
            assert any("--hash=sha256:" in line for line in block), f"{lock}: {block[0]} has no hash"


def test_the_smoke_trail_holds_exactly_the_stratus_records_it_names() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "cloudtrail"))
    try:
        from build_smoke_trail import OUT, smoke_records
    finally:
        sys.path.pop(0)
    shipped = [record for path in sorted(OUT.rglob("*.json.gz"))
               for record in json.loads(gzip.decompress(path.read_bytes()))["Records"]]
    expected = smoke_records()
    assert len(shipped) == len(expected) == 6  # 3 + 2 + 1 records of the three techniques
    key = lambda record: record["eventID"]  # noqa: E731
    assert sorted(shipped, key=key) == sorted(expected, key=key)
