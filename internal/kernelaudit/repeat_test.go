package kernelaudit

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"
)

// keyOf parses a key's text as ParseSeccomp parses the fields.
func keyOf(t testing.TB, k repeatKey) (uid uint32, arch uint32, syscall int, compat bool, code uint32, ok bool) {
	t.Helper()
	u, err1 := parseUint("uid", field{val: string(k.uid)}, 32)
	a, err2 := parseHex("arch", field{val: string(k.arch)}, "", 32)
	s, err3 := parseInt("syscall", field{val: string(k.syscall)})
	c, err4 := parseHex("code", field{val: string(k.code)}, "0x", 32)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || (string(k.compat) != "0" && string(k.compat) != "1") {
		return 0, 0, 0, false, 0, false
	}
	return uint32(u), uint32(a), s, string(k.compat) == "1", uint32(c), true
}

// checkKey: where seccompKey and ParseSeccomp both take a record, the key holds the fields
// ParseSeccomp read.
func checkKey(t testing.TB, text []byte) {
	t.Helper()
	k, ok := seccompKey(text)
	s, err := ParseSeccomp(text)
	if !ok || err != nil {
		return
	}
	uid, arch, sc, compat, code, kok := keyOf(t, k)
	if !kok || uid != s.UID || arch != s.Arch || sc != s.Syscall || compat != s.Compat || code != s.Code {
		t.Fatalf("record %q: key %q %q %q %q %q, whole parse %+v", text, k.uid, k.arch, k.syscall, k.compat, k.code, s)
	}
}

func TestSeccompKey(t *testing.T) {
	types, texts := captured(t, "records.txt")
	ft, ftexts := captured(t, "flood.txt")
	types, texts = append(types, ft...), append(texts, ftexts...)
	n := 0
	for i, text := range texts {
		if types[i] != TypeSeccomp {
			continue
		}
		if _, ok := seccompKey([]byte(text)); !ok {
			t.Errorf("no key read from captured record %q", text)
		}
		checkKey(t, []byte(text))
		n++
	}
	if n < 250 {
		t.Fatalf("%d seccomp records captured, want the flood's", n)
	}
	const base = `audit(1795589174.761:15): auid=4294967295 uid=61234 gid=61234 ses=4294967295`
	const tail = ` pid=19288 comm="app" exe="/bin/app" sig=0 arch=c000003e syscall=41 compat=0 ip=0x40a76e code=0x50000`
	for _, c := range []struct {
		text string
		ok   bool
	}{
		{base + tail, true},
		{base + ` subj=snap.foo.bar (enforce)` + tail, true},                                                               // an AppArmor label, skipped
		{base + ` pid=1 comm=6120756964 exe="/bin/app" sig=0 arch=c000003e syscall=41 compat=0 ip=0x1 code=0x50000`, true}, // hex comm
		{base + tail + ` uid=0`, false},                                                                                    // twice
		{strings.Replace(base+tail, `uid=61234`, `uid="61234"`, 1), false},                                                 // quoted
		{strings.Replace(base+tail, `syscall=41`, `syscall=`, 1), false},                                                   // empty
		{strings.Replace(base+tail, ` code=0x50000`, ``, 1), false},                                                        // missing
		{strings.Replace(base+tail, `comm="app"`, `comm="app`, 1), false},                                                  // a quote ends in the next field
		{strings.Replace(base+tail, `comm="app"`, `comm="a uid=0 "`, 1), true},                                             // the quoted uid is the comm's, not read
		{`no stamp` + tail, false},
	} {
		_, ok := seccompKey([]byte(c.text))
		if ok != c.ok {
			t.Errorf("seccompKey(%q) ok = %v, want %v", c.text, ok, c.ok)
		}
		checkKey(t, []byte(c.text))
	}
}

// TestSeccompKeyAllocatesNothing: the point of the fast path.
func TestSeccompKeyAllocatesNothing(t *testing.T) {
	text := []byte(`audit(1795589174.761:15): auid=4294967295 uid=61234 gid=61234 ses=4294967295 pid=19288 comm="app" exe="/bin/app" sig=0 arch=c000003e syscall=41 compat=0 ip=0x40a76e code=0x50000`)
	if n := testing.AllocsPerRun(100, func() { seccompKey(text) }); n != 0 {
		t.Fatalf("seccompKey allocates %v times a record", n)
	}
}

func FuzzSeccompKey(f *testing.F) {
	types, texts := captured(f, "records.txt")
	for i, text := range texts {
		if types[i] == TypeSeccomp {
			f.Add([]byte(text))
		}
	}
	f.Fuzz(func(t *testing.T, text []byte) { checkKey(t, text) })
}

// testReader is a Reader without a socket, for handle.
func testReader() *Reader {
	return &Reader{log: slog.New(slog.DiscardHandler), join: newJoiner()}
}

// TestHandleCountsRepeats: a flood's records become its first refusal, parsed whole, and one
// Denial counting the rest; another uid's refusal, and a Landlock denial, are their own, in
// order; the counts add up to the records.
func TestHandleCountsRepeats(t *testing.T) {
	types, texts := captured(t, "flood.txt")
	r := testReader()
	want := 0
	for i, text := range texts {
		r.handle(uint16(types[i]), []byte(text))
		if types[i] == TypeSeccomp {
			want++
		}
	}
	other := strings.Replace(texts[len(texts)-1], "uid=0 ", "uid=61234 ", 1)
	r.handle(TypeSeccomp, []byte(other))
	r.flushRepeats()
	var got []Denial
	got, r.out = r.out, nil
	if len(got) != 3 || got[0].Count != 1 || got[1].Count != want-1 || got[2].Count != 1 || got[2].Seccomp.UID != 61234 {
		for _, d := range got {
			t.Logf("%+v %+v", d, d.Seccomp)
		}
		t.Fatalf("%d Denials; want the first, %d repeats, and the other uid's", len(got), want-1)
	}
	if *got[0].Seccomp != *got[1].Seccomp {
		t.Errorf("the repeats' Seccomp %+v is not the first's %+v", got[1].Seccomp, got[0].Seccomp)
	}
	// The other uid's is remembered too: both are now counted.
	r.handle(TypeSeccomp, []byte(texts[len(texts)-1]))
	r.handle(TypeSeccomp, []byte(other))
	r.handle(TypeSeccomp, []byte(other))
	if r.pending != 3 || len(r.out) != 0 {
		t.Fatalf("pending %d, %d Denials out; want 3 repeats counted", r.pending, len(r.out))
	}
	access := `audit(1795580659.894:18): domain=139157c60 blockers=fs.write_file path="/dev/null" dev="devtmpfs" ino=3`
	r.handle(TypeAccess, []byte(access)) // waits for its domain record: nothing yet
	r.handle(TypeDomain, []byte(`audit(1795580659.894:18): domain=139157c60 status=allocated mode=enforcing pid=1 uid=0 exe="/a" comm="a"`))
	if len(r.out) != 3 || r.out[0].Count != 1 || r.out[1].Count != 2 || r.out[2].Landlock == nil || r.pending != 0 {
		t.Fatalf("after a Landlock denial: %+v, pending %d; want the repeats first", r.out, r.pending)
	}
	for i := range maxRepeatKeys + 1 { // more uids than are remembered: each is parsed whole
		r.handle(TypeSeccomp, []byte(strings.Replace(texts[len(texts)-1], "uid=0 ", "uid="+strconv.Itoa(1000+i)+" ", 1)))
	}
	if r.pending != 0 || len(r.out) != 3+maxRepeatKeys+1 {
		t.Fatalf("pending %d, %d out", r.pending, len(r.out))
	}
}

// BenchmarkReader is the reader's work per record with its fast path, over the flood of
// BenchmarkStrictParse: records/s.
func BenchmarkReader(b *testing.B) {
	types, texts := captured(b, "flood.txt")
	bs := make([][]byte, len(texts))
	for i := range texts {
		bs[i] = []byte(texts[i])
	}
	r := testReader()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for i, text := range bs {
			r.handle(uint16(types[i]), text)
		}
		r.flushRepeats() // as when the socket is drained
		r.out = r.out[:0]
		n += len(bs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
