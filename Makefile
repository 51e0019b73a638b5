# poolguard Makefile, in kubebuilder's shape. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

## Pinned tool versions. Everything is built from the Go module proxy into
## bin/ (git-ignored) and reused when present.
K8S_VERSION           ?= v1.37.2
ETCD_VERSION          ?= v3.7.0
CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION          ?= v4.3.1
# The reference host-local IPAM plugin: the floor poolguard-ipam's
# benchmark measures itself against.
CNI_PLUGINS_VERSION   ?= v1.9.1
# cnitool runs the CNI chain in the end-to-end tests and the demo.
CNITOOL_VERSION       ?= v1.3.1

LOCALBIN ?= $(CURDIR)/bin
export PATH := $(LOCALBIN):$(PATH)
# envtest finds kube-apiserver and etcd here.
export KUBEBUILDER_ASSETS := $(LOCALBIN)

GO      ?= go
GOTEST  ?= $(GO) test
PKGS    ?= ./...
# Each test binary must finish well inside CI's budget; the suite as a whole
# aims at a few minutes.
TEST_TIMEOUT ?= 15m

KUBE_APISERVER := $(LOCALBIN)/kube-apiserver
KUBECTL        := $(LOCALBIN)/kubectl
ETCD           := $(LOCALBIN)/etcd
CONTROLLER_GEN := $(LOCALBIN)/controller-gen
GOLANGCI_LINT  := $(LOCALBIN)/golangci-lint
HELM           := $(LOCALBIN)/helm
HOST_LOCAL     := $(LOCALBIN)/host-local
BRIDGE         := $(LOCALBIN)/bridge
# containerd 1.6's CRI plugin brings every pod's loopback up through the
# reference loopback plugin.
LOOPBACK       := $(LOCALBIN)/loopback
CNITOOL        := $(LOCALBIN)/cnitool
POOLGUARD_IPAM := $(LOCALBIN)/poolguard-ipam
# The node components of the real single-node cluster (test/cluster), from
# the same tools module and release as the API server.
KUBELET        := $(LOCALBIN)/kubelet
KUBE_CONTROLLER_MANAGER := $(LOCALBIN)/kube-controller-manager
KUBE_SCHEDULER := $(LOCALBIN)/kube-scheduler
KUBE_PROXY     := $(LOCALBIN)/kube-proxy

K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
# Stamp the version, or `kubectl version` cannot parse the server's.
K8S_VERSION_LDFLAGS := $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
  -X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(K8S_MINOR))

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code and CRD manifests.
	$(CONTROLLER_GEN) object paths=./api/... paths=./allocator/...
	$(CONTROLLER_GEN) crd paths=./api/... paths=./allocator/... output:crd:artifacts:config=charts/poolguard/crds

.PHONY: fmt
fmt: ## Run go fmt.
	$(GO) fmt $(PKGS)

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet $(PKGS)

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run $(PKGS)

.PHONY: verify-generated
verify-generated: generate ## Fail when generated files are out of date.
	@git diff --exit-code -- ':(glob)**/zz_generated.deepcopy.go' charts/poolguard/crds || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }

##@ Test

.PHONY: test
test: tools e2e-tools cluster-tools vet lint verify-generated ## Run every test: lint, unit, fuzz seeds, integration on a real kube-apiserver, end to end in network namespaces, a real single-node cluster (root).
	$(GOTEST) -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

.PHONY: test-e2e
test-e2e: tools e2e-tools ## Run the end-to-end tests: pods in network namespaces behind a legacy nftables firewall (root).
	$(GOTEST) -count=1 -timeout $(TEST_TIMEOUT) -v ./test/e2e/

.PHONY: test-cluster
test-cluster: tools cluster-tools ## Run the real single-node cluster test: etcd, API server, controller manager, scheduler, containerd and kubelet on this machine (root).
	$(GOTEST) -count=1 -timeout 10m -v ./test/cluster/

.PHONY: fuzz
fuzz: ## Fuzz the parsers and the admission handler for FUZZTIME each (default 30s).
	$(GOTEST) -run '^$$' -fuzz '^FuzzParsePoolList$$' -fuzztime $${FUZZTIME:-30s} ./policy
	$(GOTEST) -run '^$$' -fuzz '^FuzzParseProvenance$$' -fuzztime $${FUZZTIME:-30s} ./policy
	$(GOTEST) -run '^$$' -fuzz '^FuzzFreeze$$' -fuzztime $${FUZZTIME:-30s} ./policy
	$(GOTEST) -run '^$$' -fuzz '^FuzzAdmissionReview$$' -fuzztime $${FUZZTIME:-30s} ./webhook
	$(GOTEST) -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $${FUZZTIME:-30s} ./cni/ipam
	$(GOTEST) -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $${FUZZTIME:-30s} ./pools/calico/selector

# BENCH_ARGS size the end-to-end run, e.g. BENCH_ARGS="-pods=600 -rounds=5"
# (see test/bench/bench_test.go); -apiserver-profile=DIR also profiles the
# API server per setup.
BENCH_ARGS ?=

.PHONY: bench
bench: tools $(HOST_LOCAL) cluster-tools ## Run the benchmarks and print their tables: admission handlers, pods/s per admission setup, CNI ADD against host-local (and with history and cooldown on vs off), the firewall export with 10,000 addresses, a day of history, a garbage collection sweep at 1,500 and 150,000 pods, pods to Running on the real node (about 6 minutes; root).
	$(GOTEST) -count=1 -run '^$$' -bench '^BenchmarkPodHandlers(Calico)?$$' -benchtime 2s -timeout 10m ./webhook/
	$(GOTEST) -count=1 -run '^$$' -bench '^BenchmarkAdmission$$' -benchtime 1x -timeout 30m ./test/bench/ $(if $(BENCH_ARGS),-args $(BENCH_ARGS))
	$(GOTEST) -count=1 -run '^$$' -bench '^BenchmarkADD$$' -benchtime 1x -timeout 20m ./cni/integration/
	$(GOTEST) -count=1 -run '^$$' -bench '^BenchmarkExport$$' -benchmem -timeout 5m ./webhook/exportserver/
	$(GOTEST) -count=1 -run '^$$' -bench '^BenchmarkHistorySize$$' -benchtime 1x -timeout 5m ./allocator/history/archive/
	$(GOTEST) -count=1 -run '^$$' -bench '^BenchmarkSweep$$' -timeout 10m ./allocator/controller/
	$(GOTEST) -count=1 -run '^$$' -bench '^BenchmarkPodsToRunning$$' -benchtime 1x -timeout 20m ./test/cluster/

# SCALE_ARGS size the scale run (flags of test/scale), e.g. SCALE_ARGS=-full
# for Kubernetes' envelope, or SCALE_ARGS="-nodes=1000 -pods=30000".
SCALE_ARGS ?=

.PHONY: bench-scale
bench-scale: tools ## Measure poolguard at cluster scale against an empty cluster, in one run: a real API server populated with nodes, namespaces, IPPools and pods (through admission) and their allocations, the webhook binary as leader and follower; default a tenth of Kubernetes' envelope (about 3 minutes), SCALE_ARGS=-full for 5,000 nodes and 150,000 pods (about 25 minutes).
	$(GOTEST) -count=1 -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout 150m ./test/scale/ $(if $(SCALE_ARGS),-args $(SCALE_ARGS))

##@ Chart

CHART      := charts/poolguard

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the chart, strictly, over the value combinations the tests render.
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --set certificates.mode=internal
	$(HELM) lint --strict $(CHART) --set webhook.enforcement=warn --set allocator.enabled=false
	$(HELM) lint --strict $(CHART) --set mode=calico

.PHONY: manifests
manifests: $(HELM) ## Render deploy/ (kubectl apply manifests) from the chart.
	$(GO) run ./charts/cmd/render-manifests -helm $(HELM) -out deploy

##@ Demo

.PHONY: demo
demo: tools cluster-tools ## Tell the story on a real single-node cluster on this machine: helm install, real pods behind a legacy firewall, refusals, an upgrade under load, an uninstall (about 2 minutes; root).
	$(GO) run ./test/cluster/demo

.PHONY: demo-lab
demo-lab: tools e2e-tools ## The story's fast version (15 s): a local control plane, with pods in network namespaces behind a legacy firewall (root).
	$(GO) run ./test/demo

.PHONY: demo-calico
demo-calico: tools ## Tell the Calico-mode story on a local control plane: poolguard guarding Calico's own IPPools (root).
	$(GO) run ./test/demo -calico

##@ Build

.PHONY: build
build: kubectl-plugin ## Build the webhook, the CNI installer and the kubectl plugin into bin/.
	$(GO) build -o $(LOCALBIN)/poolguard-webhook ./webhook/cmd/poolguard-webhook
	$(GO) build -o $(LOCALBIN)/poolguard-cni-install ./cni/cmd/poolguard-cni-install

.PHONY: kubectl-plugin
kubectl-plugin: ## Build the kubectl plugin (kubectl poolguard explain|drift) into bin/kubectl-poolguard; put bin/ on PATH or copy it there.
	$(GO) build -o $(LOCALBIN)/kubectl-poolguard ./cmd/kubectl-poolguard

##@ Images

# The chart's image: its default repository, tagged with the chart's
# appVersion, which is what a release pushes (README, "Cutting a release").
APP_VERSION   ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/poolguard/Chart.yaml)
IMAGE_REPO    ?= ghcr.io/poolguard/poolguard
IMG           ?= $(IMAGE_REPO):$(APP_VERSION)
IMAGE_VERSION ?= $(APP_VERSION)
IMAGE_SOURCE  ?= https://github.com/poolguard/poolguard
IMAGE_DIR     ?= $(LOCALBIN)/image
# Reproducible: every timestamp in the images is the last commit's time, and
# the revision label is the commit (marked -dirty with uncommitted changes).
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
IMAGE_BUILD   = SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./cmd/image-build -version $(IMAGE_VERSION) -revision $(IMAGE_REVISION) -source $(IMAGE_SOURCE)

.PHONY: image
image: ## Build the chart's image (linux/amd64+arm64 OCI index, no Docker) into bin/image/poolguard.tar and print its digest.
	$(IMAGE_BUILD) -image poolguard -name $(IMG) -out $(IMAGE_DIR)/poolguard.tar

.PHONY: image-push
image-push: ## Build the chart's image and push it to IMG (default the chart's repository:appVersion), with your docker login credentials.
	$(IMAGE_BUILD) -image poolguard -name $(IMG) -push $(IMG) -out $(IMAGE_DIR)/poolguard.tar

.PHONY: pause-image
pause-image: ## Build the local test cluster's pause image (localhost/poolguard/pause:3.10) into bin/image/pause.tar, for ctr -n k8s.io images import.
	$(IMAGE_BUILD) -image pause -out $(IMAGE_DIR)/pause.tar

##@ Tools

.PHONY: tools
tools: $(KUBE_APISERVER) $(ETCD) $(KUBECTL) $(CONTROLLER_GEN) $(HELM) ## Build the pinned tools into bin/ (reused when present).

# Each tool is built under a versioned name and linked to its plain name, so
# a version bump rebuilds and an unchanged version is reused.
$(KUBE_APISERVER): $(KUBE_APISERVER)-$(K8S_VERSION)
	ln -sf $(notdir $<) $@
$(KUBE_APISERVER)-$(K8S_VERSION):
	@mkdir -p $(LOCALBIN)
	@echo "building kube-apiserver $(K8S_VERSION) from the Go module proxy (a few minutes, once)"
	cd test/tools && $(GO) build -ldflags "-s -w $(K8S_VERSION_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-apiserver

# kubectl of the same release as the API server: the demo shows real kubectl
# commands, and a newcomer's machine may have none.
$(KUBECTL): $(KUBECTL)-$(K8S_VERSION)
	ln -sf $(notdir $<) $@
$(KUBECTL)-$(K8S_VERSION):
	@mkdir -p $(LOCALBIN)
	@echo "building kubectl $(K8S_VERSION) from the Go module proxy (a few minutes, once)"
	cd test/tools && $(GO) build -ldflags "-s -w $(K8S_VERSION_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kubectl

# The node's Kubernetes components, built like the API server: one at a
# time (each is a heavy link on two cores), reused when present.
.PHONY: cluster-tools
cluster-tools: root cluster-deps $(KUBELET) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(KUBE_PROXY) $(BRIDGE) $(HOST_LOCAL) $(LOOPBACK) ## Build and install what the real single-node cluster runs: kubelet, controller manager, scheduler, containerd, runc, CNI plugins.

$(KUBELET) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(KUBE_PROXY): %: %-$(K8S_VERSION)
	ln -sf $(notdir $<) $@
$(KUBELET)-$(K8S_VERSION) $(KUBE_CONTROLLER_MANAGER)-$(K8S_VERSION) $(KUBE_SCHEDULER)-$(K8S_VERSION) $(KUBE_PROXY)-$(K8S_VERSION):
	@mkdir -p $(LOCALBIN)
	@echo "building $(notdir $(@:-$(K8S_VERSION)=)) $(K8S_VERSION) from the Go module proxy (a few minutes, once)"
	cd test/tools && time $(GO) build -ldflags "-s -w $(K8S_VERSION_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/$(notdir $(@:-$(K8S_VERSION)=))

# cluster-deps installs containerd and runc (and ctr, which imports images)
# from Debian's packages, only when one is missing.
.PHONY: cluster-deps
cluster-deps: root deps
	@if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || ! command -v ctr >/dev/null; then \
	  echo "installing containerd and runc with apt"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y containerd runc; \
	fi

$(ETCD): $(ETCD)-$(ETCD_VERSION)
	ln -sf $(notdir $<) $@
$(ETCD)-$(ETCD_VERSION):
	@mkdir -p $(LOCALBIN)
	cd test/tools && $(GO) build -ldflags "-s -w" -o $@ ./etcd

$(CONTROLLER_GEN): $(CONTROLLER_GEN)-$(CONTROLLER_GEN_VERSION)
	ln -sf $(notdir $<) $@
$(CONTROLLER_GEN)-$(CONTROLLER_GEN_VERSION):
	$(call go-install-tool,$@,sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_GEN_VERSION))

$(GOLANGCI_LINT): $(GOLANGCI_LINT)-$(GOLANGCI_LINT_VERSION)
	ln -sf $(notdir $<) $@
$(GOLANGCI_LINT)-$(GOLANGCI_LINT_VERSION):
	$(call go-install-tool,$@,github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: host-local
host-local: $(HOST_LOCAL) ## Build the reference host-local IPAM plugin (the benchmark's floor) into bin/.
$(HOST_LOCAL): $(HOST_LOCAL)-$(CNI_PLUGINS_VERSION)
	ln -sf $(notdir $<) $@
$(HOST_LOCAL)-$(CNI_PLUGINS_VERSION):
	$(call go-install-tool,$@,github.com/containernetworking/plugins/plugins/ipam/host-local,$(CNI_PLUGINS_VERSION))

$(HELM): $(HELM)-$(HELM_VERSION)
	ln -sf $(notdir $<) $@
$(HELM)-$(HELM_VERSION):
	$(call go-install-tool,$@,helm.sh/helm/v4/cmd/helm,$(HELM_VERSION))

.PHONY: e2e-tools
e2e-tools: root deps $(BRIDGE) $(CNITOOL) poolguard-ipam ## Build what the end-to-end tests and the demo run on a node: the CNI bridge plugin, cnitool, poolguard-ipam.

# Network namespaces, veths and nftables need root; say so rather than let
# the tests fail obscurely (or pass without having run).
.PHONY: root
root:
	@[ "$$(id -u)" = 0 ] || { echo "the end-to-end tests and the demo create network namespaces and nftables rules: run as root (e.g. sudo make $(MAKECMDGOALS))"; exit 1; }

# deps installs ip and nft with apt, only when one is missing.
.PHONY: deps
deps: root
	@if ! command -v ip >/dev/null || ! command -v nft >/dev/null; then \
	  echo "installing iproute2 and nftables with apt"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y iproute2 nftables; \
	fi

# poolguard-ipam next to the bridge plugin, for running the chain by hand
# with cnitool; rebuilt every time, cheaply. The tests and the demo build
# their own from the checkout (test/netlab).
.PHONY: poolguard-ipam
poolguard-ipam:
	@mkdir -p $(LOCALBIN)
	$(GO) build -o $(POOLGUARD_IPAM) ./cni/cmd/poolguard-ipam

$(BRIDGE): $(BRIDGE)-$(CNI_PLUGINS_VERSION)
	ln -sf $(notdir $<) $@
$(BRIDGE)-$(CNI_PLUGINS_VERSION):
	$(call go-install-tool,$@,github.com/containernetworking/plugins/plugins/main/bridge,$(CNI_PLUGINS_VERSION))

$(LOOPBACK): $(LOOPBACK)-$(CNI_PLUGINS_VERSION)
	ln -sf $(notdir $<) $@
$(LOOPBACK)-$(CNI_PLUGINS_VERSION):
	$(call go-install-tool,$@,github.com/containernetworking/plugins/plugins/main/loopback,$(CNI_PLUGINS_VERSION))

$(CNITOOL): $(CNITOOL)-$(CNITOOL_VERSION)
	ln -sf $(notdir $<) $@
$(CNITOOL)-$(CNITOOL_VERSION):
	$(call go-install-tool,$@,github.com/containernetworking/cni/cnitool,$(CNITOOL_VERSION))

.PHONY: clean
clean: ## Remove built binaries (keeps the Go caches).
	rm -rf $(LOCALBIN)

# go-install-tool builds package $(2)@$(3) and moves it to $(1).
define go-install-tool
@mkdir -p $(LOCALBIN)
@set -e; tmp=$$(mktemp -d); \
  echo "building $(2)@$(3)"; \
  GOBIN=$$tmp $(GO) install $(2)@$(3); \
  mv $$tmp/$$(basename $(2)) $(1); rm -rf $$tmp
endef
