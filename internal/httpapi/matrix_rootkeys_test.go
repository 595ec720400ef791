package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

// Builders for the detached root rotation's routes (docs/UPDATE-METADATA.md).

// publicPEM is a PKIX PEM public key.
func (b *buildCtx) publicPEM(k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		b.t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// prepareRootRequest asks for a rotation to a fresh key the caller keeps.
func prepareRootRequest(b *buildCtx) request {
	b.image() // the tenant has an image repository
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.t.Fatal(err)
	}
	return request{path: "/v1/tenants/" + b.f.id + "/update-keys/root/prepare",
		body: v1.UpdateRootPrepare{PublicKeysPEM: []string{b.publicPEM(k)}, Threshold: 1}}
}

// completeRootRequest is a detached renewal: the tenant's current root key (online) as the new
// key too, its signatures made here; a success leaves the key online and current.
func completeRootRequest(b *buildCtx) request {
	b.image()
	blk, _ := pem.Decode([]byte(b.rootKey(false)))
	parsed, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		b.t.Fatal(err)
	}
	k := parsed.(*ecdsa.PrivateKey)
	var prepared v1.UpdateRootPrepared
	b.e.must(b.f.admin, "POST", "/v1/tenants/"+b.f.id+"/update-keys/root/prepare",
		v1.UpdateRootPrepare{PublicKeysPEM: []string{b.publicPEM(k)}, Threshold: 1}, 200, &prepared)
	req := v1.UpdateRootComplete{Roots: prepared.Roots}
	for _, r := range prepared.Roots {
		id, sig, err := tufrepo.SignRoot(r.Root, k)
		if err != nil {
			b.t.Fatal(err)
		}
		req.Signatures = append(req.Signatures, v1.RootSignature{Repository: r.Repository, KeyID: id, Sig: hex.EncodeToString(sig)})
	}
	return request{path: "/v1/tenants/" + b.f.id + "/update-keys/root/complete", body: req}
}
