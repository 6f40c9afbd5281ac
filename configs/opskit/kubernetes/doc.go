// Package kubernetes holds the tests of the Kubernetes example in configs/kubernetes: they decode the
// manifests strictly into the Kubernetes API types (an unknown or misspelt field is an error) and check the
// invariants the service depends on against the Dockerfile and the configuration defaults.
package kubernetes
