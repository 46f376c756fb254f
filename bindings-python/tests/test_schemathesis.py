"""schemathesis against the OpenAPI orch publishes: no 5xx, every 4xx a well-formed ``Status``.

A real ``orch up`` (the binary in ``ORCH_BIN``, which scripts/test-all.sh exports; plain HTTP
with ``--insecure-http``, simulated runtime, in-memory store) serves ``/openapi/v3/<group-version>``;
schemathesis loads each document over HTTP and generates requests for every operation, both
schema-conforming ("positive") and schema-violating ("negative") ones, and sends them to the
server. Checks on every answer:

- ``not_a_server_error``: no 5xx, whatever the input;
- ``status_is_well_formed``: a 4xx body is a ``Status`` as kube-apiserver writes it (kind
  ``Status``, apiVersion ``v1``, status ``Failure``, ``code`` equal to the HTTP code, a non-empty
  ``reason`` of upstream's ``StatusReason`` set, a ``message``);
- a write whose options upstream refuses (a ``dryRun`` other than ``All``, an unknown
  ``fieldValidation``, a ``gracePeriodSeconds`` that is not an integer) is not a 2xx: the
  OpenAPI types these as plain strings, so only this check tells an ignored option;

and, when the server stops, no ``panicked`` line in its log.

Namespaced operations run in a fresh namespace. Exclusions (each would hang or wreck the run, not
hide an answer; see docs/design/schemathesis.md): streaming connects (exec, attach, portforward,
proxy), the long-running ``watch=true``/``follow=true`` variants of list and log, the deprecated
``/watch/`` paths, and ``deletecollection`` of cluster-scoped resources (it would delete the node,
the bootstrap RBAC and CRDs the rest of the run needs).

Examples per operation and mode: ``ORCH_SCHEMATHESIS_EXAMPLES`` (default 2, a few minutes on
two cores); ``ORCH_SCHEMATHESIS_SEED`` replays a run (each run picks a random seed and names it
in a failure); ``ORCH_SCHEMATHESIS_GROUP_VERSIONS`` (comma separated, ``all`` for every
published one) widens the run.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")
requests = pytest.importorskip("requests")

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "schemathesis"

# The group-versions run by default: the workload APIs and a few more with different shapes
# (cluster-scoped RBAC, leases, disruption budgets, create-only reviews).
DEFAULT_GROUP_VERSIONS = [
    "api/v1",
    "apis/apps/v1",
    "apis/batch/v1",
    "apis/rbac.authorization.k8s.io/v1",
    "apis/coordination.k8s.io/v1",
    "apis/policy/v1",
    "apis/authorization.k8s.io/v1",
]

# Upstream `metav1.StatusReason` values (staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
STATUS_REASONS = {
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "AlreadyExists",
    "Conflict",
    "Gone",
    "Invalid",
    "ServerTimeout",
    "StoreReadError",
    "Timeout",
    "TooManyRequests",
    "BadRequest",
    "MethodNotAllowed",
    "NotAcceptable",
    "RequestEntityTooLarge",
    "UnsupportedMediaType",
    "InternalError",
    "Expired",
    "ServiceUnavailable",
}

# Streaming connects: they upgrade the connection (SPDY/WebSocket) or tunnel to a pod, node or
# service; a generated plain request says nothing about them and a tunnel can hang.
STREAMING = re.compile(r"/(exec|attach|portforward|proxy)(/|$)")
# The deprecated `/watch/` paths are streams that end only at their timeout.
WATCH_PATH = re.compile(r"/watch/")


def examples() -> int:
    return int(os.environ.get("ORCH_SCHEMATHESIS_EXAMPLES", "2"))


def run_seed() -> int:
    """The Hypothesis seed of this run (``ORCH_SCHEMATHESIS_SEED`` replays one)."""
    return int(os.environ.get("ORCH_SCHEMATHESIS_SEED") or random.randrange(1 << 32))


def group_versions() -> list[str]:
    wanted = os.environ.get("ORCH_SCHEMATHESIS_GROUP_VERSIONS", "")
    if not wanted:
        return DEFAULT_GROUP_VERSIONS
    return [gv.strip() for gv in wanted.split(",") if gv.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `orch up` on plain HTTP; yields its base URL, with the test namespace created."""
    binary = os.environ.get("ORCH_BIN") or str(REPO / "target" / "debug" / "orch")
    assert Path(binary).exists(), f"no orch binary at {binary}: build it or set ORCH_BIN"
    data = tmp_path_factory.mktemp("orch-schemathesis")
    base = f"http://127.0.0.1:{free_port()}"
    log = (data / "orch.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            "up",
            "--insecure-http",
            "--listen",
            base.removeprefix("http://"),
            "--runtime",
            "sim",
            "--storage",
            "memory",
            "--data-dir",
            str(data / "state"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (data / "orch.log").read_text()[-4000:]
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "orch up did not get ready in 60 s"
            time.sleep(0.2)
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        r = requests.post(f"{base}/api/v1/namespaces", json=ns, timeout=10)
        assert r.status_code == 201, r.text
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        text = (data / "orch.log").read_text()
        print(text[-3000:])
    # A panic in a controller or a background task that a generated object reached shows in
    # no answer; the server's log tells it.
    panics = [line for line in text.splitlines() if "panicked" in line]
    assert not panics, "\n".join(panics[:20])


def status_problem(code: int, text: str) -> str | None:
    """Why a 4xx body is not a well-formed upstream `Status`, or None when it is."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        return "not JSON"
    if not isinstance(body, dict):
        return "not an object"
    want = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code}
    wrong = {k: body.get(k) for k, v in want.items() if body.get(k) != v}
    if wrong:
        return f"fields {wrong} (want {want})"
    if body.get("reason") not in STATUS_REASONS:
        return f"reason {body.get('reason')!r} is not an upstream StatusReason"
    if not isinstance(body.get("message"), str) or not body["message"]:
        return "no message"
    return None


def refused_option(method: str, query: dict[str, Any] | None) -> str | None:
    """A write option in `query` that upstream refuses before writing (apimachinery
    `ValidateCreateOptions` and friends, the parameter codec), so a 2xx means it was ignored."""
    if method.upper() not in ("POST", "PUT", "PATCH", "DELETE") or not query:
        return None
    value = {k: str(v) for k, v in query.items() if not isinstance(v, (list, dict))}
    if "dryRun" in value and value["dryRun"] != "All":
        return f"dryRun={value['dryRun']!r}"
    if method.upper() != "DELETE" and value.get("fieldValidation", "") not in ("", "Ignore", "Strict", "Warn"):
        return f"fieldValidation={value['fieldValidation']!r}"
    if method.upper() == "DELETE" and not re.fullmatch(r"[+-]?[0-9]+", value.get("gracePeriodSeconds", "0")):
        return f"gracePeriodSeconds={value['gracePeriodSeconds']!r}"
    return None


def runnable(method: str, path: str) -> bool:
    """Whether an operation can run in this test (see the module docstring for the exclusions)."""
    if STREAMING.search(path) or WATCH_PATH.search(path):
        return False
    # deletecollection of a cluster-scoped resource: DELETE on a collection path outside a namespace.
    collection = not path.rstrip("/").endswith("}")
    return not (method.upper() == "DELETE" and collection and "{namespace}" not in path)


def fuzz_group_version(base: str, gv: str, n: int, run: int) -> list[str]:
    """Runs every runnable operation of one group-version; returns the findings."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi/v3/{gv}", timeout=30)
    session = requests.Session()
    findings: dict[tuple[str, int, str], str] = {}

    def no_streams(case: Any) -> Any:
        # `watch=true` on a list and `follow=true` on a log hold the answer open until their timeout.
        if case.query:
            case.query.pop("watch", None)
            case.query.pop("follow", None)
        return case

    ran = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if not runnable(op.method, op.path):
            continue
        ran += 1
        fixed = {"namespace": NAMESPACE} if "{namespace}" in op.path else None
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = op.as_strategy(generation_mode=mode, path_parameters=fixed).map(no_streams)

            @settings(
                max_examples=n,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @seed(run)
            @given(strategy)
            def one(case: Any) -> None:
                r = case.call(base_url=base, session=session, timeout=30)
                if r.status_code >= 500:
                    problem = f"{r.status_code}"
                elif r.status_code >= 400:
                    why = status_problem(r.status_code, r.text)
                    problem = f"{r.status_code} not a Status: {why}" if why else ""
                elif why := refused_option(op.method, case.query):
                    problem = f"{r.status_code} although {why} is refused upstream"
                else:
                    problem = ""
                if problem:
                    key = (op.label, r.status_code, problem)
                    findings.setdefault(key, f"{op.label} [{mode.value}]: {problem}\n  {case.as_curl_command()}\n  -> {r.text[:400]}")

            try:
                one()
            except Unsatisfiable:
                # Nothing in this operation can be made invalid (only fixed path parameters).
                pass
    assert ran > 0, f"no runnable operation in {gv}"
    return list(findings.values())


@pytest.mark.parametrize("gv", group_versions())
def test_no_5xx_and_every_4xx_a_status(server: str, gv: str) -> None:
    if gv == "all":
        index = requests.get(f"{server}/openapi/v3", timeout=10).json()
        gvs = list(index["paths"])
    else:
        gvs = [gv]
    run = run_seed()
    findings = [f for g in gvs for f in fuzz_group_version(server, g, examples(), run)]
    assert not findings, f"ORCH_SCHEMATHESIS_SEED={run}\n\n" + "\n\n".join(findings)


def test_status_check_tells_malformed_bodies() -> None:
    """The 4xx check itself: what it takes and what it refuses."""
    good = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "m", "reason": "NotFound", "code": 404}
    assert status_problem(404, json.dumps(good)) is None
    assert status_problem(400, json.dumps(good)) is not None  # code differs from the HTTP code
    assert status_problem(404, json.dumps({**good, "reason": ""})) is not None
    assert status_problem(404, json.dumps({**good, "reason": "Missing"})) is not None
    assert status_problem(404, json.dumps({**good, "status": "Success"})) is not None
    assert status_problem(404, json.dumps({k: v for k, v in good.items() if k != "message"})) is not None
    assert status_problem(404, "404 page not found") == "not JSON"
    assert refused_option("POST", {"dryRun": "bogus"}) == "dryRun='bogus'"
    assert refused_option("POST", {"dryRun": "All", "fieldValidation": "Strict"}) is None
    assert refused_option("DELETE", {"gracePeriodSeconds": "1.5"}) is not None
    assert refused_option("DELETE", {"gracePeriodSeconds": 30}) is None
    assert refused_option("GET", {"dryRun": "bogus"}) is None
    assert runnable("GET", "/api/v1/namespaces/{namespace}/pods")
    assert runnable("DELETE", "/api/v1/namespaces/{namespace}/pods")
    assert not runnable("DELETE", "/api/v1/nodes")
    assert runnable("DELETE", "/api/v1/nodes/{name}")
    assert not runnable("POST", "/api/v1/namespaces/{namespace}/pods/{name}/exec")
    assert not runnable("GET", "/api/v1/watch/namespaces/{namespace}/pods")
