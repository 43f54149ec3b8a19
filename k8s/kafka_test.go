package k8s

import (
	"slices"
	"strings"
	"testing"

	"github.com/codebank/codebank/internal/stream"
)

// TestKafkaACLs checks the clients' access (Deployment.Clients, from which users.yaml is
// generated) against the topology: every consumer of the topology runs somewhere and can read
// its inputs and write its dead letters; each topic is written only by those that own it (the
// store's user never writes the bank's requests); every topic is read and written by someone;
// no ACL names a topic or group that does not exist.
func TestKafkaACLs(t *testing.T) {
	env, err := ReadEnv(EnvFile[len("k8s/"):])
	if err != nil {
		t.Fatal(err)
	}
	d, err := DeploymentOf(env)
	if err != nil {
		t.Fatal(err)
	}
	b, s := d.Bank, d.Store()
	topics := map[string]stream.Topic{}
	for _, topic := range d.Topics() {
		topics[topic.Name] = topic
	}
	groups := []string{string(b.AuthorizerGroup()), string(b.StatementsGroup()), string(s.Group()), ConnectGroup, "connect-" + d.ConnectorName()}

	users := d.Users()
	for _, u := range users {
		for _, a := range u.ACLs {
			switch {
			case a.Type == "topic" && a.PatternType == "literal":
				if _, ok := topics[a.Name]; !ok {
					t.Errorf("%s: ACL on topic %s, which is no topic of the deployment", u.Name, a.Name)
				}
			case a.Type == "group" && a.PatternType == "literal":
				if !slices.Contains(groups, a.Name) {
					t.Errorf("%s: ACL on group %s, which is no group of the deployment", u.Name, a.Name)
				}
			case a.PatternType == "prefix":
				// A prefix names the generations of one of the authorizer's topics or its group,
				// and nothing else of the deployment.
				names := groups
				if a.Type == "topic" {
					names = nil
					for n := range topics {
						names = append(names, n)
					}
				}
				var matched []string
				for _, n := range names {
					if strings.HasPrefix(n, a.Name) {
						matched = append(matched, n)
					}
				}
				if len(matched) != 1 || d.Generational()[matched[0]] != a.Name {
					t.Errorf("%s: ACL on the %s prefix %s matches %v, want one of the authorizer's, by generation", u.Name, a.Type, a.Name, matched)
				}
			default:
				t.Errorf("%s: ACL %+v", u.Name, a)
			}
		}
	}
	// can reports whether user may do op on the topic or group name, by a literal or a prefix.
	can := func(user, typ, name, op string) bool {
		for _, u := range users {
			if u.Name != user {
				continue
			}
			for _, a := range u.ACLs {
				if a.Type == typ && slices.Contains(a.Operations, op) &&
					(a.PatternType == "literal" && a.Name == name || a.PatternType == "prefix" && strings.HasPrefix(name, a.Name)) {
					return true
				}
			}
		}
		return false
	}
	whoMay := func(typ, name, op string) []string {
		var out []string
		for _, u := range users {
			if can(u.Name, typ, name, op) {
				out = append(out, u.Name)
			}
		}
		return out
	}
	// The next generation's topics and group are covered as the first's.
	next := b.At(2, b.Partitions)
	for i, topic := range b.AuthorizerTopics() {
		for _, op := range []string{"Read", "Write", "Describe"} {
			if got, want := whoMay("topic", next.AuthorizerTopics()[i].Name, op), whoMay("topic", topic.Name, op); !slices.Equal(got, want) {
				t.Errorf("%s of %s: %v, of %s: %v: want the same after a move", op, next.AuthorizerTopics()[i].Name, got, topic.Name, want)
			}
		}
	}
	if !can("kafka-authorizer", "group", string(next.AuthorizerGroup()), "Read") {
		t.Errorf("kafka-authorizer may not consume in %s, the group of the next generation", next.AuthorizerGroup())
	}

	// Every consumer runs in some client that reads its inputs and writes its dead letters.
	for _, c := range append(b.Consumers(), s.Consumers()...) {
		ran := false
		for _, cl := range d.Clients() {
			if !slices.Contains(cl.Consumers, c.Name) {
				continue
			}
			ran = true
			for _, in := range c.Inputs {
				if !can(cl.Name, "topic", in.Topic.Name, "Read") || !can(cl.Name, "topic", in.DeadLetters.Name, "Write") {
					t.Errorf("%s runs consumer %s but may not read %s or write %s", cl.Name, c.Name, in.Topic.Name, in.DeadLetters.Name)
				}
			}
		}
		if !ran {
			t.Errorf("consumer %s runs in no client", c.Name)
		}
	}

	// Who writes what: exactly these, and nobody else.
	writers := map[string][]string{
		// The authorizer forwards the previous generation's inputs into the live one's.
		b.PaymentRequests().Name: {"kafka-ingress", "kafka-authorizer"},
		b.CardCommands().Name:    {"kafka-ingress", "kafka-authorizer", "kafka-statements"},
		// Written by `codebank partitions` only, with an operator's user (docs/operations.md).
		b.Generations().Name:     {"kafka-partitions"},
		b.AuthorizerTable().Name: {"kafka-authorizer", "kafka-partitions"}, // a move copies the table
		b.Replies().Name:         {"kafka-authorizer"},
		b.Results().Name:         {"kafka-authorizer"},
		b.StatementLines().Name:  {"kafka-statements"},
		s.Events().Name:          {"kafka-web"},
		s.Table().Name:           {"kafka-web"},
		ConnectConfigsTopic:      {"kafka-connect"},
		ConnectOffsetsTopic:      {"kafka-connect"},
		ConnectStatusTopic:       {"kafka-connect"},
	}
	for name := range topics {
		got := whoMay("topic", name, "Write")
		want, ok := writers[name]
		if !ok && strings.HasSuffix(name, ".dlq") || name == b.ResultDeadLetters().Name {
			if len(got) == 0 {
				t.Errorf("dead-letter topic %s: nobody may write it", name)
			}
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("topic %s: written by %v, want %v", name, got, want)
		}
		if len(whoMay("topic", name, "Read")) == 0 {
			t.Errorf("topic %s: nobody may read it", name)
		}
	}
	// The store is a client of the bank like any checkout: it reaches the bank over gRPC only.
	for _, name := range []string{b.PaymentRequests().Name, b.CardCommands().Name, b.Replies().Name, b.Results().Name, b.AuthorizerTable().Name} {
		if can("kafka-web", "topic", name, "Write") {
			t.Errorf("kafka-web may write %s", name)
		}
	}
	// Only `codebank partitions` creates or deletes topics, and only the authorizer's.
	for name := range topics {
		for _, op := range []string{"Create", "Delete"} {
			got := whoMay("topic", name, op)
			_, generational := d.Generational()[name]
			if want := generational; len(got) > 0 != want || want && !slices.Equal(got, []string{"kafka-partitions"}) {
				t.Errorf("%s %s: %v", op, name, got)
			}
		}
	}

	// Groups: consumed by their own client only.
	for group, user := range map[string]string{string(b.AuthorizerGroup()): "kafka-authorizer", string(b.StatementsGroup()): "kafka-statements",
		string(s.Group()): "kafka-web", ConnectGroup: "kafka-connect", "connect-" + d.ConnectorName(): "kafka-connect"} {
		if got := whoMay("group", group, "Read"); !slices.Equal(got, []string{user}) {
			t.Errorf("group %s: consumed by %v, want [%s]", group, got, user)
		}
	}
	// Every client waits for the topics of the deployment: it may describe them all.
	for _, cl := range []string{"kafka-ingress", "kafka-authorizer", "kafka-statements", "kafka-web", "kafka-setup", "kafka-partitions"} {
		for _, topic := range append(b.All(), next.All()...) {
			if !can(cl, "topic", topic.Name, "Describe") && !can(cl, "topic", topic.Name, "Read") && !can(cl, "topic", topic.Name, "Write") {
				t.Errorf("%s may not describe %s, which it waits for", cl, topic.Name)
			}
		}
		if !can(cl, "topic", b.Generations().Name, "Read") {
			t.Errorf("%s may not read %s, which it follows", cl, b.Generations().Name)
		}
	}
}
