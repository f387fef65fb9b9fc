// kube-apiserver for the tests that need a real API server (test/helpers/apiserver.ts). The
// server itself is the pinned k8s.io/kubernetes release's; this file only runs its command.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	// Side-effect imports the release's own binary also links: the JSON log format and the
	// client-go/version metrics, so flags such as --logging-format=json behave the same.
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
