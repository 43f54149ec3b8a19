package codecs

import (
	"testing"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

func BenchmarkCodecPaymentRequested(b *testing.B) {
	v := &eventsv1.PaymentRequested{TransactionId: "0b8e2c4e-8f7e-4c43-9d55-6f1c0a3b2d11", HolderName: "MARIA SILVA", ExpiryMonth: 11, ExpiryYear: 2030,
		CvvKeyIds: []string{"k1"}, AmountCents: 1234, Store: "Code Store", Description: "Produtos: livro", RequestedAtUnixUs: 1795602454530000, ReplyKey: "reply-0-12"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		data, err := PaymentRequested.Encode(v)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := PaymentRequested.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecResult(b *testing.B) {
	v := &Result{TransactionID: "0b8e2c4e-8f7e-4c43-9d55-6f1c0a3b2d11", CardToken: "Zb2u0Ya7Q9yR3p4YxJ1f2A", CardMasked: "545454******1234", CardBIN: "545454",
		Status: "approved", AmountCents: 1234, Amount: "12.34", Currency: "BRL", Store: "Code Store", Description: "Produtos: livro", Channel: "api",
		RequestedAt: "2026-11-25T10:00:00.000001Z", AuthorizedAt: "2026-11-25T10:00:00.002000Z", ProcessingMs: 2, AvailableCents: 10, LimitCents: 100}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := (ResultCodec{}).Encode(v); err != nil {
			b.Fatal(err)
		}
	}
}
