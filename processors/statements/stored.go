package statements

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/codecs"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// stored is a value of the statements table as the group reads it: its bytes, decoded only
// when needed. A page takes a line in order by appending the line's encoding to its bytes:
// protobuf merges a message encoded twice by concatenating its repeated fields, so the result
// is the page with one more line, in the table's format (eventsv1.StatementEntry), without
// decoding and encoding the page's other lines for every purchase.
type stored struct{ raw []byte }

// storedCodec is the codec of the statements table for the group: it decodes to *stored and
// encodes *stored, *eventsv1.StatementEntry and the *codecs.Undecodable of a test as they are.
// Readers of the table (views, the audit) decode it with its own codec.
type storedCodec struct{}

func (storedCodec) Encode(v any) ([]byte, error) {
	switch v := v.(type) {
	case *stored:
		return v.raw, nil
	case *eventsv1.StatementEntry:
		return proto.Marshal(v)
	case *codecs.Undecodable:
		return v.Raw, nil
	default:
		return nil, fmt.Errorf("statements table: cannot encode %T", v)
	}
}

func (storedCodec) Decode(b []byte) (any, error) {
	return &stored{raw: append([]byte(nil), b...)}, nil
}

// entry decodes the value.
func (s *stored) entry() (*eventsv1.StatementEntry, error) {
	e := &eventsv1.StatementEntry{}
	if err := proto.Unmarshal(s.raw, e); err != nil {
		return nil, err
	}
	return e, nil
}

// pageLines returns how many lines the value holds when it is a page (false when it holds a
// card's state), reading its encoding without decoding the lines.
func (s *stored) pageLines() (n int, page bool, err error) {
	b := s.raw
	page = true
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, false, protowire.ParseError(l)
		}
		b = b[l:]
		if num == 2 && typ == protowire.BytesType { // StatementEntry.page
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return 0, false, protowire.ParseError(l)
			}
			b = b[l:]
			lines, err := countField(v, 1) // StatementPage.lines
			if err != nil {
				return 0, false, err
			}
			n += lines
			continue
		}
		if num == 1 { // StatementEntry.card: a card's state
			page = false
		}
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return 0, false, protowire.ParseError(l)
		}
		b = b[l:]
	}
	return n, page, nil
}

// countField returns how many times field num occurs in the encoded message b.
func countField(b []byte, num protowire.Number) (int, error) {
	n := 0
	for len(b) > 0 {
		got, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(got, typ, b)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		b = b[l:]
		if got == num {
			n++
		}
	}
	return n, nil
}

// withLine returns the page with line appended, as a new value.
func (s *stored) withLine(line *eventsv1.StatementLine) (*stored, error) {
	more, err := proto.Marshal(&eventsv1.StatementEntry{Entry: &eventsv1.StatementEntry_Page{Page: &eventsv1.StatementPage{Lines: []*eventsv1.StatementLine{line}}}})
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 0, len(s.raw)+len(more))
	return &stored{raw: append(append(raw, s.raw...), more...)}, nil
}
