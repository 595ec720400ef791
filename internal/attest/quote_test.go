package attest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// unmarshal wraps tpm2.Unmarshal, turning a panic on hostile input into an error.
func unmarshal[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](b []byte) (out *T, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("malformed: %v", r)
		}
	}()
	return tpm2.Unmarshal[T, P](b)
}

// goTPMQuote reads a quote as the verifier did before parseQuoteAttest: go-tpm's Unmarshal,
// then Marshal to prove the bytes canonical.
func goTPMQuote(b []byte) (*tpm2.TPMSAttest, *tpm2.TPMSQuoteInfo, bool) {
	a, err := unmarshal[tpm2.TPMSAttest](b)
	if err != nil || !bytes.Equal(tpm2.Marshal(a), b) || a.Magic != tpm2.TPMGeneratedValue || a.Type != tpm2.TPMSTAttestQuote {
		return nil, nil, false
	}
	q, err := a.Attested.Quote()
	if err != nil {
		return nil, nil, false
	}
	return a, q, true
}

// FuzzParseQuote holds parseQuoteAttest and parseQuoteSignature to go-tpm: what they accept,
// go-tpm reads to the same values, and a canonical quote go-tpm reads they accept.
func FuzzParseQuote(f *testing.F) {
	fx := newFixture(f)
	_, ev := fx.evidence()
	f.Add(ev.QuoteAttest, ev.QuoteSignature)
	f.Add(ev.QuoteAttest[:20], ev.QuoteSignature[:3])
	f.Fuzz(func(t *testing.T, b, sigBytes []byte) {
		a, q, ok := goTPMQuote(b)
		mine, fl := parseQuoteAttest(b)
		switch {
		case fl == nil && !ok:
			t.Fatalf("parseQuoteAttest accepted %x, which go-tpm refuses or finds non-canonical", b)
		case fl != nil && ok && len(q.PCRSelect.PCRSelections) <= maxPCRBanks:
			t.Fatalf("parseQuoteAttest refused %x, a canonical quote: %v", b, fl)
		case fl == nil:
			if !bytes.Equal(mine.extraData, a.ExtraData.Buffer) || !bytes.Equal(mine.quote.PCRDigest.Buffer, q.PCRDigest.Buffer) ||
				fmt.Sprint(mine.quote.PCRSelect) != fmt.Sprint(q.PCRSelect) {
				t.Fatalf("parseQuoteAttest read %x as %+v; go-tpm as %+v, %+v", b, mine, a, q)
			}
		}
		sig, err := parseQuoteSignature(sigBytes)
		if err != nil {
			return
		}
		g, gerr := unmarshal[tpm2.TPMTSignature](sigBytes)
		if gerr != nil || !bytes.Equal(tpm2.Marshal(g), sigBytes) {
			t.Fatalf("parseQuoteSignature accepted %x, which go-tpm refuses or finds non-canonical", sigBytes)
		}
		switch sig.alg {
		case tpm2.TPMAlgECDSA:
			e, err := g.Signature.ECDSA()
			if err != nil || e.Hash != sig.hash || !bytes.Equal(e.SignatureR.Buffer, sig.r) || !bytes.Equal(e.SignatureS.Buffer, sig.s) {
				t.Fatalf("ECDSA signature %x read differently", sigBytes)
			}
		case tpm2.TPMAlgRSASSA:
			r, err := g.Signature.RSASSA()
			if err != nil || r.Hash != sig.hash || !bytes.Equal(r.Sig.Buffer, sig.rsa) {
				t.Fatalf("RSASSA signature %x read differently", sigBytes)
			}
		}
	})
}
