"""kopf, an off-the-shelf Python operator framework, runs unmodified against orch.

A small kopf operator (written here into a temporary file) runs as a real subprocess,
``python -m kopf run --standalone``, against an ``orch.Cluster`` through its kubeconfig. Every
assertion reads the cluster's API: the ConfigMap the create handler made (owned through
``kopf.adopt``), the handler result kopf writes into ``status``, kopf's annotations and
finalizer, the update handler's patch, and the finalizer-driven delete handler.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import orch

pytest.importorskip("kopf")
pytest.importorskip("kubernetes")

GROUP, VERSION, PLURAL = "ops.example.org", "v1", "backups"

# Like examples/crd/backup-crd.yaml, with the status kopf's docs ask for: preserved unknown
# fields, so kopf can store its handlers' results and progress there.
CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "backup", "kind": "Backup", "shortNames": ["bk"]},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["database"],
                                "properties": {
                                    "database": {"type": "string"},
                                    "workers": {"type": "integer", "minimum": 0},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}

OPERATOR = '''
import kopf
import kubernetes


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.watching.server_timeout = 10
    settings.watching.client_timeout = 15
    kubernetes.config.load_kube_config()


def configmap(name, spec):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-config"},
        "data": {"database": spec["database"], "workers": str(spec.get("workers", 0))},
    }


@kopf.on.create("ops.example.org", "v1", "backups")
def create_fn(spec, name, namespace, logger, **_):
    cm = configmap(name, spec)
    kopf.adopt(cm)
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, cm)
    logger.info("created %s-config", name)
    return {"configMap": f"{name}-config"}


@kopf.on.update("ops.example.org", "v1", "backups", field="spec")
def update_fn(spec, name, namespace, **_):
    kubernetes.client.CoreV1Api().patch_namespaced_config_map(
        f"{name}-config", namespace, {"data": configmap(name, spec)["data"]}
    )
    return {"database": spec["database"]}


@kopf.on.delete("ops.example.org", "v1", "backups")
def delete_fn(name, namespace, **_):
    marker = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-deleted"}}
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, marker)
'''

FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
LAST_HANDLED = "kopf.zalando.org/last-handled-configuration"


def wait_until(what: str, check: Callable[[], Any], proc: subprocess.Popen[str], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"kopf exited with {proc.returncode} while waiting for {what}")
        try:
            last = check()
            if last:
                return last
        except orch.NotFoundError:
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")


def test_a_kopf_operator_runs_unmodified(tmp_path: Path) -> None:
    with orch.Cluster(nodes=1, runtime="sim") as cluster:
        assert cluster.kubeconfig
        cluster.apply(CRD)
        cluster.wait_for("customresourcedefinitions", f"{PLURAL}.{GROUP}", "Established", timeout=10)
        op = tmp_path / "backup_operator.py"  # not operator.py: that would shadow the stdlib module
        op.write_text(OPERATOR)
        log = tmp_path / "kopf.log"
        env = {**os.environ, "KUBECONFIG": cluster.kubeconfig}
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", "default", "--verbose", str(op)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        try:
            cluster.apply(
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Backup",
                    "metadata": {"name": "nightly", "namespace": "default"},
                    "spec": {"database": "orders", "workers": 2},
                }
            )
            # on.create: the owned ConfigMap, the handler's result in status, kopf's marks.
            cm = wait_until("the ConfigMap", lambda: cluster.get("configmaps", "nightly-config", "default"), proc)
            assert cm["data"] == {"database": "orders", "workers": "2"}
            owner = cm["metadata"]["ownerReferences"][0]
            assert (owner["kind"], owner["name"], owner["controller"]) == ("Backup", "nightly", True)
            bk = wait_until(
                "status.create_fn",
                lambda: (b := cluster.get("backups", "nightly", "default")).get("status", {}).get("create_fn") and b,
                proc,
            )
            assert bk["status"]["create_fn"] == {"configMap": "nightly-config"}
            assert owner["uid"] == bk["metadata"]["uid"]
            assert FINALIZER in bk["metadata"]["finalizers"]
            assert LAST_HANDLED in bk["metadata"]["annotations"]

            # on.update of spec: the ConfigMap follows, the result lands in status.
            cluster.patch("backups", "nightly", {"spec": {"database": "invoices"}}, "default")
            wait_until(
                "the update handler",
                lambda: cluster.get("configmaps", "nightly-config", "default")["data"]["database"] == "invoices",
                proc,
            )
            wait_until(
                "status['update_fn/spec'] (kopf names a field handler handler/field)",
                lambda: cluster.get("backups", "nightly", "default").get("status", {}).get("update_fn/spec")
                == {"database": "invoices"},
                proc,
            )

            # on.delete: the finalizer holds the object until the handler ran, then goes.
            cluster.delete("backups", "nightly", "default")
            wait_until("the delete handler", lambda: cluster.get("configmaps", "nightly-deleted", "default"), proc)
            wait_until("the Backup to go", lambda: cluster._check("backups", "nightly", "deleted", "default")[0], proc)
            assert proc.poll() is None, "kopf exited"
        except BaseException:
            print(log.read_text()[-6000:])
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
