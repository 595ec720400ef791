package cloudbroker

// The remote signer: the broker presents the agent's certificate in TLS, but the certificate's
// private key stays in the monitor. The broker's tls.Certificate holds a remoteSigner, whose
// Sign sends the digest to the monitor over a SOCK_SEQPACKET socket pair made at spawn
// (signerFD in the broker) and returns the monitor's signature; the monitor's keyServer signs
// with the key of the identity it has handed over, until that certificate's NotAfter, at a
// bounded rate, and answers a broker's next request only refusalPause after refusing one.
//
// Wire format, one message per datagram, integers big-endian:
//
//	request:  version (1) | hash (1: 1 SHA-256, 2 SHA-384) | id (4) | key ID (32) | digest (32 or 48)
//	response: version (1) | status (1: 0 signature, 1 error) | id (4) | signature (ASN.1 DER) or error text
//
// The key ID is the SHA-256 of the certificate's SubjectPublicKeyInfo: the monitor signs only
// with the key it names, and only if that key is the one of the identity it holds. The id
// pairs an answer with its request, so an answer the broker stopped waiting for is never
// taken for the next one's.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	signVersion    = 1
	signHashSHA256 = 1
	signHashSHA384 = 2
	keyIDLen       = sha256.Size
	signHeaderLen  = 1 + 1 + 4
	// MaxSignRequest is the longest request: the header, the key ID and a SHA-384 digest.
	MaxSignRequest = signHeaderLen + keyIDLen + 48
	// MaxSignPayload bounds a response's signature or error text (an ECDSA P-256 signature
	// is at most 72 bytes).
	MaxSignPayload = 256
	// MaxSignResponse is the longest response.
	MaxSignResponse = signHeaderLen + MaxSignPayload
	signStatusOK    = 0
	signStatusError = 1
)

// The monitor signs at most SignRate signatures a second on average, SignBurst at once: a TLS
// handshake needs one, and the broker keeps its connections alive, so a compromised broker
// cannot use the monitor as a signing oracle at any useful rate. Refusals are paced too: after
// answering a request with an error, the monitor reads that broker's next request only
// 1/SignRate later, so a broker that floods it with bad requests costs the monitor at most
// SignRate answers a second.
const (
	SignRate  = 2
	SignBurst = 8
)

// signTimeout bounds the broker's wait for an answer, and the monitor's wait to give one.
const signTimeout = 10 * time.Second

// signRequest is a parsed request.
type signRequest struct {
	id     uint32
	hash   crypto.Hash
	keyID  [keyIDLen]byte
	digest []byte
}

func hashCode(h crypto.Hash) (byte, error) {
	switch h {
	case crypto.SHA256:
		return signHashSHA256, nil
	case crypto.SHA384:
		return signHashSHA384, nil
	}
	return 0, fmt.Errorf("hash %v: only SHA-256 and SHA-384 are signed", h)
}

func encodeSignRequest(r signRequest) ([]byte, error) {
	code, err := hashCode(r.hash)
	if err != nil {
		return nil, err
	}
	if len(r.digest) != r.hash.Size() {
		return nil, fmt.Errorf("a %v digest of %d bytes, want %d", r.hash, len(r.digest), r.hash.Size())
	}
	b := make([]byte, 0, MaxSignRequest)
	b = append(b, signVersion, code)
	b = binary.BigEndian.AppendUint32(b, r.id)
	b = append(b, r.keyID[:]...)
	return append(b, r.digest...), nil
}

// requestID is the id of a request too short or malformed to parse, so that its error
// answer still reaches the waiting caller; zero when there is none.
func requestID(b []byte) uint32 {
	if len(b) < signHeaderLen {
		return 0
	}
	return binary.BigEndian.Uint32(b[2:6])
}

// parseSignRequest parses a request from the broker: hostile input.
func parseSignRequest(b []byte) (signRequest, error) {
	var r signRequest
	if len(b) < signHeaderLen+keyIDLen {
		return r, fmt.Errorf("a request of %d bytes is too short", len(b))
	}
	if len(b) > MaxSignRequest {
		return r, fmt.Errorf("a request of %d bytes is longer than %d", len(b), MaxSignRequest)
	}
	if b[0] != signVersion {
		return r, fmt.Errorf("protocol version %d, want %d", b[0], signVersion)
	}
	switch b[1] {
	case signHashSHA256:
		r.hash = crypto.SHA256
	case signHashSHA384:
		r.hash = crypto.SHA384
	default:
		return r, fmt.Errorf("hash %d: only SHA-256 (1) and SHA-384 (2) are signed", b[1])
	}
	r.id = binary.BigEndian.Uint32(b[2:6])
	copy(r.keyID[:], b[signHeaderLen:])
	r.digest = b[signHeaderLen+keyIDLen:]
	if len(r.digest) != r.hash.Size() {
		return r, fmt.Errorf("a %v digest of %d bytes, want %d", r.hash, len(r.digest), r.hash.Size())
	}
	return r, nil
}

// signResponse is a parsed response: a signature, or the monitor's reason for refusing.
type signResponse struct {
	id  uint32
	sig []byte
	err string
}

func encodeSignResponse(r signResponse) []byte {
	b := make([]byte, 0, MaxSignResponse)
	status, payload := byte(signStatusOK), r.sig
	if r.err != "" || len(r.sig) == 0 {
		status, payload = signStatusError, []byte(printable(r.err, MaxSignPayload))
	}
	b = append(b, signVersion, status)
	b = binary.BigEndian.AppendUint32(b, r.id)
	return append(b, payload...)
}

// printable makes s a non-empty, valid UTF-8 text without control characters, at most n bytes.
func printable(s string, n int) string {
	var out []rune
	size := 0
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == utf8.RuneError {
			c = '?'
		}
		if size+utf8.RuneLen(c) > n {
			break
		}
		size += utf8.RuneLen(c)
		out = append(out, c)
	}
	if len(out) == 0 {
		return "refused"
	}
	return string(out)
}

// parseSignResponse parses the monitor's answer.
func parseSignResponse(b []byte) (signResponse, error) {
	var r signResponse
	if len(b) <= signHeaderLen {
		return r, fmt.Errorf("an answer of %d bytes is too short", len(b))
	}
	if len(b) > MaxSignResponse {
		return r, fmt.Errorf("an answer of %d bytes is longer than %d", len(b), MaxSignResponse)
	}
	if b[0] != signVersion {
		return r, fmt.Errorf("protocol version %d, want %d", b[0], signVersion)
	}
	r.id = binary.BigEndian.Uint32(b[2:6])
	payload := b[signHeaderLen:]
	switch b[1] {
	case signStatusOK:
		r.sig = bytes.Clone(payload)
	case signStatusError:
		if !utf8.Valid(payload) || printable(string(payload), MaxSignPayload) != string(payload) {
			return r, errors.New("an error answer that is not printable text")
		}
		r.err = string(payload)
	default:
		return r, fmt.Errorf("status %d, want 0 or 1", b[1])
	}
	return r, nil
}

// keyIDOf names a public key: the SHA-256 of its SubjectPublicKeyInfo.
func keyIDOf(pub crypto.PublicKey) ([keyIDLen]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [keyIDLen]byte{}, err
	}
	return sha256.Sum256(der), nil
}

// checkP256 accepts an ECDSA P-256 public key, the only kind the signer serves.
func checkP256(pub crypto.PublicKey) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return fmt.Errorf("a %T key: the remote signer serves ECDSA P-256 keys only", pub)
	}
	return nil
}

// heldKey is an identity's key, held by the monitor, and the end of its certificate's
// validity: the monitor signs with it until then, not after.
type heldKey struct {
	id       [keyIDLen]byte
	key      crypto.Signer
	notAfter time.Time
}

func newHeldKey(cert tls.Certificate) (*heldKey, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("the identity has no certificate")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("the identity's certificate: %w", err)
		}
	}
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("the identity's key (%T) cannot sign", cert.PrivateKey)
	}
	if err := checkP256(leaf.PublicKey); err != nil {
		return nil, err
	}
	if eq, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(leaf.PublicKey) {
		return nil, errors.New("the identity's key does not match its certificate")
	}
	id, err := keyIDOf(leaf.PublicKey)
	if err != nil {
		return nil, err
	}
	return &heldKey{id: id, key: key, notAfter: leaf.NotAfter}, nil
}

// SignStats counts the monitor's answers to the broker's signing requests.
type SignStats struct {
	Signed  uint64 // signatures made
	Limited uint64 // refused by the rate limit
	Refused uint64 // refused otherwise: malformed, oversized, for a key the monitor does not hold or whose certificate has expired, or the key failed
}

// keyServer is the monitor's half: it holds the identity's key and signs for the broker.
type keyServer struct {
	log *slog.Logger
	now func() time.Time
	// after is the clock's timer: a broker's serve loop waits on it after each refusal.
	after func(time.Duration) <-chan time.Time

	mu sync.Mutex
	// current is the identity the broker has acknowledged; pending the one being handed over
	// (both may be used while the broker switches: its handshakes in flight, its next ones).
	current, pending *heldKey
	tokens           float64
	refilled         time.Time
	stats            SignStats
	// Log lines about refusals are limited too: one per logEvery, saying how many were not
	// logged.
	lastLog  time.Time
	unlogged uint64
}

const logEvery = 10 * time.Second

// refusalPause is how long a broker's serve loop waits after answering it with a refusal.
const refusalPause = time.Second / SignRate

func newKeyServer(log *slog.Logger, now func() time.Time, after func(time.Duration) <-chan time.Time) *keyServer {
	return &keyServer{log: log, now: now, after: after, tokens: SignBurst, refilled: now()}
}

// offer makes k signable, before the broker is given its certificate.
func (s *keyServer) offer(k *heldKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = k
}

// commit makes k the only signable key, once the broker has taken its certificate.
func (s *keyServer) commit(k *heldKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = k
	if s.pending != nil && s.pending.id == k.id {
		s.pending = nil
	}
}

func (s *keyServer) snapshot() SignStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// refuse counts a refusal and logs it, or counts it as not logged. It logs after releasing
// s.mu, which it must not be holding.
func (s *keyServer) refuse(limited bool, msg string, args ...any) {
	s.mu.Lock()
	if limited {
		s.stats.Limited++
	} else {
		s.stats.Refused++
	}
	now := s.now()
	if d := now.Sub(s.lastLog); !s.lastLog.IsZero() && d >= 0 && d < logEvery {
		s.unlogged++
		s.mu.Unlock()
		return
	}
	unlogged, stats := s.unlogged, s.stats
	s.lastLog, s.unlogged = now, 0
	s.mu.Unlock()
	s.log.Warn(msg, append(args, "refusals_not_logged", unlogged, "signed", stats.Signed,
		"rate_limited", stats.Limited, "refused", stats.Refused)...)
}

// take picks the held key req names and takes a token of the rate limit for it, or says why
// not: refused (a key not held, or past its certificate's end) or limited (the rate limit).
func (s *keyServer) take(req signRequest) (k *heldKey, limited bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.current != nil && s.current.id == req.keyID:
		k = s.current
	case s.pending != nil && s.pending.id == req.keyID:
		k = s.pending
	default:
		return nil, false, errors.New("not the key of the agent's current certificate")
	}
	now := s.now()
	if now.After(k.notAfter) {
		return nil, false, fmt.Errorf("the agent's certificate expired at %s: its key signs nothing after that (now %s)",
			k.notAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if el := now.Sub(s.refilled); el > 0 {
		s.tokens = min(SignBurst, s.tokens+el.Seconds()*SignRate)
	}
	s.refilled = now
	if s.tokens < 1 {
		return nil, true, fmt.Errorf("rate limit: at most %d signatures a second, %d at once", SignRate, SignBurst)
	}
	s.tokens--
	return k, false, nil
}

// sign answers one request: the signature, or why not.
func (s *keyServer) sign(req signRequest) ([]byte, error) {
	k, limited, err := s.take(req)
	if err != nil {
		if limited {
			s.refuse(true, "cloud broker: refused to sign: rate limit", "rate_per_second", SignRate, "burst", SignBurst)
		} else {
			s.refuse(false, "cloud broker: refused to sign", "error", err)
		}
		return nil, err
	}
	sig, err := k.key.Sign(rand.Reader, req.digest, req.hash)
	if err != nil {
		err = fmt.Errorf("signing: %w", err)
		s.refuse(false, "cloud broker: the agent's key failed to sign", "error", err)
		return nil, err
	}
	s.mu.Lock()
	s.stats.Signed++
	n := s.stats.Signed
	s.mu.Unlock()
	s.log.Debug("cloud broker: signed for its TLS handshake", "hash", req.hash.String(), "signatures", n)
	return sig, nil
}

// serve answers the broker's requests on c until it closes or ctx ends, one at a time. A
// zero-length datagram reads as the end, as the broker's exit does. After a refusal it waits
// refusalPause before reading the next request: only this broker's loop waits.
func (s *keyServer) serve(ctx context.Context, c *net.UnixConn) {
	buf := make([]byte, MaxSignRequest+1)
	for {
		n, _, flags, _, err := c.ReadMsgUnix(buf, nil)
		if err != nil {
			return // the broker exited, or the monitor closed its end
		}
		resp := signResponse{id: requestID(buf[:n])}
		resp.sig, err = s.answer(buf[:n], flags&syscall.MSG_TRUNC != 0)
		if err != nil {
			resp.err = err.Error()
		}
		_ = c.SetWriteDeadline(time.Now().Add(signTimeout))
		if _, err := c.Write(encodeSignResponse(resp)); err != nil {
			s.log.Warn("cloud broker: cannot answer its signing request; no more signatures for this broker process", "error", err)
			return
		}
		if resp.err != "" {
			select {
			case <-s.after(refusalPause):
			case <-ctx.Done():
				return
			}
		}
	}
}

// answer parses one request and signs it, or says why not.
func (s *keyServer) answer(b []byte, truncated bool) ([]byte, error) {
	if truncated || len(b) > MaxSignRequest {
		err := fmt.Errorf("a request longer than %d bytes", MaxSignRequest)
		s.refuse(false, "cloud broker: an oversized signing request", "error", err)
		return nil, err
	}
	req, err := parseSignRequest(b)
	if err != nil {
		s.refuse(false, "cloud broker: a malformed signing request", "error", err)
		return nil, err
	}
	return s.sign(req)
}

// signerConn is the broker's end of the socket pair, shared by its identities' signers.
type signerConn struct {
	mu   sync.Mutex
	c    *net.UnixConn
	next uint32
	buf  [MaxSignResponse + 1]byte
}

func newSignerConn(f *os.File) (*signerConn, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("the signer descriptor is a %T, not a Unix socket", c)
	}
	return &signerConn{c: uc}, nil
}

func (sc *signerConn) sign(hash crypto.Hash, keyID [keyIDLen]byte, digest []byte) ([]byte, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.next++
	req, err := encodeSignRequest(signRequest{id: sc.next, hash: hash, keyID: keyID, digest: digest})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(signTimeout)
	_ = sc.c.SetDeadline(deadline)
	if _, err := sc.c.Write(req); err != nil {
		return nil, fmt.Errorf("asking the monitor to sign: %w", err)
	}
	for {
		n, _, flags, _, err := sc.c.ReadMsgUnix(sc.buf[:], nil)
		if err != nil {
			return nil, fmt.Errorf("the monitor's signature: %w", err)
		}
		if flags&syscall.MSG_TRUNC != 0 {
			return nil, fmt.Errorf("the monitor's answer is longer than %d bytes", MaxSignResponse)
		}
		resp, err := parseSignResponse(sc.buf[:n])
		if err != nil {
			return nil, fmt.Errorf("the monitor's answer: %w", err)
		}
		if resp.id != sc.next {
			continue // the answer to a request given up on
		}
		if resp.err != "" {
			return nil, fmt.Errorf("the monitor refused to sign: %s", resp.err)
		}
		return resp.sig, nil
	}
}

// remoteSigner is the broker's private key for an identity: it holds none, and asks the
// monitor.
type remoteSigner struct {
	conn  *signerConn
	pub   *ecdsa.PublicKey
	keyID [keyIDLen]byte
}

func newRemoteSigner(conn *signerConn, pub crypto.PublicKey) (*remoteSigner, error) {
	if err := checkP256(pub); err != nil {
		return nil, err
	}
	id, err := keyIDOf(pub)
	if err != nil {
		return nil, err
	}
	return &remoteSigner{conn: conn, pub: pub.(*ecdsa.PublicKey), keyID: id}, nil
}

func (r *remoteSigner) Public() crypto.PublicKey { return r.pub }

// Sign asks the monitor for an ECDSA signature of digest, and checks it.
func (r *remoteSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if r.conn == nil {
		return nil, errors.New("no signer: the broker was started without the monitor's signer")
	}
	sig, err := r.conn.sign(opts.HashFunc(), r.keyID, digest)
	if err != nil {
		return nil, err
	}
	if !ecdsa.VerifyASN1(r.pub, digest, sig) {
		return nil, errors.New("the monitor's signature does not verify with the certificate's key")
	}
	return sig, nil
}

// clientSignatureSchemes are what the broker offers for client authentication: what the
// monitor signs (SHA-256 and SHA-384) with a P-256 key.
var clientSignatureSchemes = []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384}
