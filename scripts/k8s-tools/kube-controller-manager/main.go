// kube-controller-manager for the end-to-end cluster (scripts/e2e.sh): the pinned release's own
// command (it binds PVs, expands PVCs and garbage-collects), with its cmd's side-effect imports.
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones, as the release binary links

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
