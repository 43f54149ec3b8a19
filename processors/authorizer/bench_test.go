package authorizer

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/codebank/codebank/codecs"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

func BenchmarkDecide(b *testing.B) {
	a := testAccount()
	a.LimitCents = 1 << 50
	r := testRequest()
	b.ReportAllocs()
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		r.TransactionId = strconv.Itoa(i)
		f := FingerprintOf(testKeys, r)
		out, _ := Decide(a, r, f, now)
		Record(a, out, f, DefaultPolicy)
	}
}

// busyAccount returns the stored bytes of a busy card's account: DefaultKeep outcomes
// remembered, as after its first 128 payments of the day.
func busyAccount(b *testing.B) []byte {
	a := testAccount()
	a.LimitCents = 1 << 50
	r := testRequest()
	for i := 0; i < DefaultKeep; i++ {
		r.TransactionId = "warm-" + strconv.Itoa(i)
		f := FingerprintOf(testKeys, r)
		out, _ := Decide(a, r, f, now)
		Record(a, out, f, DefaultPolicy)
	}
	raw, err := codecs.Account.Encode(a)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkPaymentStored is the authorizer's work on a busy card's account for every payment:
// the stored account decoded, the payment decided and recorded, the account encoded for the
// table. account-bytes is the size of what the table write carries.
func BenchmarkPaymentStored(b *testing.B) {
	benchmarkPaymentStored(b, busyAccount(b))
}

func benchmarkPaymentStored(b *testing.B, raw []byte) {
	r := testRequest()
	b.ReportAllocs()
	defer reportCPU(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := codecs.Account.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		a := v.(*eventsv1.Account)
		r.TransactionId = strconv.Itoa(i)
		f := FingerprintOf(testKeys, r)
		out, _ := Decide(a, r, f, now)
		Record(a, out, f, DefaultPolicy)
		if raw, err = codecs.Account.Encode(a); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(raw)), "account-bytes")
}

// withFullCredits returns a busy card's account that also remembers DefaultCreditKeep credited
// purchases: the largest account money back leaves.
func withFullCredits(b *testing.B) []byte {
	v, err := codecs.Account.Decode(busyAccount(b))
	if err != nil {
		b.Fatal(err)
	}
	a := v.(*eventsv1.Account)
	for i := range DefaultCreditKeep {
		op := credit(refund, "bench-r"+strconv.Itoa(i), "bench-tx"+strconv.Itoa(i), 100)
		fp := OperationFingerprintOf(testKeys, op)
		out, _ := DecideOperation(a, op, fp, now.UnixMicro(), now, DefaultCreditPolicy)
		RecordOperation(a, op, out, fp, DefaultPolicy, DefaultCreditPolicy)
	}
	raw, err := codecs.Account.Encode(a)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkPaymentStoredFullCredits is BenchmarkPaymentStored on a busy card whose book of
// credits is full: the most a payment costs once money back is in use.
func BenchmarkPaymentStoredFullCredits(b *testing.B) {
	benchmarkPaymentStored(b, withFullCredits(b))
}

// BenchmarkRefundStored is a refund on a busy card with a full book of credits: the account
// decoded, the refund decided and recorded, the account encoded.
func BenchmarkRefundStored(b *testing.B) {
	raw := withFullCredits(b)
	b.ReportAllocs()
	defer reportCPU(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := codecs.Account.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		a := v.(*eventsv1.Account)
		op := credit(refund, "r"+strconv.Itoa(i), "bench-tx0", 1)
		fp := OperationFingerprintOf(testKeys, op)
		out, _ := DecideOperation(a, op, fp, now.UnixMicro(), now, DefaultCreditPolicy)
		RecordOperation(a, op, out, fp, DefaultPolicy, DefaultCreditPolicy)
		if raw, err = codecs.Account.Encode(a); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(raw)), "account-bytes")
}

// reportCPU reports the process's CPU time (user and system) per operation from now to the
// call of the function it returns: on a busy machine, what an operation costs rather than how
// long it waited for a core.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() { b.ReportMetric(float64((cpu()-start).Nanoseconds())/float64(b.N), "cpu-ns/op") }
}
