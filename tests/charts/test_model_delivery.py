"""Model delivery other than in the image: a read-only PersistentVolumeClaim, or an init container
that fetches the model folder into an emptyDir (in a RayService's worker group here)."""

from __future__ import annotations

from tests.charts.support import RELEASE, named, needs_k8s_schemas, render, set_args
from tests.charts.validation import assert_valid_and_hardened


@needs_k8s_schemas
def test_model_from_pvc_or_init_container(helm_env, charts_dir):
    values = {
        "sentiment.mode": "deployment",
        "sentiment.model": {"source": "pvc", "pvc": {"claimName": "slm-models"}},
        "transactions.model": {
            "source": "initContainer",
            "initContainer": {
                "image": "amazon/aws-cli:2.31.0",
                "command": ["sh", "-c"],
                "args": ['aws s3 cp --recursive "$SLM_MODEL_URL" "$SLM_MODEL_DIR"'],
                "url": "s3://models/transactions/2026-11-26/",
                "extraEnvVarsSecret": "model-store-credentials",
            },
        },
    }
    docs = render(helm_env, charts_dir, *set_args(values))
    assert_valid_and_hardened(docs)
    sentiment = named(docs, "Deployment", f"{RELEASE}-sentiment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in sentiment["volumes"]}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "slm-models", "readOnly": True}
    assert named(docs, "ConfigMap", f"{RELEASE}-sentiment")["data"]["SLM_MODEL_DIR"] == "/models/sentiment"

    ray_service = named(docs, "RayService", f"{RELEASE}-transactions")
    worker = ray_service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    (init,) = worker["initContainers"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["SLM_MODEL_DIR"] == "/models/transactions"
    assert env["SLM_MODEL_URL"] == "s3://models/transactions/2026-11-26/"
    assert init["envFrom"] == [{"secretRef": {"name": "model-store-credentials"}}]
    assert {v["name"]: v for v in worker["volumes"]}["model"]["emptyDir"]["sizeLimit"] == "1Gi"
