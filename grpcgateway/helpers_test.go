package grpcgateway

import "github.com/lovoo/goka"

// gokaPartition computes the partition of key the way goka does: FNV-1a, as int32, modulo n,
// made non-negative.
func gokaPartition(key string, n int) int32 {
	h := goka.DefaultHasher()()
	h.Write([]byte(key))
	p := int32(h.Sum32()) % int32(n)
	if p < 0 {
		p = -p
	}
	return p
}
