package codecs

import (
	"fmt"

	"github.com/lovoo/goka"
)

// A goka processor stops, and stops again after every restart, on the first record its codec
// cannot decode: goka treats a decoding error as fatal. Code Bank's processors therefore read
// their inputs with Framed and their tables with Lenient, whose Decode never fails, and decide
// themselves what to do with a record that does not decode (stream.DeadLetters).

// Frame is a record read through a Framed codec: its bytes as they were in the topic, and
// either its decoded Value or the Err that kept it from decoding.
type Frame struct {
	// Raw is the record's value, unchanged.
	Raw []byte
	// Value is the decoded value; nil when Err is set.
	Value any
	// Err says why Raw does not decode; nil when it does.
	Err error
}

// Framed returns a codec that decodes with c into a *Frame and never fails, so that the bytes
// of a record that does not decode, or that decodes but breaks its contract, can still be
// copied to a dead-letter topic as they were. Encoding is c's (a *Frame encodes as its Raw
// bytes).
func Framed(c goka.Codec) goka.Codec { return framed{c} }

type framed struct{ c goka.Codec }

func (f framed) Encode(v any) ([]byte, error) {
	if fr, ok := v.(*Frame); ok {
		return fr.Raw, nil
	}
	return f.c.Encode(v)
}

func (f framed) Decode(data []byte) (any, error) {
	v, err := f.c.Decode(data)
	if err != nil {
		return &Frame{Raw: data, Err: err}, nil
	}
	return &Frame{Raw: data, Value: v}, nil
}

// Undecodable is what a Lenient codec returns for bytes that do not decode: a table value that
// was damaged, or written by something else than its owner.
type Undecodable struct {
	// Raw is the stored value, unchanged.
	Raw []byte
	// Err says why it does not decode.
	Err error
}

// Error makes an *Undecodable usable as an error.
func (u *Undecodable) Error() string { return "undecodable value: " + u.Err.Error() }

// Unwrap returns the decoding error.
func (u *Undecodable) Unwrap() error { return u.Err }

// Lenient returns a codec that decodes with c and returns an *Undecodable instead of an error
// when c fails, so that one damaged table value fails its own key, not the processor or view
// that reads it. Encoding is c's (an *Undecodable encodes as its Raw bytes).
func Lenient(c goka.Codec) goka.Codec { return lenient{c} }

type lenient struct{ c goka.Codec }

func (l lenient) Encode(v any) ([]byte, error) {
	if u, ok := v.(*Undecodable); ok {
		return u.Raw, nil
	}
	return l.c.Encode(v)
}

func (l lenient) Decode(data []byte) (any, error) {
	v, err := l.c.Decode(data)
	if err != nil {
		return &Undecodable{Raw: data, Err: err}, nil
	}
	return v, nil
}

// Bytes is the goka codec of records copied as they are (dead-letter topics): it encodes and
// decodes []byte unchanged.
type Bytes struct{}

// Encode returns a []byte value unchanged.
func (Bytes) Encode(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("encode bytes: got %T", v)
	}
	return b, nil
}

// Decode returns data unchanged.
func (Bytes) Decode(data []byte) (any, error) { return data, nil }
