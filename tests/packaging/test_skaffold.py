"""skaffold.yaml: valid against its schema (../shared/k8s-schemas/skaffold), an artifact per task,
the umbrella chart deployed with skaffold's image names and tags, profiles whose values files
exist, and the local profile's podman builds.
"""

from __future__ import annotations

import json

import yaml

from shared.settings import REPO_ROOT
from tests.charts.support import K8S_SCHEMAS, TASKS, needs_k8s_schemas


@needs_k8s_schemas
def test_skaffold_yaml_matches_its_schema():
    import jsonschema

    schema = json.loads((K8S_SCHEMAS / "skaffold" / "v4beta14.json").read_text())
    config = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(config))
    assert not errors, [e.message[:300] for e in errors]
    assert config["apiVersion"] == "skaffold/v4beta14"


def test_skaffold_builds_every_task_and_deploys_the_umbrella():
    config = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {f"slm-{task}" for task in TASKS}
    for task in TASKS:
        docker = artifacts[f"slm-{task}"]["docker"]
        assert docker["buildArgs"] == {"TASK": task}
        assert (REPO_ROOT / artifacts[f"slm-{task}"]["context"] / docker["dockerfile"]).is_file()
    (release,) = config["deploy"]["helm"]["releases"]
    assert (REPO_ROOT / release["chartPath"] / "Chart.yaml").is_file()
    for task in TASKS:
        image = task.replace("-", "_")
        assert release["setValueTemplates"][f"{task}.image.repository"] == f"{{{{.IMAGE_REPO_slm_{image}}}}}"
        assert release["setValueTemplates"][f"{task}.image.tag"] == f"{{{{.IMAGE_TAG_slm_{image}}}}}"
    profiles = {p["name"]: p for p in config["profiles"]}
    assert {"dev", "production", "production-keda", "sentiment-only"} <= set(profiles)
    for profile in profiles.values():
        for patch in profile.get("patches", []):
            if patch["path"].endswith("/valuesFiles"):
                assert all((REPO_ROOT / f).is_file() for f in patch["value"])


def test_skaffold_local_profile_builds_each_task_with_podman_under_skaffolds_tag():
    config = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    artifacts = [a["image"] for a in config["build"]["artifacts"]]
    (local,) = [p for p in config["profiles"] if p["name"] == "local"]
    custom = {p["path"]: p["value"] for p in local["patches"] if p["op"] == "add"}
    removed = {p["path"] for p in local["patches"] if p["op"] == "remove"}
    for index, image in enumerate(artifacts):
        task = image.removeprefix("slm-")
        assert f"/build/artifacts/{index}/docker" in removed
        build = custom[f"/build/artifacts/{index}/custom"]
        assert build["buildCommand"] == f'.venv/bin/slm images build --task {task} --tag "$IMAGE" --load'
        assert f"models/{task}" in build["dependencies"]["paths"]
        assert all((REPO_ROOT / path).exists() for path in build["dependencies"]["paths"])
