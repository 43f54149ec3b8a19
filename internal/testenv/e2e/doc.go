// Package e2e tests the whole bank on real servers, as its users meet it: a Kafka broker, an
// OpenSearch node and a Kafka Connect worker started by TestMain; the authorizer, statements,
// ingress, the store's orders and the dashboard's feed running in the test's process, and, for
// the faults that kill processes, the codebank binary itself. Each test checks its books with
// the audit (internal/audit) at the end.
//
// It has no code of its own besides this comment: everything is in its tests.
package e2e
