# Chart tooling, included by the Makefile. `make test` builds the real helm from the Go module
# proxy once into .cache/bin (like the Kafka jars in .cache); `make charts-test` lints and renders.
#
# helm is built the way its own Makefile builds releases: the version and the Kubernetes version
# that `helm template` and `helm lint` assume (that of the client-go it is built with) go in by -ldflags.
HELM_VERSION := v3.22.0
HELM_K8S_MAJOR := 1
HELM_K8S_MINOR := 37
HELM := .cache/bin/helm
HELM_LDFLAGS := -s -w \
  -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
  -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$(HELM_K8S_MAJOR) \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$(HELM_K8S_MAJOR) \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)
# helm keeps its cache, config and data under .cache/helm, never in $HOME.
HELM_ENV := HELM_CACHE_HOME=$(CURDIR)/.cache/helm/cache HELM_CONFIG_HOME=$(CURDIR)/.cache/helm/config \
  HELM_DATA_HOME=$(CURDIR)/.cache/helm/data
CHARTS_TASK := charts/slm-task
CHARTS_UMBRELLA := charts/slm-services

TEST_SETUP += .cache/bin/helm

.PHONY: charts-deps charts-lint charts-test charts-readme

# The PrometheusRule CRD, absent from ../shared/k8s-schemas, from the prometheus-operator module on
# the Go module proxy at the version of the ServiceMonitor CRD there (0.93.0).
PROMETHEUS_OPERATOR_VERSION := v0.93.0
PROMETHEUS_RULE_CRD := .cache/crds/monitoring.coreos.com_prometheusrules.yaml
TEST_SETUP += $(PROMETHEUS_RULE_CRD)

$(PROMETHEUS_RULE_CRD): charts/charts.mk
	@mkdir -p $(@D)
	cp "$$(GOMODCACHE=$(CURDIR)/.cache/go-mod GOFLAGS=-modcacherw go mod download -json \
	  github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION) | \
	  $(PY) -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')/example/prometheus-operator-crd/$(@F)" $@
	@chmod u+w $@

# Rebuilt when this file changes (a new HELM_VERSION). About 3 minutes on 2 cores the first time.
# Go's build and module caches stay in .cache with the rest of what the project fetches
# (-modcacherw: so `rm -rf .cache` can remove them).
.cache/bin/helm: charts/charts.mk
	@mkdir -p $(@D)
	GOBIN=$(CURDIR)/.cache/bin GOCACHE=$(CURDIR)/.cache/go-build GOMODCACHE=$(CURDIR)/.cache/go-mod \
	  CGO_ENABLED=0 go install -modcacherw -trimpath -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@touch $@
	@$@ version --short

# The file:// dependencies, packaged into each chart's charts/ folder (no repository is contacted).
charts-deps: $(HELM)
	$(HELM_ENV) $(HELM) dependency build $(CHARTS_TASK)
	$(HELM_ENV) $(HELM) dependency build $(CHARTS_UMBRELLA)

charts-lint: charts-deps
	$(HELM_ENV) $(HELM) lint --strict $(CHARTS_TASK) $(CHARTS_UMBRELLA)

# helm lint/template of every chart, Kubernetes and CRD schema validation (tests/charts); skaffold.yaml
# against its schema, the Dockerfile, bentofile and serving pins (tests/packaging).
charts-test: .venv/.installed .cache/bin/helm
	$(PY) -m pytest tests/charts tests/packaging $(PYTEST_ARGS)

# The values tables of the chart READMEs, from the `## @param` lines of values.yaml.
charts-readme: .venv/.installed
	$(PY) charts/values_table.py $(CHARTS_TASK) $(CHARTS_UMBRELLA)
