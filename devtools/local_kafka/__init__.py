"""A single-node Apache Kafka broker for local development, tests and CI.

The broker runs in KRaft mode (combined broker + controller, no ZooKeeper) and is launched
straight from the Kafka jars on Maven Central; only ``java`` (17+) and ``mvn`` are needed, no
Kafka distribution, no Docker. Everything listens on, and is probed at, ``127.0.0.1`` only.

- :mod:`~devtools.local_kafka.config`: :class:`BrokerConfig` (ports, folders), :func:`bootstrap`, :func:`kafka_version`;
- :mod:`~devtools.local_kafka.maven`: the jars, fetched once (:func:`install`);
- :mod:`~devtools.local_kafka.wire`: readiness by a real ``ApiVersions`` request (:func:`api_versions`);
- :mod:`~devtools.local_kafka.properties`: ``server.properties`` and the log4j2 configuration;
- :mod:`~devtools.local_kafka.processes`: storage format, launch, pid file, stop;
- :mod:`~devtools.local_kafka.lifecycle`: :func:`up`, :func:`down`, :func:`status`.

Typical use::

    cfg = BrokerConfig.from_env()
    up(cfg)                      # idempotent; returns once the broker answers
    print(bootstrap(cfg))        # "127.0.0.1:9092"
    down(cfg)                    # idempotent

Topics are created on demand elsewhere (kafka-python's admin client) or through
``auto.create.topics.enable``.
"""

from devtools.errors import BrokerError
from devtools.local_kafka.config import BrokerConfig, bootstrap, kafka_version
from devtools.local_kafka.lifecycle import down, status, up
from devtools.local_kafka.maven import install
from devtools.local_kafka.wire import api_versions

__all__ = ["BrokerConfig", "BrokerError", "api_versions", "bootstrap", "down", "install", "kafka_version", "status",
           "up"]
