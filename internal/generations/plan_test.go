package generations

import (
	"errors"
	"testing"

	"github.com/codebank/codebank/processors"
)

// TestPlans: grow makes a new generation and keeps the live one for rollback; rollback goes
// back, keeping the newer one; an interrupted move of either kind resumes to where it was
// going; and the moves that make no sense are refused.
func TestPlans(t *testing.T) {
	base := processors.Topology{Prefix: "p-", Partitions: 6}
	first := Initial(base)
	if first.Generation != 1 || first.Partitions != 6 || first.Live(base).PaymentRequests().Name != "p-payment-requests" {
		t.Fatalf("initial state %+v", first)
	}

	grow, err := Grow(base, first, 12)
	if err != nil {
		t.Fatal(err)
	}
	want := State{Generation: 2, Partitions: 12, Previous: 1, PreviousPartitions: 6, Last: 2}
	if grow.To != want || grow.Copy.Name != "p-authorizer-table" || grow.Into.Name != "p-authorizer-g2-table" || len(grow.Create) != 5 {
		t.Errorf("grow plan: to %+v, copy %s into %s, %d topics", grow.To, grow.Copy.Name, grow.Into.Name, len(grow.Create))
	}
	for _, topic := range grow.Create {
		if topic.Name == "p-payment-requests-g2" && topic.Partitions != 12 {
			t.Errorf("%s: %d partitions", topic.Name, topic.Partitions)
		}
	}
	if _, err := Grow(base, grow.To, 24); err == nil {
		t.Error("grow with a previous generation still kept: allowed, want cleanup first")
	}
	if _, err := Grow(base, first, 6); err == nil {
		t.Error("grow to the same partition count: allowed")
	}

	back, err := Rollback(base, grow.To)
	if err != nil {
		t.Fatal(err)
	}
	if want := (State{Generation: 1, Partitions: 6, Previous: 2, PreviousPartitions: 12, Last: 2}); back.To != want ||
		back.Copy.Name != "p-authorizer-g2-table" || back.Into.Name != "p-authorizer-table" || len(back.Create) != 0 {
		t.Errorf("rollback plan: to %+v, copy %s into %s, %d topics", back.To, back.Copy.Name, back.Into.Name, len(back.Create))
	}
	if _, err := Rollback(base, first); err == nil {
		t.Error("rollback without a previous generation: allowed")
	}

	// Interrupted after the switch was recorded: the same moves again.
	for name, p := range map[string]Plan{"grow": grow, "rollback": back} {
		switching := p.From
		switching.Switching, switching.To, switching.ToPartitions = true, p.To.Generation, p.To.Partitions
		if _, err := Grow(base, switching, 48); !errors.Is(err, ErrSwitching) {
			t.Errorf("%s under way: a new grow gives %v", name, err)
		}
		resumed, err := Resume(base, switching)
		if err != nil {
			t.Fatal(err)
		}
		if resumed.To != p.To || resumed.From != p.From || resumed.Copy.Name != p.Copy.Name || resumed.Into.Name != p.Into.Name || len(resumed.Create) != len(p.Create) {
			t.Errorf("%s resumed: %+v\nwant %+v", name, resumed, p)
		}
	}
	if _, err := Resume(base, first); err == nil {
		t.Error("resume with no move under way: allowed")
	}

	// After a rollback and the cleanup of generation 2, the next grow makes generation 3: a new
	// topic named like a deleted one would start its offsets again below the places accounts
	// remember.
	cleaned := back.To
	cleaned.Previous, cleaned.PreviousPartitions = 0, 0
	again, err := Grow(base, cleaned, 12)
	if err != nil {
		t.Fatal(err)
	}
	if again.To.Generation != 3 || again.Into.Name != "p-authorizer-g3-table" {
		t.Errorf("grow after rollback and cleanup: generation %d (%s), want 3", again.To.Generation, again.Into.Name)
	}
}
