package grpcgateway

import (
	"testing"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// TestEventsKeepPublicNumbers: every value of the stored records' enums means what the public
// enum of its number says, so the casts of public.go hold.
func TestEventsKeepPublicNumbers(t *testing.T) {
	for _, pair := range []struct {
		events, public map[int32]string
	}{
		{eventsv1.CardStatus_name, codebankv1.CardStatus_name},
		{eventsv1.PaymentStatus_name, codebankv1.PaymentStatus_name},
		{eventsv1.RejectReason_name, codebankv1.RejectReason_name},
	} {
		for n, name := range pair.events {
			if pair.public[n] != name {
				t.Errorf("stored value %d is %s, the public one %q", n, name, pair.public[n])
			}
		}
	}
}
