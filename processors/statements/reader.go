package statements

import (
	"context"
	"fmt"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// Reader reads statements from a view of the statements table. Every replica holding a view
// answers for every card.
type Reader struct {
	view *processors.View
}

// NewReader returns a Reader over a view of processors.Topology.StatementsTable.
func NewReader(view *processors.View) *Reader { return &Reader{view: view} }

// Ready reports whether the view has caught up with the table once.
func (r *Reader) Ready() bool { return r.view.Ready() }

// Await calls check until it reports done or fails, again each time the statements change,
// until ctx ends (processors.View.Await).
func (r *Reader) Await(ctx context.Context, check func() (bool, error)) error {
	return r.view.Await(ctx, check)
}

// Card returns a card's statement state; empty for a card with no purchases, an error
// wrapping ErrUnreadable when the stored state does not decode.
func (r *Reader) Card(token string) (*eventsv1.StatementCard, error) {
	v, err := r.view.Get(token)
	if err != nil {
		return nil, fmt.Errorf("read statement state: %w", err)
	}
	return cardState(v)
}

// Lines returns up to n lines of a card's month from line number from on, stopping early at a
// line not placed yet.
func (r *Reader) Lines(token, month string, from, n int64) ([]*eventsv1.StatementLine, error) {
	var lines []*eventsv1.StatementLine
	for no := from; no < from+n; {
		v, err := r.view.Get(PageKey(token, month, no/PageSize))
		if err != nil {
			return nil, fmt.Errorf("read statement page: %w", err)
		}
		var page []*eventsv1.StatementLine
		switch e := v.(type) {
		case *eventsv1.StatementEntry:
			page = e.GetPage().GetLines()
		case *codecs.Undecodable:
			return nil, fmt.Errorf("read statement page: %w: %w", ErrUnreadable, e)
		}
		for slot := int(no % PageSize); slot < len(page) && no < from+n; slot++ {
			if page[slot].GetTransactionId() == "" { // not placed yet: a nil slot decodes as an empty line
				return lines, nil
			}
			lines = append(lines, page[slot])
			no++
		}
		if int(no%PageSize) != 0 && no < from+n {
			return lines, nil // the page ends before PageSize lines: nothing further is placed yet
		}
	}
	return lines, nil
}
