package kernelaudit

import (
	"testing"
)

// BenchmarkStrictParse is the reader's work per record when every record is parsed strictly
// (as it was before the fast path): testdata/flood.txt, a program refusing itself a raw socket
// in a loop, parsed by type. It reports records/s.
func BenchmarkStrictParse(b *testing.B) {
	types, texts := captured(b, "flood.txt")
	bs := make([][]byte, len(texts))
	for i := range texts {
		bs[i] = []byte(texts[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for i, text := range bs {
			switch types[i] {
			case TypeAccess:
				_, _ = ParseAccess(text)
			case TypeDomain:
				_, _ = ParseDomain(text)
			case TypeSeccomp:
				_, _ = ParseSeccomp(text)
			}
		}
		n += len(bs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
