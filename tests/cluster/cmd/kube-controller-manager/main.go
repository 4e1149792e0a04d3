// Command kube-controller-manager is the upstream Kubernetes controller
// manager (garbage collector, namespace deletion, ...), built from the
// k8s.io/kubernetes module pinned in ../../go.mod. Not part of the default
// build; see build.sh.
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones must not depend on the host's zoneinfo

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // enables --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics on /metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // build-info metric
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
