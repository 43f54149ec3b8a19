package authorizer

import (
	"strconv"
	"testing"
)

func BenchmarkDecide(b *testing.B) {
	a := testAccount()
	a.LimitCents = 1 << 50
	r := testRequest()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.TransactionId = strconv.Itoa(i)
		f := FingerprintOf(testKeys, r)
		out, _ := Decide(a, r, f, now)
		Record(a, out, f, DefaultPolicy)
	}
}
