//go:build tools

// Keeps helm's main package in this module's graph for `go mod tidy`; never compiled.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
