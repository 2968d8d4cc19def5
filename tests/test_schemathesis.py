"""Schemathesis over the whole published schema (/schema/openapi.json), against a real server process
over HTTP: no 5xx, and every answer is one the document describes (status code, content type, body,
headers).

Each operation is called as a role that may call it (the first of the document's `x-roles`): a partner
with its API key, courier01 (on duty) and the dispatcher `dispatch` with their session cookies, the
admin for the admin-only operations; sign-in and sign-out anonymously, so the generator never signs out
a session the run depends on. Event streams never end, so they are left out. Data is generated valid
and invalid (`--mode all`: what breaks the schema must get a documented 4xx) in every phase: the
schema's examples, boundary values (coverage), random inputs (fuzzing) and chains of calls that follow
the links Schemathesis infers between operations (stateful: create a pickup, then read, chase, cancel it).

Schemathesis runs through its command line (`python -m schemathesis.cli run`), once per role: the CLI
is its stable interface, runs all four phases and writes a JSON report the counts come from. (Its
pytest plugin does not run under pytest 9.2, and its Python API covers only the fuzzing phase.)

The run has a database and server of its own: it creates users, stations and pickups at random, signs
in with wrong passwords (the throttle counts them per client address), takes couriers off duty and
changes their zones, none of which the other tests should see.

Budget: LANSHOU_SCHEMATHESIS_EXAMPLES examples per operation (default 50) times
LANSHOU_SCHEMATHESIS_SCALE (default 1; 10 for a deeper run by hand); the seed is fixed
(LANSHOU_SCHEMATHESIS_SEED to try another). The counts are printed at the end of the module;
LANSHOU_SCHEMATHESIS_REPORTS=<folder> keeps Schemathesis' JSON report of each role there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.demo import zone_centre
from tests.conftest import ServerProcess, demo_database

SCALE = int(os.environ.get("LANSHOU_SCHEMATHESIS_SCALE", "1"))
EXAMPLES = int(os.environ.get("LANSHOU_SCHEMATHESIS_EXAMPLES", "50")) * SCALE
SEED = int(os.environ.get("LANSHOU_SCHEMATHESIS_SEED", "20261125"))
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]
PHASES = "examples,coverage,fuzzing,stateful"
# A folder to keep each role's JSON report in (valid rates, warnings, failures with curl commands).
REPORTS = (
    Path(os.environ["LANSHOU_SCHEMATHESIS_REPORTS"])
    if os.environ.get("LANSHOU_SCHEMATHESIS_REPORTS")
    else None
)
SESSION_COOKIE = "lanshou_session"
# Each role runs the operations whose first allowed role it is; "anonymous" those anyone may call.
ROLES = ["partner", "courier", "dispatcher", "admin", "anonymous"]

SUMMARY: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def fuzzed_server(request: pytest.FixtureRequest) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    started = time.monotonic()
    with demo_database("lanshou-fuzz-") as (database, api_key):
        demo = {"api_key": api_key}
        server = ServerProcess(database).start()
        try:
            yield server, demo
        finally:
            server.stop()
            _print_summary(request, time.monotonic() - started)


def _print_summary(request: pytest.FixtureRequest, seconds: float) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not SUMMARY:
        return
    # Printed whatever -s says: the counts are part of what this test reports.
    with capture.global_and_fixture_disabled():
        _write_summary(reporter, seconds)


def _write_summary(reporter: Any, seconds: float) -> None:
    operations = sum(r["operations"] for r in SUMMARY.values())
    cases = sum(r["cases"] for r in SUMMARY.values())
    failures = sum(r["failures"] for r in SUMMARY.values())
    reporter.write_line("")
    reporter.write_line(
        f"schemathesis: seed {SEED}, {EXAMPLES} examples per operation, phases {PHASES}: "
        f"{operations} operations, {cases} cases, {failures} failures in {seconds:.0f} s (server start included)"
    )
    for role, r in SUMMARY.items():
        reporter.write_line(
            f"  {role:<10} {r['operations']:>2} operations {r['cases']:>6} cases "
            f"{r['failures']:>3} failures  {r['seconds']:.0f} s"
        )


def _session(server: ServerProcess, username: str) -> str:
    r = httpx.post(server.url + "/auth/login", json={"username": username, "password": "demo"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.cookies[SESSION_COOKIE]


def _pickups(server: ServerProcess, api_key: str, zone: str, count: int) -> list[int]:
    """Pickups at the centre of a demo zone, made by the partner through the API."""
    lng, lat = zone_centre(zone)
    ids = []
    for n in range(count):
        body = {
            "sender": {"name": "李四", "phone": "13912345678"},
            "address": {
                "province": "湖南省",
                "city": "长沙市",
                "district": "开福区",
                "detail": f"{n + 1}号楼",
                "lat": lat,
                "lng": lng,
                "datum": "wgs84",
            },
        }
        r = httpx.post(
            server.url + "/api/v1/pickups",
            json=body,
            headers={"authorization": f"Bearer {api_key}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


@pytest.fixture(scope="module")
def known_ids(
    fuzzed_server: tuple[ServerProcess, dict[str, str]], credentials: dict[str, list[str]]
) -> dict[str, list[int]]:
    """Ids that name something, for Schemathesis to use half the time instead of random ones: without
    them nearly every call on /pickups/{id} or /couriers/{id} is a 404 and never reaches the logic.
    courier01 (on duty, zone CS-KF-01) is offered the pickups made in its zone."""
    server, demo = fuzzed_server
    return {
        "partner_pickups": _pickups(server, demo["api_key"], "CS-FR-01", 4),
        "courier_pickups": _pickups(server, demo["api_key"], "CS-KF-01", 8),
        "couriers": list(range(1, 13)),  # the demo's twelve
    }


# role -> {Schemathesis parameter: dictionary of known ids}
KNOWN_PARAMETERS = {
    "partner": {"path.pickup_id": "partner_pickups"},
    "courier": {"path.pickup_id": "courier_pickups"},
    "dispatcher": {
        "path.courier_id": "couriers",
        "body.courier_id": "couriers",
        "body.pickup_ids[*]": "courier_pickups",
    },
}


def _config_file(role: str, known_ids: dict[str, list[int]], workdir: Path) -> Path:
    """schemathesis.toml for one role: its known ids, each drawn half the time."""
    lines = []
    for name, values in known_ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for parameter, name in KNOWN_PARAMETERS.get(role, {}).items():
        lines.append(f'"{parameter}" = {{ dictionary = "{name}", probability = 0.5 }}')
    path = workdir / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def credentials(fuzzed_server: tuple[ServerProcess, dict[str, str]]) -> dict[str, list[str]]:
    """The headers each role sends; courier01 goes on duty so that courier actions can succeed."""
    server, demo = fuzzed_server
    courier = _session(server, "courier01")
    r = httpx.post(
        server.url + "/api/v1/courier/duty",
        json={"on_duty": True},
        cookies={SESSION_COOKIE: courier},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return {
        "partner": [f"Authorization: Bearer {demo['api_key']}"],
        "courier": [f"Cookie: {SESSION_COOKIE}={courier}"],
        "dispatcher": [f"Cookie: {SESSION_COOKIE}={_session(server, 'dispatch')}"],
        "admin": [f"Cookie: {SESSION_COOKIE}={_session(server, 'admin')}"],
        "anonymous": [],
    }


def schemathesis_run(
    server: ServerProcess, role: str, headers: list[str], config: Path, workdir: Path
) -> dict[str, Any]:
    """One `schemathesis run` over the operations of one role; its JSON report and printed output."""
    selection = "/x-roles == []" if role == "anonymous" else f'/x-roles/0 == "{role}"'
    report = (REPORTS or workdir) / f"{role}.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{server.url}/schema/openapi.json",
        "--include-by",
        selection,
        "--exclude-path-regex",
        "/events$",  # Server-Sent Events: endless streams
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES,
        "--mode",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",  # one at a time: the same seed gives the same run
        "--request-timeout",
        "30",
        # Authentication is the role's, not values generated for the security schemes.
        "--generation-with-security-parameters",
        "false",
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--no-color",
    ]
    for header in headers:
        command += ["--header", header]
    started = time.monotonic()
    # In its own folder: Schemathesis looks for a config file and writes reports where it runs.
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - started
    assert report.exists(), f"schemathesis did not run:\n{result.stdout}\n{result.stderr}"
    data = json.loads(report.read_text())
    data["output"] = result.stdout + result.stderr
    data["seconds"] = seconds
    return data


@pytest.mark.parametrize("role", ROLES)
def test_no_answer_is_a_server_error_or_breaks_the_schema(
    role: str,
    fuzzed_server: tuple[ServerProcess, dict[str, str]],
    credentials: dict[str, list[str]],
    known_ids: dict[str, list[int]],
) -> None:
    server, _ = fuzzed_server
    with tempfile.TemporaryDirectory(prefix="lanshou-schemathesis-") as folder:
        workdir = Path(folder)
        config = _config_file(role, known_ids, workdir)
        run = schemathesis_run(server, role, credentials[role], config, workdir)
    cases = run["test_cases"]
    SUMMARY[role] = {
        "operations": run["operations"]["tested"],
        "cases": cases["generated"],
        "failures": cases["unique_failures"],
        "seconds": run["seconds"],
    }
    assert run["operations"]["tested"] >= 1, run["output"]
    output = run["output"]
    details = output[output.find("FAILURES") :] if "FAILURES" in output else output[-5000:]
    assert run["failures"] == [] and run["errors"] == [], details[:20000]
    assert run["complete"] and run["stop_reason"] == "completed", details[-5000:]
