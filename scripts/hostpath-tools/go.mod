// Wrapper module that builds kubernetes-csi's hostpathplugin (csi-driver-host-path v1.16.1), the
// comparison driver of the benchmarks (scripts/hostpath-tools.sh, scripts/bench.sh).
//
// Where the source comes from: the Go module proxy is asked first (go mod download). The proxy
// reachable in our sandboxes answers 403 for every version of
// github.com/kubernetes-csi/csi-driver-host-path while serving all its dependencies, so
// scripts/hostpath-tools.sh then takes the tag from a local clone of the repository if one is
// present (set HOSTPATH_SRC_GIT). The source is unpacked into .tools/hostpath-src (git-ignored)
// and never committed here; the build runs from a copy of this module in .tools/hostpath-mod
// whose replace points at it.
//
// The upstream module points the k8s.io staging modules at v0.32.0 through replace directives, which
// do not apply to a dependent module, so they are repeated here unchanged. The plugin's own
// command (package main, not importable) is built as a `tool` of this module:
//   go build -o OUT github.com/kubernetes-csi/csi-driver-host-path/cmd/hostpathplugin
// To move to another release: change the version, copy its replace lines below, and run
// `go mod tidy` against an unpacked source.
module tscsi.dev/hostpath-tools

go 1.24

tool github.com/kubernetes-csi/csi-driver-host-path/cmd/hostpathplugin

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/blang/semver/v4 v4.0.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/container-storage-interface/spec v1.11.0 // indirect
	github.com/fxamacker/cbor/v2 v2.7.0 // indirect
	github.com/go-logr/logr v1.4.2 // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/klauspost/compress v1.17.11 // indirect
	github.com/kubernetes-csi/csi-driver-host-path v1.16.1 // indirect
	github.com/kubernetes-csi/csi-lib-utils v0.20.0 // indirect
	github.com/moby/sys/mountinfo v0.7.2 // indirect
	github.com/moby/sys/userns v0.1.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pborman/uuid v1.2.1 // indirect
	github.com/prometheus/client_golang v1.20.5 // indirect
	github.com/prometheus/client_model v0.6.1 // indirect
	github.com/prometheus/common v0.61.0 // indirect
	github.com/prometheus/procfs v0.15.1 // indirect
	github.com/spf13/cobra v1.8.1 // indirect
	github.com/spf13/pflag v1.0.5 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	go.opentelemetry.io/otel v1.33.0 // indirect
	go.opentelemetry.io/otel/trace v1.33.0 // indirect
	golang.org/x/net v0.32.0 // indirect
	golang.org/x/sys v0.28.0 // indirect
	golang.org/x/text v0.21.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20241216192217-9240e9c98484 // indirect
	google.golang.org/grpc v1.69.0 // indirect
	google.golang.org/protobuf v1.36.0 // indirect
	gopkg.in/inf.v0 v0.9.1 // indirect
	k8s.io/apiextensions-apiserver v0.32.0 // indirect
	k8s.io/apimachinery v0.32.0 // indirect
	k8s.io/apiserver v0.32.0 // indirect
	k8s.io/client-go v0.32.0 // indirect
	k8s.io/component-base v0.32.0 // indirect
	k8s.io/controller-manager v0.32.0 // indirect
	k8s.io/klog/v2 v2.130.1 // indirect
	k8s.io/kubernetes v1.32.0 // indirect
	k8s.io/mount-utils v0.32.0 // indirect
	k8s.io/utils v0.0.0-20241210054802-24370beab758 // indirect
	sigs.k8s.io/yaml v1.4.0 // indirect
)

replace github.com/kubernetes-csi/csi-driver-host-path => ../hostpath-src

replace k8s.io/api => k8s.io/api v0.32.0

replace k8s.io/apiextensions-apiserver => k8s.io/apiextensions-apiserver v0.32.0

replace k8s.io/apimachinery => k8s.io/apimachinery v0.32.0

replace k8s.io/apiserver => k8s.io/apiserver v0.32.0

replace k8s.io/cli-runtime => k8s.io/cli-runtime v0.32.0

replace k8s.io/client-go => k8s.io/client-go v0.32.0

replace k8s.io/cloud-provider => k8s.io/cloud-provider v0.32.0

replace k8s.io/cluster-bootstrap => k8s.io/cluster-bootstrap v0.32.0

replace k8s.io/code-generator => k8s.io/code-generator v0.32.0

replace k8s.io/component-base => k8s.io/component-base v0.32.0

replace k8s.io/component-helpers => k8s.io/component-helpers v0.32.0

replace k8s.io/controller-manager => k8s.io/controller-manager v0.32.0

replace k8s.io/cri-api => k8s.io/cri-api v0.32.0

replace k8s.io/cri-client => k8s.io/cri-client v0.32.0

replace k8s.io/csi-translation-lib => k8s.io/csi-translation-lib v0.32.0

replace k8s.io/dynamic-resource-allocation => k8s.io/dynamic-resource-allocation v0.32.0

replace k8s.io/externaljwt => k8s.io/externaljwt v0.32.0

replace k8s.io/kms => k8s.io/kms v0.32.0

replace k8s.io/kube-aggregator => k8s.io/kube-aggregator v0.32.0

replace k8s.io/kube-controller-manager => k8s.io/kube-controller-manager v0.32.0

replace k8s.io/kube-proxy => k8s.io/kube-proxy v0.32.0

replace k8s.io/kube-scheduler => k8s.io/kube-scheduler v0.32.0

replace k8s.io/kubectl => k8s.io/kubectl v0.32.0

replace k8s.io/kubelet => k8s.io/kubelet v0.32.0

replace k8s.io/legacy-cloud-providers => k8s.io/legacy-cloud-providers v0.32.0

replace k8s.io/metrics => k8s.io/metrics v0.32.0

replace k8s.io/mount-utils => k8s.io/mount-utils v0.32.0

replace k8s.io/pod-security-admission => k8s.io/pod-security-admission v0.32.0

replace k8s.io/sample-apiserver => k8s.io/sample-apiserver v0.32.0

replace k8s.io/endpointslice => k8s.io/endpointslice v0.32.0
