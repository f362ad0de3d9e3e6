"""What `helm template` refuses, with the values schema's (or the chart's) message: bad values, and
release names the API server would refuse; a long release name is cut to 63 characters instead.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.charts.support import YAML_LOADER, run_helm, set_args, template


@pytest.mark.parametrize(
    ("values", "messages"),
    [
        ({"sentiment.replicaCount": -1}, ["sentiment:", "at '/replicaCount': minimum: got -1, want 0"]),
        ({"transactions.mode": "serverless"}, ["transactions:", "at '/mode': value must be one of 'ray', 'deployment'"]),
        (
            {"global.slm.kafka.sasl.password": "hunter2"},
            ["at '/global/slm/kafka/sasl': additional properties 'password' not allowed"],
        ),
        ({"entities.kafka.password": "hunter2"}, ["entities:", "at '/kafka': additional properties 'password' not allowed"]),
        ({"helpdesk.replicaCont": 2}, ["helpdesk:", "additional properties 'replicaCont' not allowed"]),
        ({"global.slm.kafka.securityProtocol": "SASL"}, ["at '/global/slm/kafka/securityProtocol': value must be one of"]),
        (
            {"sentiment.keda.enabled": True, "global.slm.kafka.bootstrap": "kafka:9092"},
            ["sentiment: keda.enabled needs mode=deployment"],
        ),
        (
            {"global.slm.kafka.bootstrap": "kafka:9092", "global.slm.kafka.securityProtocol": "SASL_SSL",
             "global.slm.kafka.sasl.mechanism": "PLAIN"},
            ["global.slm.kafka.sasl.existingSecret: must name an existing Secret"],
        ),
        ({"global.slm.strimzi.enabled": True}, ["global.slm.strimzi.clusterName: must name the Strimzi Kafka cluster"]),
        ({"sentiment.model.source": "pvc"}, ["sentiment: model.pvc.claimName must name an existing PersistentVolumeClaim"]),
        # What the API server refuses, refused before anything reaches it:
        ({"sentiment.livenessProbe.successThreshold": 2}, ["sentiment:", "at '/livenessProbe/successThreshold'"]),
        ({"helpdesk.startupProbe.successThreshold": 3}, ["helpdesk:", "at '/startupProbe/successThreshold'"]),
        ({"entities.resources": {"limits": {"memory": "1GB"}}}, ["entities:", "at '/resources/limits/memory'"]),
        ({"transactions.ray.worker.resources": {"requests": {"cpu": "one"}}},
         ["transactions:", "at '/ray/worker/resources/requests/cpu'"]),
        ({"sentiment.podLabels": {"team": "nlp!"}}, ["sentiment:", "at '/podLabels/team'"]),
        ({"sentiment.commonLabels": {"bad key!": "x"}}, ["sentiment:", "invalid propertyName 'bad key!'"]),
        ({"sentiment.pdb.maxUnavailable": "50%"}, ["sentiment: pdb.maxUnavailable must be a number of pods in ray mode"]),
        ({"helpdesk.kafka.delivery": "exactly-once"}, ["helpdesk:", "at '/kafka/delivery': value must be one of"]),
        ({"helpdesk.kafka.delivery": "exactly_once", "helpdesk.kafka.staticMembership": False,
          "global.slm.kafka.bootstrap": "kafka:9092"},
         ["helpdesk: kafka.delivery=exactly_once needs kafka.staticMembership"]),
    ],
    ids=["negative-replicas", "unknown-mode", "password-in-global", "password-in-task", "typo", "bad-protocol",
         "keda-in-ray-mode", "sasl-without-secret", "strimzi-without-cluster", "pvc-without-claim",
         "liveness-success-threshold", "startup-success-threshold", "memory-1GB", "cpu-word", "label-value",
         "label-key", "ray-pdb-percentage", "delivery-typo", "exactly-once-without-static-membership"],
)
def test_bad_values_fail_with_a_clear_message(helm_env, charts_dir, values, messages):
    result = template(helm_env, charts_dir, *set_args(values))
    assert result.returncode != 0, "helm template accepted bad values"
    for message in messages:
        assert message in result.stderr, result.stderr


@pytest.mark.parametrize("release", ["1slm", "9-to-5", "slm.prod"])  # helm itself accepts all three
def test_release_names_the_server_would_refuse_are_refused_by_the_chart(helm_env, charts_dir, release):
    """Service names must be DNS-1035 labels; the API server, not helm template, would find out."""
    result = run_helm(helm_env, "template", release, charts_dir / "slm-services")
    assert result.returncode != 0, "a release name the API server refuses was rendered"
    # helm stops at the first subchart that fails, in no fixed order.
    pattern = rf'the Service name "{re.escape(release)}-[a-z]+" \(release "{re.escape(release)}"\) must be a DNS-1035 label'
    assert re.search(pattern, result.stderr), result.stderr


def test_long_release_names_are_cut_to_63(helm_env, charts_dir):
    release = "a-release-name-that-is-quite-long-for-a-cluster-" + "x" * 5
    result = run_helm(helm_env, "template", release, charts_dir / "slm-services")
    assert result.returncode == 0, result.stderr
    for doc in yaml.load_all(result.stdout, Loader=YAML_LOADER):
        if doc:
            assert len(doc["metadata"]["name"]) <= 63 and not doc["metadata"]["name"].endswith("-")
