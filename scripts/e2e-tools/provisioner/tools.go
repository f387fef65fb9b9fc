//go:build tools

// Keeps the sidecar's main package in this module's graph for `go mod tidy`; never compiled.
package tools

import _ "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"
