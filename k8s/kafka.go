package k8s

import (
	"slices"
	"strconv"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/web/store"
)

// MinInsyncReplicas is min.insync.replicas of every topic: with replication 3 and acks=all a
// record is acknowledged once two brokers hold it, and one broker may be lost.
const MinInsyncReplicas = 2

// Kafka Connect's cluster (base/codebank/kafka/connect.yaml): its group and internal topics.
const (
	ConnectGroup         = "codebank-connect"
	ConnectConfigsTopic  = "codebank-connect-configs"
	ConnectOffsetsTopic  = "codebank-connect-offsets"
	ConnectStatusTopic   = "codebank-connect-status"
	connectConfigsParts  = 1  // Connect requires exactly one
	connectOffsetsParts  = 25 // Connect's defaults (offset.storage.partitions,
	connectStatusParts   = 5  // status.storage.partitions)
	connectSegmentMillis = "3600000"
)

// Store is the topology of the Code Store's topics (the web role).
func (d Deployment) Store() store.Topology {
	return store.Topology{Prefix: d.Bank.Prefix, Partitions: d.Bank.Partitions, Replication: d.Replication}
}

// ConnectorName is the sink connector's name; its consumer group is "connect-" + it.
func (d Deployment) ConnectorName() string { return analytics.ConnectorName(d.Bank) }

// Topics returns every topic of the deployment: the bank's, the store's and Kafka Connect's,
// each with min.insync.replicas added to its configuration.
func (d Deployment) Topics() []stream.Topic {
	compact := func(name string, parts int) stream.Topic {
		return stream.Topic{Name: name, Key: "Kafka Connect's own", Partitions: parts,
			Config: map[string]string{"cleanup.policy": "compact", "segment.ms": connectSegmentMillis}}
	}
	all := append(d.Bank.All(), d.Store().All()...)
	all = append(all, compact(ConnectConfigsTopic, connectConfigsParts), compact(ConnectOffsetsTopic, connectOffsetsParts),
		compact(ConnectStatusTopic, connectStatusParts))
	out := make([]stream.Topic, len(all))
	for i, t := range all {
		cfg := map[string]string{"min.insync.replicas": strconv.Itoa(MinInsyncReplicas)}
		for k, v := range t.Config {
			cfg[k] = v
		}
		t.Config = cfg
		out[i] = t
	}
	return out
}

// Client is what one client of Kafka does with it: the topics it reads and writes, the groups
// it consumes in, and the consumers (stream.Consumer) it runs, whose inputs it reads and
// whose dead-letter topics it writes.
type Client struct {
	// Name is the Kafka user: kafka-<role>.
	Name string
	// Doc says who uses it.
	Doc string
	// Consumers are the consumers the client runs (by stream.Consumer name).
	Consumers []string
	// Groups are the consumer groups it commits offsets in (Read).
	Groups []string
	// DescribeGroups are groups it only reads the offsets of (lag).
	DescribeGroups []string
	// Reads and Writes are topics beyond its consumers' inputs and dead letters: tables,
	// outputs, emitters.
	Reads, Writes []string
	// Describes are topics it only looks at (its lag, or the topics it waits for).
	Describes []string
	// Manages are topics it creates and deletes, ManagesGroups groups it deletes.
	Manages, ManagesGroups []string
}

// Clients returns every client of the deployment's Kafka cluster, with what it uses. It is the
// one place that says who reads and writes what; Users turns it into ACLs, and the tests check
// it against the topology (every consumer's inputs read, every dead-letter topic written, the
// store never writing the bank's requests).
func (d Deployment) Clients() []Client {
	b, s := d.Bank, d.Store()
	all := names(d.Bank.All())
	withStore := append(slices.Clone(all), names(s.All())...)
	return []Client{
		{Name: "kafka-ingress", Doc: "codebank ingress: writes payment requests and card commands, reads its partition of the replies.",
			Consumers: []string{processors.ConsumerIngress},
			Reads:     []string{b.Generations().Name},
			Writes:    []string{b.PaymentRequests().Name, b.CardCommands().Name},
			Describes: all},
		{Name: "kafka-authorizer", Doc: "codebank authorizer: the authorizer group, its table, replies and results; after a move between generations it forwards the previous generation's inputs into the live one's.",
			Consumers: []string{processors.ConsumerAuthorizer},
			Groups:    []string{string(b.AuthorizerGroup())},
			Reads:     []string{b.AuthorizerTable().Name, b.Generations().Name},
			Writes:    []string{b.AuthorizerTable().Name, b.Replies().Name, b.Results().Name, b.PaymentRequests().Name, b.CardCommands().Name},
			Describes: all},
		{Name: "kafka-statements", Doc: "codebank statements: the statements group, the statement lines it writes and its view reads, and card commands (GetCard) with their replies; the search sink's group's offsets (its lag, CODEBANK_SINK_LAG).",
			Consumers:      []string{processors.ConsumerStatements, processors.ConsumerIngress},
			Groups:         []string{string(b.StatementsGroup())},
			DescribeGroups: []string{"connect-" + d.ConnectorName()},
			Reads:          []string{b.StatementLines().Name, b.Generations().Name},
			Writes:         []string{b.StatementLines().Name, b.CardCommands().Name},
			Describes:      all},
		{Name: "kafka-web", Doc: "codebank web: the store's orders (group, events, table) and the dashboard's feed of results; never the bank's requests.",
			Consumers: []string{store.ConsumerOrders, processors.ConsumerDashboard},
			Groups:    []string{string(s.Group())},
			Reads:     []string{s.Table().Name, b.Generations().Name},
			Writes:    []string{s.Events().Name, s.Table().Name},
			Describes: withStore},
		{Name: "kafka-setup", Doc: "codebank setup (the Job): checks that every topic exists with its partition count, at the live generation.",
			Reads:     []string{b.Generations().Name},
			Describes: withStore},
		{Name: "kafka-connect", Doc: "Kafka Connect: its group and internal topics, and the results sink (reads results, writes its dead letters).",
			Consumers: []string{processors.ConsumerConnect},
			Groups:    []string{ConnectGroup, "connect-" + d.ConnectorName()},
			Reads:     []string{ConnectConfigsTopic, ConnectOffsetsTopic, ConnectStatusTopic},
			Writes:    []string{ConnectConfigsTopic, ConnectOffsetsTopic, ConnectStatusTopic}},
		{Name: "kafka-partitions", Doc: "codebank partitions (grow, rollback, cleanup), run by an operator as a Job: creates and deletes generations of the authorizer's topics, copies its table, records the live generation.",
			Reads:         []string{b.Generations().Name, b.AuthorizerTable().Name},
			Writes:        []string{b.Generations().Name, b.AuthorizerTable().Name},
			Describes:     all,
			Manages:       names(b.AuthorizerTopics()),
			ManagesGroups: []string{string(b.AuthorizerGroup())}},
		{Name: "kafka-keda", Doc: "KEDA: reads the lag of the authorizer and statements groups to scale them.",
			DescribeGroups: []string{string(b.AuthorizerGroup()), string(b.StatementsGroup())},
			Describes:      []string{b.PaymentRequests().Name, b.CardCommands().Name, b.Results().Name}},
	}
}

func names(topics []stream.Topic) []string {
	out := make([]string, len(topics))
	for i, t := range topics {
		out[i] = t.Name
	}
	return out
}

// ACL is one rule of a KafkaUser: operations on a resource (type topic or group) by its
// name, literal or a prefix (PatternType "literal" or "prefix").
type ACL struct {
	Type, Name, PatternType string
	Operations              []string
}

// Generational returns, for each topic and group of the authorizer that moves between
// generations (processors.Topology.Generation: payment-requests, payment-requests-g2, ...),
// the prefix that names all its generations: the ACLs name those by prefix, so that the roles
// keep their access after `codebank partitions grow`.
func (d Deployment) Generational() map[string]string {
	out := map[string]string{}
	next := d.Bank.At(2, d.Bank.Partitions)
	common := func(a, b string) string {
		n := 0
		for n < len(a) && n < len(b) && a[n] == b[n] {
			n++
		}
		return a[:n]
	}
	first, second := d.Bank.AuthorizerTopics(), next.AuthorizerTopics()
	for i := range first {
		out[first[i].Name] = common(first[i].Name, second[i].Name)
	}
	out[string(d.Bank.AuthorizerGroup())] = common(string(d.Bank.AuthorizerGroup()), string(next.AuthorizerGroup()))
	return out
}

// User is a KafkaUser: a client's name and ACLs.
type User struct {
	Name, Doc string
	ACLs      []ACL
}

// Users returns the KafkaUser of every client: Read on what it reads (its consumers' inputs
// included), Write on what it writes (its consumers' dead-letter topics included), Describe
// and DescribeConfigs on every topic it names, Read on its groups and Describe on the groups
// whose lag it reads. The authorizer's topics and group are named by prefix (Generational).
func (d Deployment) Users() []User {
	consumers := map[string]stream.Consumer{}
	for _, c := range append(d.Bank.Consumers(), d.Store().Consumers()...) {
		consumers[c.Name] = c
	}
	gens := d.Generational()
	resource := func(typ, name string) ACL {
		if p, ok := gens[name]; ok {
			return ACL{Type: typ, Name: p, PatternType: "prefix"}
		}
		return ACL{Type: typ, Name: name, PatternType: "literal"}
	}
	var out []User
	for _, c := range d.Clients() {
		var acls []ACL
		add := func(r ACL, op ...string) {
			i := slices.IndexFunc(acls, func(a ACL) bool { return a.Type == r.Type && a.Name == r.Name && a.PatternType == r.PatternType })
			if i < 0 {
				acls = append(acls, r)
				i = len(acls) - 1
			}
			for _, o := range op {
				if !slices.Contains(acls[i].Operations, o) {
					acls[i].Operations = append(acls[i].Operations, o)
				}
			}
		}
		for _, name := range c.Consumers {
			for _, in := range consumers[name].Inputs {
				add(resource("topic", in.Topic.Name), "Read")
				add(resource("topic", in.DeadLetters.Name), "Write")
			}
		}
		grant := func(typ string, names []string, ops ...string) {
			for _, n := range names {
				add(resource(typ, n), ops...)
			}
		}
		grant("topic", c.Reads, "Read")
		grant("topic", c.Writes, "Write")
		grant("topic", c.Describes, "Describe")
		grant("topic", c.Manages, "Create", "Delete")
		for i, a := range acls {
			o := a.Operations
			// Read and Write imply Describe; DescribeConfigs lets the client check a topic's
			// settings (goka checks a table's cleanup.policy).
			if slices.Contains(o, "Read") || slices.Contains(o, "Write") {
				o = slices.DeleteFunc(o, func(s string) bool { return s == "Describe" })
			}
			o = append(o, "DescribeConfigs")
			slices.SortFunc(o, compareOps)
			acls[i].Operations = o
		}
		grant("group", c.Groups, "Read")
		grant("group", c.DescribeGroups, "Describe")
		grant("group", c.ManagesGroups, "Describe", "Delete")
		out = append(out, User{Name: c.Name, Doc: c.Doc, ACLs: acls})
	}
	return out
}

// compareOps orders operations as Strimzi's documentation lists them.
func compareOps(a, b string) int {
	order := []string{"Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction", "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All"}
	return slices.Index(order, a) - slices.Index(order, b)
}
