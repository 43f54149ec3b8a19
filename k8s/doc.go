// Package k8s holds Code Bank's Kubernetes manifests (base/, overlays/dev, overlays/prod: see
// docs/operations.md) and the Go around them: Generate writes the manifests that follow from
// the code (the KafkaTopics and KafkaUsers of the topology, the PrometheusRule and Grafana
// dashboards of monitoring/), and Render builds an overlay as `kubectl apply -k` would. The
// tests render every overlay and check every object strictly and offline.
//
// Its main types are File (a generated manifest) and Object (a rendered one).
package k8s

//go:generate go run ./gen
