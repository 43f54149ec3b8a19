package statements

import (
	"context"
	"fmt"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/stream"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// Reader reads statements from a view of the statement lines
// (processors.Topology.StatementLines). Every replica holding a view answers for every card.
type Reader struct {
	view *stream.View
}

// NewReader returns a Reader over a view of processors.Topology.StatementLines.
func NewReader(view *stream.View) *Reader { return &Reader{view: view} }

// Ready reports whether the view has caught up with the lines once.
func (r *Reader) Ready() bool { return r.view.Ready() }

// Await calls check until it reports done or fails, again each time the statements change,
// until ctx ends (stream.View.Await).
func (r *Reader) Await(ctx context.Context, check func() (bool, error)) error {
	return r.view.Await(ctx, check)
}

// Months returns the months of a card's statement with their counts and totals, oldest first;
// none for a card with no purchases, an error wrapping ErrUnreadable when a line does not
// decode.
func (r *Reader) Months(token string) ([]*eventsv1.MonthTotal, error) {
	var s Summaries
	start, limit := CardRange(token)
	if err := r.scan(start, limit, func(key string, line *eventsv1.StatementLine) bool {
		if _, at, err := ParseLineKey(key); err == nil {
			s.Add(at, line)
		}
		return true
	}); err != nil {
		return nil, err
	}
	return s.Months(), nil
}

// Lines returns up to n lines of a card's month, oldest first, from the line at index from on.
func (r *Reader) Lines(token, month string, from, n int64) ([]*eventsv1.StatementLine, error) {
	start, limit, err := MonthRange(token, month)
	if err != nil {
		return nil, err
	}
	var lines []*eventsv1.StatementLine
	i := int64(0)
	err = r.scan(start, limit, func(_ string, line *eventsv1.StatementLine) bool {
		if i >= from {
			lines = append(lines, line)
		}
		i++
		return int64(len(lines)) < n
	})
	return lines, err
}

// scan calls fn with each line of the key range [start, limit), in key order, until it returns
// false.
func (r *Reader) scan(start, limit string, fn func(key string, line *eventsv1.StatementLine) bool) error {
	err := r.view.Range(start, limit, func(key string, v any) (bool, error) {
		switch v := v.(type) {
		case *eventsv1.StatementLine:
			return fn(key, v), nil
		case *codecs.Undecodable:
			return false, fmt.Errorf("%w: %w", ErrUnreadable, v)
		default:
			return false, fmt.Errorf("%w: value of type %T", ErrUnreadable, v)
		}
	})
	if err != nil {
		return fmt.Errorf("read statement: %w", err)
	}
	return nil
}
