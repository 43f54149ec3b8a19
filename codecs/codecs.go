// Package codecs holds the wire formats of every Kafka topic of Code Bank, as goka codecs.
//
// Code Bank's own components exchange protobuf records (Proto, with the messages of
// proto/codebank/events/v1); the results topic, which Kafka Connect and other teams read,
// carries JSON (Result, ResultCodec), documented field by field on Result.
package codecs

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// Proto is the goka codec of a protobuf message type M, where PM is *M.
type Proto[M any, PM interface {
	*M
	proto.Message
}] struct{}

// Encode marshals a PM (a *M).
func (Proto[M, PM]) Encode(value any) ([]byte, error) {
	m, ok := value.(PM)
	if !ok {
		return nil, fmt.Errorf("encode %T: got %T", PM(nil), value)
	}
	return proto.Marshal(m)
}

// Decode unmarshals data into a new PM (a *M).
func (Proto[M, PM]) Decode(data []byte) (any, error) {
	m := PM(new(M))
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("decode %T: %w", m, err)
	}
	return m, nil
}

// JSON is the goka codec of *T as JSON, for records other teams and tools read.
type JSON[T any] struct{}

// Encode marshals a *T.
func (JSON[T]) Encode(value any) ([]byte, error) {
	v, ok := value.(*T)
	if !ok {
		return nil, fmt.Errorf("encode %T: got %T", (*T)(nil), value)
	}
	return json.Marshal(v)
}

// Decode unmarshals JSON into a new *T.
func (JSON[T]) Decode(data []byte) (any, error) {
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("decode %T: %w", v, err)
	}
	return v, nil
}

// The codecs of Code Bank's protobuf records.
var (
	// PaymentRequested encodes *eventsv1.PaymentRequested.
	PaymentRequested Proto[eventsv1.PaymentRequested, *eventsv1.PaymentRequested]
	// CardCommand encodes *eventsv1.CardCommand.
	CardCommand Proto[eventsv1.CardCommand, *eventsv1.CardCommand]
	// Account encodes *eventsv1.Account.
	Account Proto[eventsv1.Account, *eventsv1.Account]
	// Reply encodes *eventsv1.Reply.
	Reply Proto[eventsv1.Reply, *eventsv1.Reply]
	// StatementLine encodes *eventsv1.StatementLine.
	StatementLine Proto[eventsv1.StatementLine, *eventsv1.StatementLine]
)
