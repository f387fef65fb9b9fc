// kube-scheduler for the end-to-end cluster (scripts/e2e.sh): the pinned release's own command,
// whose volume binding plugin is what WaitForFirstConsumer and CSIStorageCapacity are tested
// through.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	os.Exit(cli.Run(app.NewSchedulerCommand()))
}
