"""Schema validation of rendered objects, and the pod hardening every workload must have.

Every Kubernetes object goes through the schemas bundled by kubernetes-validate (strict), and every
custom resource through the openAPIV3Schema of its CRD in ../shared/k8s-schemas (the PrometheusRule
CRD in .cache/crds, fetched by `make test`).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import yaml

from shared.settings import REPO_ROOT
from tests.charts.support import K8S_SCHEMAS, YAML_LOADER, by_kind

KUBERNETES_VERSION = "1.33.0"

# (apiVersion, kind) of every custom resource the charts render -> its CRD file.
CRD_FILES = {
    ("ray.io/v1", "RayService"): "crds/kuberay/ray.io_rayservices.yaml",
    ("keda.sh/v1alpha1", "ScaledObject"): "crds/keda/keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "crds/keda/keda.sh_triggerauthentications.yaml",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "crds/strimzi/043-Crd-kafkatopic.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "crds/prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
    # Not among the handouts: fetched by `make test` from the prometheus-operator Go module.
    ("monitoring.coreos.com/v1", "PrometheusRule"): REPO_ROOT / ".cache/crds/monitoring.coreos.com_prometheusrules.yaml",
}

HARDENED_CONTAINER = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def crd_to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 CRD schema as JSON Schema, as strict as the API server's field validation.

    `x-kubernetes-int-or-string` becomes integer-or-string, `nullable` admits null, and an object
    with `properties` refuses unknown fields unless `x-kubernetes-preserve-unknown-fields` is set.
    Other `x-kubernetes-*` keys are dropped.
    """
    if isinstance(node, list):
        return [crd_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: crd_to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def crd_validator(api_version: str, kind: str):
    import jsonschema

    crd = yaml.load((K8S_SCHEMAS / CRD_FILES[(api_version, kind)]).read_text(), Loader=YAML_LOADER)
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    assert version in served, f"{api_version} {kind} is not served by {CRD_FILES[(api_version, kind)]}"
    schema = crd_to_json_schema(served[version]["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def validate_object(doc: dict) -> None:
    """Kubernetes objects through kubernetes-validate (strict), custom resources through their CRD."""
    import kubernetes_validate

    key = (doc["apiVersion"], doc["kind"])
    where = f"{doc['kind']} {doc['metadata'].get('name')}"
    if key in CRD_FILES:
        errors = sorted(crd_validator(*key).iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, f"{where}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:5]
        )
    else:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {'/'.join(map(str, error.path))}: {error.message}")


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    """Every pod spec: Deployments, and the head and worker groups of RayServices."""
    specs = []
    for doc in by_kind(docs, "Deployment"):
        specs.append((f"Deployment {doc['metadata']['name']}", doc["spec"]["template"]["spec"]))
    for doc in by_kind(docs, "RayService"):
        cluster = doc["spec"]["rayClusterConfig"]
        specs.append((f"RayService {doc['metadata']['name']} head", cluster["headGroupSpec"]["template"]["spec"]))
        for group in cluster["workerGroupSpecs"]:
            specs.append((f"RayService {doc['metadata']['name']} {group['groupName']}", group["template"]["spec"]))
    return specs


def assert_valid_and_hardened(docs: list[dict]) -> None:
    for doc in docs:
        validate_object(doc)
    specs = pod_specs(docs)
    assert specs, "no workload rendered"
    for where, spec in specs:
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True and pod_context["runAsUser"] == 10001, where
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            for field, value in HARDENED_CONTAINER.items():
                assert context[field] == value, f"{where} {container['name']}: securityContext.{field}"
            assert container.get("resources"), f"{where} {container['name']}: no resources"
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert "/tmp" in mounts, f"{where}: /tmp must be a writable emptyDir"
