package generations

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
)

// Plan is a move between generations.
type Plan struct {
	// From is the state before the move, To the state once live.
	From, To State
	// Create lists the topics the move creates (a new generation's); empty for a rollback.
	Create []stream.Topic
	// Copy is the table the accounts are copied from, Into the one they are copied into.
	Copy, Into stream.Topic
}

// Grow plans the move of a bank in state cur to a new generation with partitions partitions.
func Grow(base processors.Topology, cur State, partitions int) (Plan, error) {
	if cur.Switching {
		return Plan{}, fmt.Errorf("%w: to generation %d; run the command again once it is done", ErrSwitching, cur.To)
	}
	if partitions <= cur.Partitions {
		return Plan{}, fmt.Errorf("--to %d: generation %d has %d partitions already; partitions only grow (rollback goes back)", partitions, cur.Generation, cur.Partitions)
	}
	next := cur.last() + 1
	if cur.Previous > 0 {
		return Plan{}, fmt.Errorf("generation %d is still kept for rollback: run codebank partitions cleanup first", cur.Previous)
	}
	to := base.At(next, partitions)
	return Plan{From: cur, To: State{Generation: next, Partitions: partitions, Previous: cur.Generation, PreviousPartitions: cur.Partitions, Last: next},
		Create: to.AuthorizerTopics(), Copy: cur.Live(base).AuthorizerTable(), Into: to.AuthorizerTable()}, nil
}

// Rollback plans the move of a bank in state cur back to its previous generation.
func Rollback(base processors.Topology, cur State) (Plan, error) {
	if cur.Switching {
		return Plan{}, fmt.Errorf("%w: to generation %d; run the command again once it is done", ErrSwitching, cur.To)
	}
	prev, ok := cur.Prev(base)
	if !ok {
		return Plan{}, errors.New("no previous generation to roll back to")
	}
	return Plan{From: cur, To: State{Generation: cur.Previous, Partitions: cur.PreviousPartitions, Previous: cur.Generation, PreviousPartitions: cur.Partitions, Last: cur.last()},
		Copy: cur.Live(base).AuthorizerTable(), Into: prev.AuthorizerTable()}, nil
}

// Resume plans the end of a move that was recorded as under way (State.Switching) and did not
// finish, the command that began it having stopped: the same move, taken up again. The copy is
// made again whole; the old generation decides nothing while a move is under way, so it is the
// same.
func Resume(base processors.Topology, cur State) (Plan, error) {
	if !cur.Switching {
		return Plan{}, errors.New("no move under way")
	}
	from := cur
	from.Switching, from.To, from.ToPartitions = false, 0, 0
	to := base.At(cur.To, cur.ToPartitions)
	plan := Plan{From: from, To: State{Generation: cur.To, Partitions: cur.ToPartitions, Previous: cur.Generation, PreviousPartitions: cur.Partitions, Last: cur.last()},
		Copy: from.Live(base).AuthorizerTable(), Into: to.AuthorizerTable()}
	if cur.To != cur.Previous {
		plan.Create = to.AuthorizerTopics() // a grow: its topics may not all exist yet
	}
	return plan, nil
}

// Describe writes what the plan does.
func (p Plan) Describe(w io.Writer) {
	fmt.Fprintf(w, "now:   %s\n", p.From)
	for _, t := range p.Create {
		fmt.Fprintf(w, "create %-44s %3d partitions\n", t.Name, t.Partitions)
	}
	fmt.Fprintf(w, "pause  authorizations (calls wait) while every account of %s is copied into %s\n", p.Copy.Name, p.Into.Name)
	fmt.Fprintf(w, "then:  %s\n", p.To)
}

// Report is what a move did.
type Report struct {
	// Records is how many table records were copied.
	Records int
	// Stopped is how long the old generation's authorizers took to stop, Copied how long the
	// copy took, and Paused the whole time nothing was decided, from the switch recorded to
	// the new generation's group running.
	Stopped, Copied, Paused time.Duration
}

// Move carries out plan: see the package doc. It is safe to run again after a failure: a move
// recorded as under way is taken up where it stopped.
//
// With strimzi set, the new generation's topics are not created: their KafkaTopic manifests
// are written for people to apply, and Move waits (up to ten minutes) for the topic operator to
// create them.
func Move(ctx context.Context, kc kafkaconf.Config, base processors.Topology, plan Plan, strimzi *Strimzi, log io.Writer) (Report, error) {
	var rep Report
	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.Sarama())
	if err != nil {
		return rep, err
	}
	defer admin.Close()
	switch {
	case len(plan.Create) > 0 && strimzi != nil:
		path, err := strimzi.write(plan.To.Generation, plan.Create)
		if err != nil {
			return rep, err
		}
		fmt.Fprintf(log, "wrote the KafkaTopics of generation %d to %s; apply them:\n  %s apply -f %s\n", plan.To.Generation, path, strimzi.kubectl(), path)
		if strimzi.Autoscaler != "" {
			fmt.Fprintf(log, "and, once the move is done, point the authorizers' autoscaler at it (up to the new partition count):\n  %s\n",
				strimzi.autoscalerPatch(plan.To.Live(base), plan.To.Partitions))
		}
		fmt.Fprintln(log, "waiting for the topic operator to create them...")
		if err := waitCreated(ctx, admin, plan.Create); err != nil {
			return rep, err
		}
		fmt.Fprintf(log, "the topics of generation %d exist\n", plan.To.Generation)
	case len(plan.Create) > 0:
		if err := stream.CreateTopics(ctx, admin, base.Replication, plan.Create); err != nil {
			return rep, err
		}
		fmt.Fprintf(log, "created the topics of generation %d\n", plan.To.Generation)
	}
	switching := plan.From
	switching.Switching, switching.To, switching.ToPartitions = true, plan.To.Generation, plan.To.Partitions
	start := time.Now()
	if err := Write(kc, base, switching); err != nil {
		return rep, fmt.Errorf("record the switch: %w", err)
	}
	fmt.Fprintf(log, "switch recorded: authorizers stop\n")
	groups := []string{string(plan.From.Live(base).AuthorizerGroup())}
	if prev, ok := plan.From.Prev(base); ok {
		groups = append(groups, string(prev.AuthorizerGroup()))
	}
	if err := waitGroups(ctx, admin, groups, func(members int) bool { return members == 0 }); err != nil {
		return rep, fmt.Errorf("wait for the authorizers to stop: %w", err)
	}
	rep.Stopped = time.Since(start)
	fmt.Fprintf(log, "authorizers of generation %d stopped after %v\n", plan.From.Generation, rep.Stopped.Round(time.Millisecond))
	copyStart := time.Now()
	if rep.Records, err = copyTable(ctx, kc, plan.Copy, plan.Into); err != nil {
		return rep, fmt.Errorf("copy %s into %s: %w", plan.Copy.Name, plan.Into.Name, err)
	}
	rep.Copied = time.Since(copyStart)
	fmt.Fprintf(log, "copied %d records of %s into %s in %v\n", rep.Records, plan.Copy.Name, plan.Into.Name, rep.Copied.Round(time.Millisecond))
	if err := Write(kc, base, plan.To); err != nil {
		return rep, fmt.Errorf("record generation %d live: %w", plan.To.Generation, err)
	}
	if err := waitGroups(ctx, admin, []string{string(plan.To.Live(base).AuthorizerGroup())}, func(members int) bool { return members > 0 }); err != nil {
		return rep, fmt.Errorf("wait for the authorizers of generation %d: %w", plan.To.Generation, err)
	}
	rep.Paused = time.Since(start)
	fmt.Fprintf(log, "generation %d live; authorizations paused for %v\n", plan.To.Generation, rep.Paused.Round(time.Millisecond))
	return rep, nil
}

// Cleanup deletes the previous generation of a bank in state cur, once the authorizers have
// forwarded everything left in its inputs, and records that there is none.
//
// With strimzi set, the topics are not deleted by Cleanup: it asks for their KafkaTopics to be
// deleted, and waits (up to ten minutes) for the topic operator to delete them.
func Cleanup(ctx context.Context, kc kafkaconf.Config, base processors.Topology, cur State, strimzi *Strimzi, log io.Writer) error {
	prev, ok := cur.Prev(base)
	if cur.Switching {
		return fmt.Errorf("%w: to generation %d", ErrSwitching, cur.To)
	}
	if !ok {
		return errors.New("no previous generation to delete")
	}
	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.Sarama())
	if err != nil {
		return err
	}
	defer admin.Close()
	group := string(prev.AuthorizerGroup())
	if err := waitForwarded(ctx, kc, admin, group, []string{prev.PaymentRequests().Name, prev.CardCommands().Name}); err != nil {
		return err
	}
	next := cur
	next.Previous, next.PreviousPartitions, next.Last = 0, 0, cur.last()
	if err := Write(kc, base, next); err != nil {
		return err
	}
	if err := waitGroups(ctx, admin, []string{group}, func(members int) bool { return members == 0 }); err != nil {
		return fmt.Errorf("wait for the forwarding to stop: %w", err)
	}
	within := time.Minute
	if strimzi != nil {
		fmt.Fprintf(log, "delete the KafkaTopics of generation %d:\n  %s delete kafkatopic -l codebank.io/generation=%d\nwaiting for the topic operator to delete them...\n",
			prev.Generation, strimzi.kubectl(), prev.Generation)
		within = 10 * time.Minute
	} else {
		for _, t := range prev.AuthorizerTopics() {
			if err := admin.DeleteTopic(t.Name); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				return fmt.Errorf("delete %s: %w", t.Name, err)
			}
			fmt.Fprintf(log, "deleted %s\n", t.Name)
		}
	}
	if err := waitDeleted(ctx, admin, prev.AuthorizerTopics(), within); err != nil {
		return err
	}
	if err := admin.DeleteConsumerGroup(group); err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
		return fmt.Errorf("delete group %s: %w", group, err)
	}
	fmt.Fprintf(log, "deleted group %s; %s\n", group, next)
	return nil
}

// waitCreated waits until every topic exists with its partition count, for up to ten
// minutes.
func waitCreated(ctx context.Context, admin sarama.ClusterAdmin, topics []stream.Topic) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		missing, err := stream.MissingTopics(admin, topics)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if errors.Is(err, stream.ErrPartitionMismatch) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v still missing after 10 minutes (%v)", missing, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// waitDeleted waits until the cluster no longer lists topics (deletion is asynchronous), for
// up to within.
func waitDeleted(ctx context.Context, admin sarama.ClusterAdmin, topics []stream.Topic, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		existing, err := admin.ListTopics()
		left := 0
		for _, t := range topics {
			if _, ok := existing[t.Name]; ok || err != nil {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d topics still listed %v after their deletion was asked for (%v)", left, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitGroups waits until every group's member count satisfies ok, for up to two minutes.
func waitGroups(ctx context.Context, admin sarama.ClusterAdmin, groups []string, ok func(members int) bool) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ds, err := admin.DescribeConsumerGroups(groups)
		done := err == nil && len(ds) == len(groups)
		for _, d := range ds {
			done = done && ok(len(d.Members))
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("groups %v not there after 2 minutes (%v)", groups, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitForwarded waits until group has committed every record of topics, for up to two
// minutes.
func waitForwarded(ctx context.Context, kc kafkaconf.Config, admin sarama.ClusterAdmin, group string, topics []string) error {
	client, err := sarama.NewClient(kc.Brokers, kc.Sarama())
	if err != nil {
		return err
	}
	defer client.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		left, err := behind(client, admin, group, topics)
		if err == nil && left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("group %s still has %d records to forward after 2 minutes (%v)", group, left, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func behind(client sarama.Client, admin sarama.ClusterAdmin, group string, topics []string) (int64, error) {
	committed, err := admin.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		return 0, err
	}
	var left int64
	for _, topic := range topics {
		parts, err := client.Partitions(topic)
		if err != nil {
			return 0, err
		}
		for _, p := range parts {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return 0, err
			}
			from, err := client.GetOffset(topic, p, sarama.OffsetOldest)
			if err != nil {
				return 0, err
			}
			if b := committed.GetBlock(topic, p); b != nil && b.Offset >= 0 {
				from = b.Offset
			}
			left += max(end-from, 0)
		}
	}
	return left, nil
}

// copyTable writes every record of the table from into the table into, key by key in order,
// partitioned as goka partitions; it returns the records copied. Each key's records keep
// their order (one source partition, one target partition, one request in flight), so its
// latest value in from is its latest in into; compaction drops the older ones later.
func copyTable(ctx context.Context, kc kafkaconf.Config, from, into stream.Topic) (int, error) {
	cfg := kc.Sarama()
	cfg.Producer.Partitioner = sarama.NewCustomHashPartitioner(goka.DefaultHasher())
	cfg.Producer.Return.Successes = true
	cfg.Producer.Flush.Frequency = 10 * time.Millisecond
	cfg.Producer.Flush.MaxMessages = 0
	client, err := sarama.NewClient(kc.Brokers, cfg)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return 0, err
	}
	defer consumer.Close()
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return 0, err
	}
	sent, acked := 0, make(chan struct{})
	go func() {
		for range producer.Successes() {
		}
		close(acked)
	}()
	errs := make(chan error, 1)
	go func() {
		var first error
		for e := range producer.Errors() {
			if first == nil {
				first = e.Err
			}
		}
		errs <- first
	}()
	parts, err := client.Partitions(from.Name)
	if err != nil {
		producer.Close()
		return 0, err
	}
	// Every partition at once, each in order: a key lives in one partition of from and goes
	// to one of into, so its records keep their order.
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		first = cmp.Or(first, err)
		mu.Unlock()
	}
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := copyPartition(ctx, client, consumer, producer, from.Name, into.Name, p)
			mu.Lock()
			sent += n
			mu.Unlock()
			if err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		producer.Close()
		return sent, first
	}
	producer.AsyncClose() // flushes, then closes Successes and Errors
	<-acked
	if err := <-errs; err != nil {
		return sent, err
	}
	return sent, nil
}

// copyPartition sends every record of one partition of from, up to its end when called, to
// into.
func copyPartition(ctx context.Context, client sarama.Client, consumer sarama.Consumer, producer sarama.AsyncProducer, from, into string, p int32) (int, error) {
	end, err := client.GetOffset(from, p, sarama.OffsetNewest)
	if err != nil {
		return 0, err
	}
	start, err := client.GetOffset(from, p, sarama.OffsetOldest)
	if err != nil || start >= end {
		return 0, err
	}
	pc, err := consumer.ConsumePartition(from, p, start)
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	sent := 0
	for {
		select {
		case m := <-pc.Messages():
			msg := &sarama.ProducerMessage{Topic: into, Key: sarama.ByteEncoder(m.Key)}
			if m.Value != nil {
				msg.Value = sarama.ByteEncoder(m.Value)
			}
			producer.Input() <- msg
			sent++
			if m.Offset+1 >= end {
				return sent, nil
			}
		case err := <-pc.Errors():
			return sent, err
		case <-ctx.Done():
			return sent, ctx.Err()
		}
	}
}
