// Package deploy holds maptrace's Kubernetes manifests (kubernetes/) and a
// Prometheus configuration that finds the agents (prometheus/); its tests
// decode the manifests strictly into the Kubernetes API's types, check the
// configuration with promtool, and run the agent with exactly the
// DaemonSet's capabilities. docs/deploy.md says how to use them.
package deploy
