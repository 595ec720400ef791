package cloudbroker

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is the signer's clock and its timers: time moves when the test says.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	timers  []fakeTimer
	changed chan struct{} // closed and replaced when a timer is set
}

type fakeTimer struct {
	at time.Time
	d  time.Duration
	c  chan time.Time
}

// newFakeClock starts at the present, to the second (the test certificates are valid from an
// hour ago to NotAfters relative to now), and stands still from then on.
func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Now().Truncate(time.Second), changed: make(chan struct{})}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// after is time.After on this clock.
func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{at: c.t.Add(d), d: d, c: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// advance moves the clock, firing the timers that are due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	waiting := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(c.t) {
			waiting = append(waiting, tm)
			continue
		}
		tm.c <- c.t
	}
	c.timers = waiting
}

// waitTimers waits (in real time, bounded) until n timers are set and not yet fired, and
// returns their durations.
func (c *fakeClock) waitTimers(t testing.TB, n int) []time.Duration {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		var ds []time.Duration
		for _, tm := range c.timers {
			ds = append(ds, tm.d)
		}
		changed := c.changed
		c.mu.Unlock()
		if len(ds) >= n {
			return ds
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%d timers set, want %d", len(ds), n)
		}
	}
}

// pending is how many timers are set and not yet fired.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// recordingKey is the monitor's key, recording the hashes it signs.
type recordingKey struct {
	*ecdsa.PrivateKey
	mu     sync.Mutex
	hashes []crypto.Hash
}

func (k *recordingKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.mu.Lock()
	k.hashes = append(k.hashes, opts.HashFunc())
	k.mu.Unlock()
	return k.PrivateKey.Sign(r, digest, opts)
}

func (k *recordingKey) signed() []crypto.Hash {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]crypto.Hash(nil), k.hashes...)
}

// signerWorld is a monitor's key server and a broker's end of their socket pair, in this
// process.
type signerWorld struct {
	ks    *keyServer
	conn  *signerConn
	clock *fakeClock
	logs  *logBuf
}

func newSignerWorld(t testing.TB) *signerWorld {
	t.Helper()
	w := &signerWorld{clock: newFakeClock(), logs: &logBuf{}}
	w.ks = newKeyServer(slog.New(slog.NewTextHandler(w.logs, nil)), w.clock.now, w.clock.after)
	w.conn = w.connect(t)
	return w
}

// connect makes another broker's socket pair to the same key server (a restarted broker's).
func (w *signerWorld) connect(t testing.TB) *signerConn {
	t.Helper()
	mine, theirs, err := signerPair()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := newSignerConn(theirs)
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go w.ks.serve(ctx, mine)
	t.Cleanup(func() { cancel(); mine.Close(); conn.c.Close() })
	return conn
}

// refused waits for the serve loop's pause after a refusal, checks it is 1/SignRate, and lets
// it pass on the clock (which refills the rate limit by one token too).
func (w *signerWorld) refused(t testing.TB) {
	t.Helper()
	if ds := w.clock.waitTimers(t, 1); len(ds) != 1 || ds[0] != time.Second/SignRate {
		t.Fatalf("after a refusal the monitor waits %v, want one pause of %v", ds, time.Second/SignRate)
	}
	w.clock.advance(time.Second / SignRate)
}

// handOver does what Refresh does around the broker's acknowledgement.
func (w *signerWorld) handOver(t testing.TB, cert tls.Certificate) *remoteSigner {
	t.Helper()
	k, err := newHeldKey(cert)
	if err != nil {
		t.Fatal(err)
	}
	w.ks.offer(k)
	w.ks.commit(k)
	return w.signerFor(t, cert)
}

func (w *signerWorld) signerFor(t testing.TB, cert tls.Certificate) *remoteSigner {
	t.Helper()
	rs, err := newRemoteSigner(w.conn, cert.Leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// raw sends a frame as a compromised broker would, and returns the monitor's answer.
func (w *signerWorld) raw(t *testing.T, frame []byte) signResponse {
	t.Helper()
	return rawOn(t, w.conn, frame)
}

func rawOn(t *testing.T, c *signerConn, frame []byte) signResponse {
	t.Helper()
	send(t, c, frame)
	return receive(t, c)
}

func send(t *testing.T, c *signerConn, frame []byte) {
	t.Helper()
	if _, err := c.c.Write(frame); err != nil {
		t.Fatal(err)
	}
}

func receive(t *testing.T, c *signerConn) signResponse {
	t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.c.Read(c.buf[:])
	if err != nil {
		t.Fatal(err)
	}
	resp, err := parseSignResponse(c.buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func digestOf(h crypto.Hash, s string) []byte {
	if h == crypto.SHA384 {
		d := sha512.Sum384([]byte(s))
		return d[:]
	}
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func TestSignerSignsWithTheHeldKey(t *testing.T) {
	p := newPKI(t)
	w := newSignerWorld(t)
	id := p.client("device-1", time.Now().Add(time.Hour))
	rs := w.handOver(t, id)
	pub := id.Leaf.PublicKey.(*ecdsa.PublicKey)
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		d := digestOf(h, "transcript "+h.String())
		sig, err := rs.Sign(nil, d, h)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		if !ecdsa.VerifyASN1(pub, d, sig) {
			t.Fatalf("%v: the signature does not verify with the certificate's key", h)
		}
	}
	// The broker's identity holds no key to export.
	if _, err := x509.MarshalPKCS8PrivateKey(crypto.Signer(rs)); err == nil {
		t.Fatal("the remote signer exported as a private key")
	}
	if got := w.ks.snapshot(); got != (SignStats{Signed: 2}) {
		t.Fatalf("stats %+v, want 2 signed", got)
	}
}

func TestSignerRefusesMalformedRequests(t *testing.T) {
	p := newPKI(t)
	w := newSignerWorld(t)
	id := p.client("device-1", time.Now().Add(time.Hour))
	rs := w.handOver(t, id)
	other := p.client("someone-else", time.Now().Add(time.Hour))
	otherID, _ := keyIDOf(other.Leaf.PublicKey)

	good := func(h crypto.Hash, digest []byte) []byte {
		b, err := encodeSignRequest(signRequest{id: 7, hash: h, keyID: rs.keyID, digest: digestOf(h, "x")})
		if err != nil {
			t.Fatal(err)
		}
		if digest != nil {
			b = append(b[:signHeaderLen+keyIDLen], digest...)
		}
		return b
	}
	withByte := func(b []byte, i int, v byte) []byte { b = bytes.Clone(b); b[i] = v; return b }
	forOther, _ := encodeSignRequest(signRequest{id: 7, hash: crypto.SHA256, keyID: otherID, digest: digestOf(crypto.SHA256, "x")})
	cases := []struct {
		name  string
		frame []byte
		want  string
	}{
		{"hash 3", withByte(good(crypto.SHA384, nil), 1, 3), "only SHA-256 (1) and SHA-384 (2)"},
		{"SHA-512", withByte(good(crypto.SHA256, make([]byte, 64)), 1, 3), "longer than 86 bytes"},
		{"SHA-1", withByte(good(crypto.SHA256, make([]byte, 20)), 1, 0), "only SHA-256 (1) and SHA-384 (2)"},
		{"SHA-256 with 48 bytes", good(crypto.SHA256, make([]byte, 48)), "digest of 48 bytes, want 32"},
		{"SHA-256 with 31 bytes", good(crypto.SHA256, make([]byte, 31)), "digest of 31 bytes, want 32"},
		{"SHA-384 with 32 bytes", good(crypto.SHA384, make([]byte, 32)), "digest of 32 bytes, want 48"},
		{"no digest", good(crypto.SHA256, []byte{}), "want 32"},
		{"version 2", withByte(good(crypto.SHA256, nil), 0, 2), "protocol version 2"},
		{"garbage", []byte("GET / HTTP/1.1\r\n"), "too short"},
		{"one byte", []byte{1}, "too short"},
		{"oversized", bytes.Repeat([]byte{1}, 4096), "longer than 86 bytes"},
		{"just too long", append(good(crypto.SHA384, nil), 0), "longer than 86 bytes"},
		{"another key", forOther, "not the key of the agent's current certificate"},
	}
	for _, c := range cases {
		resp := w.raw(t, c.frame)
		if resp.err == "" || !strings.Contains(resp.err, c.want) {
			t.Errorf("%s: answer %q (signature %x), want an error with %q", c.name, resp.err, resp.sig, c.want)
		}
		w.refused(t)
		if len(c.frame) >= signHeaderLen && resp.id != 7 && c.name != "garbage" && c.name != "oversized" {
			t.Errorf("%s: the answer's id is %d, want the request's 7", c.name, resp.id)
		}
	}
	// A good request after all that is still served, and nothing was signed before it.
	if got := w.ks.snapshot(); got.Signed != 0 || got.Refused != uint64(len(cases)) {
		t.Fatalf("stats %+v, want 0 signed and %d refused", got, len(cases))
	}
	if resp := w.raw(t, good(crypto.SHA256, nil)); resp.err != "" || resp.id != 7 ||
		!ecdsa.VerifyASN1(id.Leaf.PublicKey.(*ecdsa.PublicKey), digestOf(crypto.SHA256, "x"), resp.sig) {
		t.Fatalf("a good request after the bad ones: %+v", resp)
	}
	// The broker's own signer refuses what the monitor would, before asking.
	if _, err := rs.Sign(nil, digestOf(crypto.SHA256, "x")[:20], crypto.SHA1); err == nil {
		t.Fatal("the remote signer asked for SHA-1")
	}
	if _, err := rs.Sign(nil, make([]byte, 64), crypto.SHA512); err == nil {
		t.Fatal("the remote signer asked for SHA-512")
	}
	if n := w.clock.pending(); n != 0 {
		t.Fatalf("%d pauses after a signature or after requests never sent", n)
	}
	// The refusals were logged, once (the rest counted as not logged).
	if l := w.logs.String(); strings.Count(l, "level=WARN") != 1 || !strings.Contains(l, "signing request") {
		t.Fatalf("log:\n%s", l)
	}
}

func TestSignerRateLimit(t *testing.T) {
	p := newPKI(t)
	w := newSignerWorld(t)
	id := p.client("device-1", time.Now().Add(24*time.Hour)) // valid past the idle hour below
	rs := w.handOver(t, id)
	d := digestOf(crypto.SHA256, "handshake")
	for i := range SignBurst {
		if _, err := rs.Sign(nil, d, crypto.SHA256); err != nil {
			t.Fatalf("signature %d of the burst: %v", i+1, err)
		}
	}
	// Past the burst: a refusal, then the monitor's pause, whose 1/SignRate s refills one
	// token: one signature, and the next refused. A broker that keeps asking gets SignRate
	// signatures a second, and no faster.
	const rounds = 20
	for i := range rounds {
		if _, err := rs.Sign(nil, d, crypto.SHA256); err == nil || !strings.Contains(err.Error(), "rate limit") {
			t.Fatalf("round %d, past the burst: %v, want the rate limit", i, err)
		}
		w.refused(t)
		if _, err := rs.Sign(nil, d, crypto.SHA256); err != nil {
			t.Fatalf("round %d, after 1/%d s: %v", i, SignRate, err)
		}
	}
	if got := w.ks.snapshot(); got != (SignStats{Signed: SignBurst + rounds, Limited: rounds}) {
		t.Fatalf("stats %+v", got)
	}
	if !strings.Contains(w.logs.String(), "rate limit") {
		t.Fatalf("the refusal was not logged:\n%s", w.logs.String())
	}
	if _, err := rs.Sign(nil, d, crypto.SHA256); err == nil {
		t.Fatal("a signature without the time for a token")
	}
	w.refused(t)
	w.clock.advance(time.Hour)
	for i := range SignBurst {
		if _, err := rs.Sign(nil, d, crypto.SHA256); err != nil {
			t.Fatalf("after an hour, signature %d: %v", i+1, err)
		}
	}
	if _, err := rs.Sign(nil, d, crypto.SHA256); err == nil {
		t.Fatal("an idle hour gave more than the burst")
	}
}

// TestSignerPacesRefusals: after a refusal (malformed, another key's, rate-limited), the
// monitor reads that broker's next request only 1/SignRate later on its clock, so a broker
// flooding it with bad requests gets SignRate answers a second; another broker's requests
// (its successor's, on another socket pair) are answered meanwhile.
func TestSignerPacesRefusals(t *testing.T) {
	p := newPKI(t)
	w := newSignerWorld(t)
	id := p.client("device-1", time.Now().Add(time.Hour))
	rs := w.handOver(t, id)
	good, err := encodeSignRequest(signRequest{id: 2, hash: crypto.SHA256, keyID: rs.keyID, digest: digestOf(crypto.SHA256, "x")})
	if err != nil {
		t.Fatal(err)
	}
	if resp := w.raw(t, []byte("bad")); resp.err == "" {
		t.Fatal("a bad request signed")
	}
	if ds := w.clock.waitTimers(t, 1); len(ds) != 1 || ds[0] != time.Second/SignRate {
		t.Fatalf("pauses %v, want one of %v", ds, time.Second/SignRate)
	}
	// The next request waits in the socket, unread, while the clock stands short of the pause.
	send(t, w.conn, good)
	w.clock.advance(time.Second/SignRate - time.Nanosecond)
	other := w.connect(t)
	if resp := rawOn(t, other, good); resp.err != "" {
		t.Fatalf("another broker's request during the first one's pause: %q", resp.err)
	}
	if got := w.ks.snapshot(); got != (SignStats{Signed: 1, Refused: 1}) {
		t.Fatalf("stats %+v: the paused broker's request was read", got)
	}
	_ = w.conn.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := w.conn.c.Read(w.conn.buf[:]); err == nil {
		t.Fatalf("answered during the pause: %x", w.conn.buf[:n])
	}
	w.clock.advance(time.Nanosecond)
	if resp := receive(t, w.conn); resp.err != "" || resp.id != 2 {
		t.Fatalf("after the pause: %+v", resp)
	}
	if got := w.ks.snapshot(); got != (SignStats{Signed: 2, Refused: 1}) {
		t.Fatalf("stats %+v", got)
	}
	// A signature is not followed by a pause.
	if n := w.clock.pending(); n != 0 {
		t.Fatalf("%d pauses after a signature", n)
	}
	// A flood: each refusal costs the broker 1/SignRate of the clock; without the clock moving,
	// one answer and no more.
	for range 5 {
		send(t, w.conn, []byte("bad"))
	}
	if resp := receive(t, w.conn); resp.err == "" {
		t.Fatal("a bad request signed")
	}
	w.clock.waitTimers(t, 1)
	_ = w.conn.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := w.conn.c.Read(w.conn.buf[:]); err == nil {
		t.Fatal("a second refusal without the clock moving")
	}
	for i := range 4 {
		w.refused(t)
		if resp := receive(t, w.conn); resp.err == "" {
			t.Fatalf("bad request %d signed", i+2)
		}
	}
	if got := w.ks.snapshot(); got.Refused != 6 {
		t.Fatalf("stats %+v, want 6 refused", got)
	}
}

// TestSignerStopsAtNotAfter: the monitor signs with a key until its certificate's NotAfter
// on its clock, then refuses, for the current key and for one being handed over.
func TestSignerStopsAtNotAfter(t *testing.T) {
	p := newPKI(t)
	w := newSignerWorld(t)
	start := w.clock.now()
	id := p.client("device-1", start.Add(time.Hour))
	rs := w.handOver(t, id)
	renewed := p.client("device-1-renewed", start.Add(2*time.Hour))
	k, err := newHeldKey(renewed)
	if err != nil {
		t.Fatal(err)
	}
	w.ks.offer(k)
	next := w.signerFor(t, renewed)
	d := digestOf(crypto.SHA256, "handshake")
	w.clock.advance(time.Hour) // at NotAfter: still valid
	for _, s := range []*remoteSigner{rs, next} {
		if _, err := s.Sign(nil, d, crypto.SHA256); err != nil {
			t.Fatalf("at NotAfter: %v", err)
		}
	}
	w.clock.advance(time.Second)
	want := "the monitor refused to sign: the agent's certificate expired at " + start.Add(time.Hour).UTC().Format(time.RFC3339)
	if _, err := rs.Sign(nil, d, crypto.SHA256); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("past NotAfter: %v, want %q", err, want)
	}
	w.refused(t)
	if _, err := next.Sign(nil, d, crypto.SHA256); err != nil {
		t.Fatalf("the pending key, still valid: %v", err)
	}
	w.clock.advance(time.Hour)
	if _, err := next.Sign(nil, d, crypto.SHA256); err == nil || !strings.Contains(err.Error(), "certificate expired at "+
		start.Add(2*time.Hour).UTC().Format(time.RFC3339)) {
		t.Fatalf("the pending key past its NotAfter: %v", err)
	}
	w.refused(t)
	if got := w.ks.snapshot(); got != (SignStats{Signed: 3, Refused: 2}) {
		t.Fatalf("stats %+v", got)
	}
	if !strings.Contains(w.logs.String(), "certificate expired") {
		t.Fatalf("the refusal was not logged:\n%s", w.logs.String())
	}
}

// failingKey is a key whose signing fails (a hardware key gone).
type failingKey struct{ *ecdsa.PrivateKey }

func (failingKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("the key is gone")
}

// TestSignerCountsOnlySignatures: a signature that fails is not counted as made.
func TestSignerCountsOnlySignatures(t *testing.T) {
	p := newPKI(t)
	w := newSignerWorld(t)
	id := p.client("device-1", time.Now().Add(time.Hour))
	id.PrivateKey = failingKey{id.PrivateKey.(*ecdsa.PrivateKey)}
	rs := w.handOver(t, id)
	if _, err := rs.Sign(nil, digestOf(crypto.SHA256, "x"), crypto.SHA256); err == nil || !strings.Contains(err.Error(), "the key is gone") {
		t.Fatalf("a failing key: %v", err)
	}
	w.refused(t)
	if got := w.ks.snapshot(); got != (SignStats{Refused: 1}) {
		t.Fatalf("stats %+v, want nothing signed and one refusal", got)
	}
}

func TestSignerRenewal(t *testing.T) {
	p := newPKI(t)
	w := newSignerWorld(t)
	oldID := p.client("device-1", time.Now().Add(time.Hour))
	newID := p.client("device-1-renewed", time.Now().Add(2*time.Hour))
	oldSigner := w.handOver(t, oldID)
	newSigner := w.signerFor(t, newID)
	d := digestOf(crypto.SHA256, "handshake")
	if _, err := newSigner.Sign(nil, d, crypto.SHA256); err == nil {
		t.Fatal("the monitor signed with a key it has not handed over")
	}
	w.refused(t)
	// During the handover both are served (a handshake in flight with the old certificate,
	// the next with the new one)...
	k, err := newHeldKey(newID)
	if err != nil {
		t.Fatal(err)
	}
	w.ks.offer(k)
	for _, s := range []*remoteSigner{oldSigner, newSigner} {
		if _, err := s.Sign(nil, d, crypto.SHA256); err != nil {
			t.Fatalf("during the handover: %v", err)
		}
	}
	// ...and once the broker has the new certificate, only the new key signs.
	w.ks.commit(k)
	if _, err := oldSigner.Sign(nil, d, crypto.SHA256); err == nil || !strings.Contains(err.Error(), "not the key of the agent's current certificate") {
		t.Fatalf("the old key after the handover: %v", err)
	}
	w.refused(t)
	sig, err := newSigner.Sign(nil, d, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(newID.Leaf.PublicKey.(*ecdsa.PublicKey), d, sig) || ecdsa.VerifyASN1(oldID.Leaf.PublicKey.(*ecdsa.PublicKey), d, sig) {
		t.Fatal("after the handover the signature is not the new key's alone")
	}
	// A request that names the new key but is answered with the old one's signature would be
	// caught by the broker too.
	if _, err := (&remoteSigner{conn: w.conn, pub: oldSigner.pub, keyID: newSigner.keyID}).Sign(nil, d, crypto.SHA256); err == nil ||
		!strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("a signature by another key: %v", err)
	}
}

func TestHeldKeyRefusesOtherKeys(t *testing.T) {
	p := newPKI(t)
	a := p.client("a", time.Now().Add(time.Hour))
	b := p.client("b", time.Now().Add(time.Hour))
	if _, err := newHeldKey(tls.Certificate{Certificate: a.Certificate, PrivateKey: b.PrivateKey}); err == nil ||
		!strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a key that is not the certificate's: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := newHeldKey(tls.Certificate{Certificate: a.Certificate, PrivateKey: p384}); err == nil {
		t.Fatal("accepted a P-384 key for a P-256 certificate")
	}
	if _, err := newHeldKey(tls.Certificate{}); err == nil {
		t.Fatal("accepted an identity without a certificate")
	}
}

// TestTLSClientAuthUsesTheMonitorsKey runs the broker's proxy in this process against a
// service that requires a client certificate: the handshake succeeds with the monitor's
// signature (ECDSA P-256 with SHA-256: ecdsa_secp256r1_sha256 in TLS 1.3), for TLS 1.3 and 1.2.
func TestTLSClientAuthUsesTheMonitorsKey(t *testing.T) {
	p := newPKI(t)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "%s %s", r.TLS.PeerCertificates[0].Subject.CommonName, tls.VersionName(r.TLS.Version))
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert,
				ClientCAs: p.pool, MinVersion: version, MaxVersion: version}
			srv.StartTLS()
			defer srv.Close()

			w := newSignerWorld(t)
			id := p.client("device-1", time.Now().Add(time.Hour))
			key := &recordingKey{PrivateKey: id.PrivateKey.(*ecdsa.PrivateKey)}
			monitorID := id
			monitorID.PrivateKey = key
			k, err := newHeldKey(monitorID)
			if err != nil {
				t.Fatal(err)
			}
			px, err := newProxy(childConfig{Server: srv.URL, RootPEM: string(p.caPEM)}, w.conn, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := encodeIdentity(id.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			w.ks.offer(k)
			rec := httptest.NewRecorder()
			px.ServeHTTP(rec, httptest.NewRequest("PUT", "http://broker"+identityPath, bytes.NewReader(doc)))
			if rec.Code != http.StatusNoContent {
				t.Fatalf("handover: %d %s", rec.Code, rec.Body)
			}
			w.ks.commit(k)
			if _, err := x509.MarshalPKCS8PrivateKey(px.id.PrivateKey); err == nil {
				t.Fatalf("the broker's identity holds an exportable key (%T)", px.id.PrivateKey)
			}

			rec = httptest.NewRecorder()
			u := strings.TrimPrefix(srv.URL, "https://")
			px.ServeHTTP(rec, httptest.NewRequest("GET", "http://"+u+"/whoami", nil))
			if want := "device-1 " + tls.VersionName(version); rec.Code != 200 || rec.Body.String() != want {
				t.Fatalf("through the proxy: %d %q, want %q", rec.Code, rec.Body, want)
			}
			if got := key.signed(); len(got) != 1 || got[0] != crypto.SHA256 {
				t.Fatalf("the monitor's key signed %v, want one SHA-256 signature", got)
			}
			if got := w.ks.snapshot(); got != (SignStats{Signed: 1}) {
				t.Fatalf("stats %+v", got)
			}
		})
	}
}

// TestSignFramesGolden pins the wire format.
func TestSignFramesGolden(t *testing.T) {
	var keyID [keyIDLen]byte
	for i := range keyID {
		keyID[i] = byte(i)
	}
	req, err := encodeSignRequest(signRequest{id: 0x01020304, hash: crypto.SHA256, keyID: keyID, digest: bytes.Repeat([]byte{0xaa}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	want := "0101" + "01020304" + "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" + strings.Repeat("aa", 32)
	if hex.EncodeToString(req) != want {
		t.Fatalf("request %x\nwant    %s", req, want)
	}
	if r, err := parseSignRequest(req); err != nil || r.id != 0x01020304 || r.hash != crypto.SHA256 || r.keyID != keyID {
		t.Fatalf("parse: %+v %v", r, err)
	}
	if got := hex.EncodeToString(encodeSignResponse(signResponse{id: 5, sig: []byte{0x30, 0x00}})); got != "0100000000053000" {
		t.Fatalf("signature answer %s", got)
	}
	if got := hex.EncodeToString(encodeSignResponse(signResponse{id: 5, err: "no\n"})); got != "0101000000056e6f3f" {
		t.Fatalf("error answer %s", got)
	}
	for _, bad := range []string{"", "010000000005", "0102000000053000", "0200000000053000", "010100000005ff", "01010000000500"} {
		b, _ := hex.DecodeString(bad)
		if r, err := parseSignResponse(b); err == nil {
			t.Errorf("answer %s accepted: %+v", bad, r)
		}
	}
	if _, err := parseSignResponse(make([]byte, MaxSignResponse+1)); err == nil {
		t.Error("an oversized answer accepted")
	}
}

func FuzzParseSignRequest(f *testing.F) {
	var keyID [keyIDLen]byte
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		b, _ := encodeSignRequest(signRequest{id: 1, hash: h, keyID: keyID, digest: make([]byte, h.Size())})
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(append(b, 0))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 3, 0, 0, 0, 1})
	f.Add(bytes.Repeat([]byte{0xff}, MaxSignRequest+10))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseSignRequest(b)
		if err != nil {
			return
		}
		if len(r.digest) != r.hash.Size() || (r.hash != crypto.SHA256 && r.hash != crypto.SHA384) || len(b) > MaxSignRequest {
			t.Fatalf("accepted %x as %+v", b, r)
		}
		again, err := encodeSignRequest(r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which encodes back as %x (%v)", b, again, err)
		}
	})
}

func FuzzParseSignResponse(f *testing.F) {
	f.Add(encodeSignResponse(signResponse{id: 1, sig: []byte{0x30, 0x06, 2, 1, 1, 2, 1, 1}}))
	f.Add(encodeSignResponse(signResponse{id: 2, err: "rate limit"}))
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0xc3, 0x28})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseSignResponse(b)
		if err != nil {
			return
		}
		if (r.err == "") == (r.sig == nil) || len(b) > MaxSignResponse {
			t.Fatalf("accepted %x as %+v", b, r)
		}
		if again := encodeSignResponse(r); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which encodes back as %x", b, again)
		}
	})
}

// BenchmarkRemoteSign measures a handshake's signature through the monitor (the socket pair's
// round trip, both parsers, the signature and the broker's check of it), beside the same
// signature made in place.
func BenchmarkRemoteSign(b *testing.B) {
	p := newPKI(b)
	id := p.client("device-1", time.Now().Add(time.Hour))
	d := digestOf(crypto.SHA256, "handshake")
	b.Run("monitor", func(b *testing.B) {
		w := newSignerWorld(b)
		rs := w.handOver(b, id)
		for b.Loop() {
			w.clock.advance(time.Second) // past the rate limit: this measures the path
			if _, err := rs.Sign(nil, d, crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("in-place", func(b *testing.B) {
		k := id.PrivateKey.(*ecdsa.PrivateKey)
		for b.Loop() {
			sig, err := k.Sign(rand.Reader, d, crypto.SHA256)
			if err != nil || !ecdsa.VerifyASN1(&k.PublicKey, d, sig) {
				b.Fatal(err)
			}
		}
	})
}
