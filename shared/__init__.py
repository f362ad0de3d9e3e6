"""slm-services common library: settings, message schemas, model runtime, Kafka loop, telemetry."""
