// kubelet for the end-to-end cluster (scripts/e2e.sh): the pinned release's own command, with the
// same side-effect imports as its cmd/kubelet, so it stages and publishes CSI volumes exactly as a
// released kubelet does.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand()))
}
