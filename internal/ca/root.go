package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// EnsureRoot makes a service root (ECDSA P-256, self-signed, RootLifetime) unless one that is
// not revoked lasts at least TenantLifetime more, so that it can sign a full-length tenant CA.
// An older root stays in the store, and in the bundles of the tenant CAs it signed, until it
// expires. A root whose key is offline still counts. It is idempotent.
func (a *Authority) EnsureRoot(ctx context.Context) error {
	now := a.clock().Truncate(time.Second)
	created := false
	err := a.store.Update(ctx, func(tx store.Tx) error {
		roots, err := tx.ListCACertificates(ctx, "")
		if err != nil {
			return err
		}
		if signingRoot(roots, now.Add(TenantLifetime)) >= 0 {
			return nil
		}
		rec, err := a.newRoot(now)
		if err != nil {
			return err
		}
		if err := tx.CreateCACertificate(ctx, rec); err != nil {
			return err
		}
		created = true
		return nil
	})
	if created {
		a.invalidate("")
	}
	if err != nil {
		return fmt.Errorf("service root CA: %w", err)
	}
	return nil
}

func (a *Authority) newRoot(now time.Time) (store.CACertificate, error) {
	id, err := a.ids.New()
	if err != nil {
		return store.CACertificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), a.rand)
	if err != nil {
		return store.CACertificate{}, fmt.Errorf("generating the root key: %w", err)
	}
	serial, err := a.serial()
	if err != nil {
		return store.CACertificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"Rampart"},
			CommonName:   "Rampart service root CA",
			SerialNumber: id,
		},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(RootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(a.rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return store.CACertificate{}, fmt.Errorf("signing the root: %w", err)
	}
	sealed, err := a.seal(id, key)
	if err != nil {
		return store.CACertificate{}, err
	}
	return store.CACertificate{ID: id, CertDER: der, KeyCiphertext: sealed,
		NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter, ActiveFrom: now, CreatedAt: a.clock()}, nil
}

// ExportRoot takes the service root's key offline. It finds the newest root whose key is in
// the store, hands its certificate and PKCS #8 private key (both PEM) to save, and deletes the
// sealed key only if save returns nil, in the same transaction: a key that save failed to keep
// is never lost. save runs inside a store write transaction, so it must be quick and must not
// call the store. While the key is offline EnsureTenant cannot make tenant CAs
// (ErrRootOffline); existing tenant CAs keep signing. ImportRoot brings the key back.
func (a *Authority) ExportRoot(ctx context.Context, save func(certPEM, keyPEM []byte) error) error {
	if save == nil {
		return fmt.Errorf("%w: ExportRoot needs a save function", ErrInvalid)
	}
	now := a.clock()
	err := a.store.Update(ctx, func(tx store.Tx) error {
		roots, err := tx.ListCACertificates(ctx, "")
		if err != nil {
			return err
		}
		best := -1
		for i, r := range roots {
			if usable(r, now) && r.KeyCiphertext != nil && (best < 0 || !r.NotAfter.Before(roots[best].NotAfter)) {
				best = i
			}
		}
		if best < 0 {
			if len(roots) == 0 {
				return ErrNoRoot
			}
			return ErrRootOffline
		}
		r := roots[best]
		cert, err := x509.ParseCertificate(r.CertDER)
		if err != nil {
			return fmt.Errorf("root CA %s: %w: %w", r.ID, ErrCorrupt, err)
		}
		key, err := a.unseal(r.ID, r.KeyCiphertext, cert)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		clear(keyDER)
		err = save(PEM(cert), keyPEM)
		clear(keyPEM)
		if err != nil {
			return fmt.Errorf("saving the root key: %w", err)
		}
		r.KeyCiphertext = nil
		return tx.UpdateCACertificate(ctx, r)
	})
	a.invalidate("")
	if err != nil {
		return fmt.Errorf("exporting the root key: %w", err)
	}
	return nil
}

// ImportRoot brings an exported root key back online: it seals the key (PEM, PKCS #8 or SEC 1)
// for the stored root certificate it belongs to. It fails with ErrKeyMismatch if the key
// belongs to no stored root, and does nothing if that root's key is already online.
func (a *Authority) ImportRoot(ctx context.Context, keyPEM []byte) error {
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return fmt.Errorf("importing the root key: %w", err)
	}
	err = a.store.Update(ctx, func(tx store.Tx) error {
		roots, err := tx.ListCACertificates(ctx, "")
		if err != nil {
			return err
		}
		for _, r := range roots {
			cert, err := x509.ParseCertificate(r.CertDER)
			if err != nil {
				return fmt.Errorf("root CA %s: %w: %w", r.ID, ErrCorrupt, err)
			}
			if !key.PublicKey.Equal(cert.PublicKey) {
				continue
			}
			if r.KeyCiphertext != nil {
				return nil
			}
			if r.KeyCiphertext, err = a.seal(r.ID, key); err != nil {
				return err
			}
			return tx.UpdateCACertificate(ctx, r)
		}
		return ErrKeyMismatch
	})
	a.invalidate("")
	if err != nil {
		return fmt.Errorf("importing the root key: %w", err)
	}
	return nil
}

func parseKeyPEM(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block in the key", ErrInvalid)
	}
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not a private key", ErrInvalid, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: the key is a %T, want ECDSA P-256", ErrInvalid, k)
	}
	return key, nil
}
