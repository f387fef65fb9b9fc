//go:build tools

// Keeps the sidecars' main packages in this module's graph for `go mod tidy`; never compiled.
package tools

import (
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter"
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller"
)
