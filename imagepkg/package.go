package imagepkg

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/rampart-iot/rampart/internal/strictjson"
)

// Package is an image package opened for reading.
type Package struct {
	// Metadata is the metadata as parsed and validated by Open. It is UNTRUSTED until Verify
	// succeeds.
	Metadata *Metadata

	r          io.ReaderAt
	metadata   []byte // the signed metadata, as in the envelope
	sigs       []dsse.Signature
	payloadOff int64
}

// Signature is one signature in a package, as the package names it: nothing about it is
// verified.
type Signature struct {
	KeyID string `json:"keyid"`
	// Development is true if KeyID is the development key's.
	Development bool `json:"development"`
}

// wireEnvelope is the DSSE envelope as decoded, before validation.
type wireEnvelope struct {
	PayloadType *string          `json:"payloadType"`
	Payload     *string          `json:"payload"`
	Signatures  *[]wireSignature `json:"signatures"`
}

type wireSignature struct {
	KeyID *string `json:"keyid"`
	Sig   *string `json:"sig"`
}

// Open reads and checks the header, the envelope and the metadata of the package in r, which is
// size bytes long, without reading the payload. It checks that the payload is as long as the
// metadata says, but neither the signatures (Verify) nor the payload's digest (VerifyPayload).
// Errors are *Error naming the region at fault.
func Open(r io.ReaderAt, size int64) (*Package, error) {
	if size < int64(len(Magic)) {
		return nil, &Error{Region: RegionMagic, Err: fmt.Errorf("%w: the file is %d bytes", ErrNotPackage, size)}
	}
	var hdr [HeaderSize]byte
	n, err := r.ReadAt(hdr[:min(int64(HeaderSize), size)], 0)
	if n < len(Magic) {
		return nil, errorf(RegionMagic, "reading the header: %v", err)
	}
	if string(hdr[:len(Magic)]) != Magic {
		return nil, &Error{Region: RegionMagic, Err: fmt.Errorf("%w: it starts %q, not %q", ErrNotPackage, hdr[:len(Magic)], Magic)}
	}
	if size < int64(HeaderSize) || n < HeaderSize {
		return nil, errorf(RegionLength, "the file ends inside the envelope length field")
	}
	envLen := int64(binary.BigEndian.Uint32(hdr[len(Magic):]))
	switch {
	case envLen == 0:
		return nil, errorf(RegionLength, "the envelope length is 0")
	case envLen > MaxEnvelopeSize:
		return nil, errorf(RegionLength, "the envelope length %d is over the limit of %d", envLen, MaxEnvelopeSize)
	case int64(HeaderSize)+envLen > size:
		return nil, errorf(RegionLength, "the envelope length %d runs past the end of the %d-byte file", envLen, size)
	}
	env := make([]byte, envLen)
	if _, err := r.ReadAt(env, int64(HeaderSize)); err != nil {
		return nil, errorf(RegionEnvelope, "reading it: %v", err)
	}
	p := &Package{r: r, payloadOff: int64(HeaderSize) + envLen}
	if err := p.parseEnvelope(env); err != nil {
		return nil, err
	}
	if p.Metadata, err = parseMetadata(p.metadata); err != nil {
		return nil, &Error{Region: RegionMetadata, Err: err}
	}
	switch have, want := size-p.payloadOff, p.Metadata.Payload.Size; {
	case have < want:
		return nil, errorf(RegionPayload, "truncated: the file holds %d bytes of payload; the metadata says %d", have, want)
	case have > want:
		return nil, errorf(RegionPayload, "%d bytes of trailing data after the %d-byte payload", have-want, want)
	}
	return p, nil
}

// parseEnvelope checks the envelope strictly and keeps its metadata and signatures.
func (p *Package) parseEnvelope(data []byte) error {
	var w wireEnvelope
	if err := strictjson.Decode(data, &w); err != nil {
		return &Error{Region: RegionEnvelope, Err: err}
	}
	switch {
	case w.PayloadType == nil:
		return errorf(RegionEnvelope, "payloadType: is required")
	case w.Payload == nil:
		return errorf(RegionEnvelope, "payload: is required")
	case w.Signatures == nil:
		return errorf(RegionEnvelope, "signatures: is required")
	case *w.PayloadType != PayloadType:
		return errorf(RegionPayloadType, "%q is not %q", truncate(*w.PayloadType), PayloadType)
	}
	// Strict base64: every change to the encoded text changes the decoded bytes.
	md, err := base64.StdEncoding.Strict().DecodeString(*w.Payload)
	if err != nil {
		return errorf(RegionEnvelope, "payload: not standard base64: %v", err)
	}
	if len(md) == 0 {
		return errorf(RegionMetadata, "empty")
	}
	p.metadata = md
	sigs := *w.Signatures
	if len(sigs) == 0 {
		return errorf(RegionSignature, "the package is not signed")
	}
	if len(sigs) > MaxSignatures {
		return errorf(RegionSignature, "%d signatures; the limit is %d", len(sigs), MaxSignatures)
	}
	seen := map[string]int{}
	for i, s := range sigs {
		switch {
		case s.KeyID == nil || s.Sig == nil:
			return errorf(RegionSignature, "signature %d: keyid and sig are required", i+1)
		case !isDigest(*s.KeyID):
			return errorf(RegionSignature, "signature %d: keyid %q is not 64 lower-case hex digits", i+1, truncate(*s.KeyID))
		}
		if j, dup := seen[*s.KeyID]; dup {
			return errorf(RegionSignature, "signatures %d and %d are by the same key %s", j+1, i+1, *s.KeyID)
		}
		seen[*s.KeyID] = i
		raw, err := base64.StdEncoding.Strict().DecodeString(*s.Sig)
		if err != nil {
			return errorf(RegionSignature, "signature %d (keyid %s): not standard base64: %v", i+1, *s.KeyID, err)
		}
		if len(raw) == 0 || len(raw) > MaxSignatureSize {
			return errorf(RegionSignature, "signature %d (keyid %s) is %d bytes; want 1 to %d", i+1, *s.KeyID, len(raw), MaxSignatureSize)
		}
		p.sigs = append(p.sigs, dsse.Signature{KeyID: *s.KeyID, Sig: *s.Sig})
	}
	return nil
}

// Signatures returns the signatures the package carries, unverified.
func (p *Package) Signatures() []Signature {
	out := make([]Signature, len(p.sigs))
	for i, s := range p.sigs {
		out[i] = Signature{KeyID: s.KeyID, Development: s.KeyID == DevelopmentKeyID}
	}
	return out
}

// Verification is the outcome of a successful Verify.
type Verification struct {
	// KeyIDs are the trusted keys whose signatures verified, in the envelope's order.
	KeyIDs []string
	// DevelopmentOnly is true when the development key is the only trusted key that signed:
	// such a package is for devices in development mode only.
	DevelopmentOnly bool
}

// Verify checks the package's signatures against trusted, which must all be ECDSA P-256 public
// keys: at least threshold distinct trusted keys must have signed the metadata. Key IDs in the
// package only pick which trusted key to try; a signature counts only if it verifies with that
// key. A signature that names a trusted key but does not verify is an error even when others
// meet the threshold, since the package has been tampered with. Verify also refuses a package
// signed by the development key alone whose metadata does not say "development": true.
func (p *Package) Verify(trusted []crypto.PublicKey, threshold int) (*Verification, error) {
	var verifiers []dsse.Verifier
	ids := map[string]bool{}
	for i, k := range trusted {
		pub, err := p256(k)
		if err != nil {
			return nil, fmt.Errorf("imagepkg: trusted key %d: %w", i+1, err)
		}
		id, err := KeyID(pub)
		if err != nil {
			return nil, fmt.Errorf("imagepkg: trusted key %d: %w", i+1, err)
		}
		if !ids[id] {
			ids[id] = true
			verifiers = append(verifiers, &verifier{pub: pub, keyID: id})
		}
	}
	if threshold < 1 || threshold > len(verifiers) {
		return nil, fmt.Errorf("imagepkg: threshold %d with %d distinct trusted keys", threshold, len(verifiers))
	}
	ev, err := dsse.NewMultiEnvelopeVerifier(threshold, verifiers...)
	if err != nil {
		return nil, fmt.Errorf("imagepkg: %w", err)
	}
	env := &dsse.Envelope{
		PayloadType: PayloadType,
		Payload:     base64.StdEncoding.EncodeToString(p.metadata),
		Signatures:  slices.Clone(p.sigs),
	}
	accepted, body, verr := ev.VerifyAndDecode(context.Background(), env)
	good := map[string]bool{}
	for _, a := range accepted {
		good[a.KeyID] = true
	}
	for i, s := range p.sigs {
		if ids[s.KeyID] && !good[s.KeyID] {
			return nil, errorf(RegionSignature, "signature %d, by trusted key %s, does not verify over the metadata", i+1, s.KeyID)
		}
	}
	if verr != nil || len(good) < threshold {
		return nil, &Error{Region: RegionSignature, Err: fmt.Errorf("%w: %d of the package's %d signatures are by trusted keys and verify; %d needed",
			ErrUntrusted, len(good), len(p.sigs), threshold)}
	}
	if !bytes.Equal(body, p.metadata) {
		return nil, errorf(RegionSignature, "the verified payload is not the metadata")
	}
	v := &Verification{DevelopmentOnly: true}
	for _, s := range p.sigs {
		if good[s.KeyID] {
			v.KeyIDs = append(v.KeyIDs, s.KeyID)
			v.DevelopmentOnly = v.DevelopmentOnly && s.KeyID == DevelopmentKeyID
		}
	}
	if v.DevelopmentOnly && !p.Metadata.Development {
		return nil, errorf(RegionMetadata, "development is false, but the only trusted signature is the development key's")
	}
	return v, nil
}

// Payload returns a reader of the payload, which is untrusted until its digest is checked.
func (p *Package) Payload() *io.SectionReader {
	return io.NewSectionReader(p.r, p.payloadOff, p.Metadata.Payload.Size)
}

// copyBufferSize is the buffer payloads are streamed through.
const copyBufferSize = 256 << 10

// VerifyPayload streams the payload through SHA-256 and checks its size and digest against the
// metadata. The check means something only once Verify has succeeded.
func (p *Package) VerifyPayload() error {
	h := sha256.New()
	n, err := io.CopyBuffer(h, p.Payload(), make([]byte, copyBufferSize))
	if err != nil {
		return errorf(RegionPayload, "reading it: %v", err)
	}
	return p.checkDigest(h, n)
}

func (p *Package) checkDigest(h hash.Hash, n int64) error {
	if n != p.Metadata.Payload.Size {
		return errorf(RegionPayload, "read %d bytes; the metadata says %d", n, p.Metadata.Payload.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.Metadata.Payload.SHA256 {
		return &Error{Region: RegionPayload, Err: fmt.Errorf("%w: sha256 %s, want %s", ErrPayloadDigest, got, p.Metadata.Payload.SHA256)}
	}
	return nil
}

// Sign adds a signature by s, an ECDSA P-256 key, over the package's metadata: the service signs
// a package this way when it accepts it. It does not check the signatures already there; verify
// them first. Write the result with WriteTo.
func (p *Package) Sign(s crypto.Signer) error {
	sg, err := newSigner(s)
	if err != nil {
		return err
	}
	for _, old := range p.sigs {
		if old.KeyID == sg.keyID {
			return fmt.Errorf("imagepkg: the package is already signed by key %s", sg.keyID)
		}
	}
	if len(p.sigs) >= MaxSignatures {
		return fmt.Errorf("imagepkg: the package already has %d signatures, the limit", len(p.sigs))
	}
	env, err := signEnvelope(p.metadata, sg)
	if err != nil {
		return err
	}
	p.sigs = append(p.sigs, env.Signatures...)
	return nil
}

// WriteTo writes the package, with any signatures Sign added, to w.
func (p *Package) WriteTo(w io.Writer) (int64, error) {
	env, err := marshalEnvelope(p.metadata, p.sigs)
	if err != nil {
		return 0, err
	}
	n, err := writeHeader(w, env)
	if err != nil {
		return n, err
	}
	m, err := io.CopyBuffer(w, p.Payload(), make([]byte, copyBufferSize))
	return n + m, err
}

// Write writes a new package to w: meta, which must be valid (Metadata.Validate), signed by each
// of signers (ECDSA P-256 keys), and the payload read from payload, which must be exactly
// meta.Payload.Size bytes with SHA-256 meta.Payload.SHA256. meta.Development must be true
// exactly when the development key is the only signer. If the payload does not match, Write
// fails after writing it, and w holds a package that Open or VerifyPayload rejects.
func Write(w io.Writer, meta *Metadata, payload io.Reader, signers ...crypto.Signer) error {
	if len(signers) == 0 {
		return errors.New("imagepkg: no signing key")
	}
	if len(signers) > MaxSignatures {
		return fmt.Errorf("imagepkg: %d signing keys; the limit is %d", len(signers), MaxSignatures)
	}
	var sgs []dsse.Signer
	devOnly := true
	for _, s := range signers {
		sg, err := newSigner(s)
		if err != nil {
			return fmt.Errorf("imagepkg: %w", err)
		}
		devOnly = devOnly && sg.keyID == DevelopmentKeyID
		sgs = append(sgs, sg)
	}
	if devOnly != meta.Development {
		if devOnly {
			return errors.New("imagepkg: a package signed only with the development key must say development: true")
		}
		return errors.New("imagepkg: development: true is only for packages signed with the development key alone")
	}
	md, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	if _, err := parseMetadata(md); err != nil {
		return &Error{Region: RegionMetadata, Err: err}
	}
	env, err := signEnvelope(md, sgs...)
	if err != nil {
		return err
	}
	envJSON, err := marshalEnvelope(md, env.Signatures)
	if err != nil {
		return err
	}
	if _, err := writeHeader(w, envJSON); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(payload, meta.Payload.Size+1), make([]byte, copyBufferSize))
	if err != nil {
		return err
	}
	if n != meta.Payload.Size {
		return errorf(RegionPayload, "the payload is not the %d bytes the metadata says", meta.Payload.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != meta.Payload.SHA256 {
		return &Error{Region: RegionPayload, Err: fmt.Errorf("%w: the payload changed while it was packed", ErrPayloadDigest)}
	}
	return nil
}

// signEnvelope signs metadata with signers through DSSE.
func signEnvelope(metadata []byte, signers ...dsse.Signer) (*dsse.Envelope, error) {
	es, err := dsse.NewEnvelopeSigner(signers...)
	if err != nil {
		return nil, fmt.Errorf("imagepkg: %w", err)
	}
	env, err := es.SignPayload(context.Background(), PayloadType, metadata)
	if err != nil {
		return nil, fmt.Errorf("imagepkg: signing: %w", err)
	}
	return env, nil
}

// marshalEnvelope encodes the envelope: compact JSON, fields in the order of the DSSE
// specification, standard base64.
func marshalEnvelope(metadata []byte, sigs []dsse.Signature) ([]byte, error) {
	env, err := json.Marshal(dsse.Envelope{
		PayloadType: PayloadType,
		Payload:     base64.StdEncoding.EncodeToString(metadata),
		Signatures:  sigs,
	})
	if err != nil {
		return nil, err
	}
	if len(env) > MaxEnvelopeSize {
		return nil, fmt.Errorf("imagepkg: the envelope is %d bytes; the limit is %d", len(env), MaxEnvelopeSize)
	}
	return env, nil
}

func writeHeader(w io.Writer, env []byte) (int64, error) {
	var hdr [HeaderSize]byte
	copy(hdr[:], Magic)
	binary.BigEndian.PutUint32(hdr[len(Magic):], uint32(len(env)))
	n, err := w.Write(hdr[:])
	if err != nil {
		return int64(n), err
	}
	m, err := w.Write(env)
	return int64(n + m), err
}

// String describes the package in one line, for logs.
func (p *Package) String() string {
	var ids []string
	for _, s := range p.sigs {
		ids = append(ids, s.KeyID[:12])
	}
	return fmt.Sprintf("%s %s %s (component %s, image %s, signed by %s)", p.Metadata.Kind, p.Metadata.Name,
		p.Metadata.ImageVersion, p.Metadata.ComponentID, p.Metadata.ImageID, strings.Join(ids, ", "))
}
