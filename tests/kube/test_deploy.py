"""deploy/ is what the Kubernetes API accepts, and the DaemonSet is wired as the driver needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cephmount.kube import manifests

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MODELS = {("v1", "Namespace"): "V1Namespace", ("v1", "ConfigMap"): "V1ConfigMap",
          ("apps/v1", "DaemonSet"): "V1DaemonSet", ("apps/v1", "Deployment"): "V1Deployment"}


def documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(DEPLOY.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("doc", documents(), ids=lambda doc: doc["kind"])
def test_every_object_validates(doc: dict[str, Any]) -> None:
    manifests._checked(MODELS[doc["apiVersion"], doc["kind"]], doc)


def test_daemonset_shares_mounts_with_the_host() -> None:
    daemonset = next(doc for doc in documents() if doc["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["hostPID"] and container["securityContext"]["privileged"]
    propagation = {m["mountPath"]: m.get("mountPropagation") for m in container["volumeMounts"]}
    assert propagation["/var/lib/cephmount"] == "Bidirectional"
    assert propagation["/var/lib/kubelet/pods"] == "Bidirectional"
    assert "install-flexvolume" in container["args"][0]
