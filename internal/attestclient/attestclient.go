// Package attestclient is the device side of remote attestation: it asks the service for a
// nonce, answers the credential-activation challenge with the root of trust, makes fresh
// session keys, quotes the measured PCRs over the nonce and those keys, and, when the service
// passes the evidence, stores the certificates and keys it gets back. When the service names
// firmware PCRs and the root of trust keeps the firmware's measured-boot event log (a kernel
// TPM), it quotes those PCRs too and sends the log and the quoted PCR values with the quote.
//
// Session keys are ordinary software keys made for each attestation, so the TPM signs once per
// attestation and never per TLS connection. Certificates and keys are written together: they
// live in a directory reached through the symlink DIR/certs, which is replaced atomically, so a
// crash leaves either the old set or the new one.
//
// Trust: it trusts the service it is configured with (TLS against the given CA pool) and the
// root of trust; it checks that what comes back certifies the keys it sent.
package attestclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/attest"
	"github.com/rampart-iot/rampart/internal/eventlog"
	"github.com/rampart-iot/rampart/internal/rot"
)

// MaxResponse bounds what the agent reads from the service.
const MaxResponse = 1 << 20

// File names under Client.Dir.
const (
	CertsLink = "certs"     // symlink to the current certificate directory
	AgentCert = "agent.crt" // PEM leaf
	AgentKey  = "agent.key" // PEM PKCS#8 private key, mode 0600
	ChainFile = "chain.pem" // PEM: tenant CA then service root
)

// Client attests one device.
type Client struct {
	RoT      rot.RootOfTrust
	Log      *eventlog.Log
	PCRs     []int
	Server   string         // https://host:port
	RootCAs  *x509.CertPool // verifies the service; nil means the system roots
	DeviceID string
	Dir      string // where the certs symlink and directories live
	// Components lists app components that need their own certificate, besides the agent.
	Components []string
	Rand       io.Reader
	HTTP       *http.Client // default: one built from RootCAs, kept for the Client's life

	once sync.Once
	hc   *http.Client
}

// Error is a refusal by the service: the verifier's reason and message.
type Error struct {
	Status  int
	Code    string
	Reason  string
	Message string
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return e.Reason + ": " + e.Message
	}
	return e.Message
}

// httpClient returns the client for the service: one per Client, so connections (and TLS
// sessions) are reused across attestations.
func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	c.once.Do(func() {
		c.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12},
			IdleConnTimeout: 90 * time.Second,
		}}
	})
	return c.hc
}

func (c *Client) post(ctx context.Context, hc *http.Client, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(c.Server, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the Rampart service: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return err
	}
	if len(b) > MaxResponse {
		return fmt.Errorf("the service's response is larger than %d bytes", MaxResponse)
	}
	if resp.StatusCode/100 != 2 {
		var e v1.ErrorResponse
		if json.Unmarshal(b, &e) != nil || e.Error.Message == "" {
			return &Error{Status: resp.StatusCode, Message: fmt.Sprintf("HTTP %d from %s", resp.StatusCode, path)}
		}
		reason, _ := e.Error.Extra["reason"].(string)
		return &Error{Status: resp.StatusCode, Code: e.Error.Code, Reason: reason, Message: e.Error.Message}
	}
	return json.Unmarshal(b, out)
}

// Evidence answers a nonce: the activation secret if challenged, fresh session keys (the
// agent's and one per component), and a quote over the measured PCRs that binds the nonce and
// those keys. It returns the request to send and the private keys to keep.
func (c *Client) Evidence(ctx context.Context, nonce v1.AttestationNonce) (v1.AttestationRequest, map[string]*ecdsa.PrivateKey, error) {
	rnd := c.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	req := v1.AttestationRequest{DeviceID: c.DeviceID, Nonce: nonce.Nonce}
	if nonce.Activation != nil {
		secret, err := c.RoT.ActivateCredential(ctx, nonce.Activation.IDObject, nonce.Activation.EncryptedSecret)
		if err != nil {
			return req, nil, fmt.Errorf("answering the credential-activation challenge: %w", err)
		}
		req.ActivationSecret = secret
	}
	comps := append([]string{""}, c.Components...)
	keys := map[string]*ecdsa.PrivateKey{}
	var akeys []attest.Key
	for _, comp := range comps {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
		if err != nil {
			return req, nil, err
		}
		spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return req, nil, err
		}
		keys[comp] = k
		akeys = append(akeys, attest.Key{Component: comp, PublicKey: spki})
		req.Keys = append(req.Keys, v1.CertifyKey{Component: comp, PublicKey: spki})
	}
	pcrs := nonce.PCRs
	if len(pcrs) == 0 {
		pcrs = c.PCRs
	}
	fwlog, err := c.firmwareEventLog(ctx, nonce)
	if err != nil {
		return req, nil, err
	}
	qd := attest.QualifyingData(nonce.Nonce, akeys)
	if fwlog == nil {
		q, err := c.RoT.Quote(ctx, pcrs, qd)
		if err != nil {
			return req, nil, fmt.Errorf("quoting PCRs %v: %w", pcrs, err)
		}
		req.Quote = v1.Quote{Attest: q.Attest, Signature: q.Signature}
	} else {
		pcrs = append(append([]int(nil), pcrs...), nonce.FirmwarePCRs...)
		q, values, err := c.quoteWithValues(ctx, pcrs, qd)
		if err != nil {
			return req, nil, err
		}
		req.Quote = v1.Quote{Attest: q.Attest, Signature: q.Signature}
		req.FirmwareEventLog, req.PCRValues = fwlog, values
	}
	if req.EventLog, err = c.Log.Marshal(); err != nil {
		return req, nil, err
	}
	return req, keys, nil
}

// FirmwareLogReader is a root of trust that can hand over the firmware's measured-boot event
// log: tpmrot's kernel TPM device does. It returns nil when there is none.
type FirmwareLogReader interface {
	FirmwareEventLog(ctx context.Context) ([]byte, error)
}

// firmwareEventLog returns the firmware event log to send, or nil: only when the service asks
// for firmware PCRs and the root of trust has a log.
func (c *Client) firmwareEventLog(ctx context.Context, nonce v1.AttestationNonce) ([]byte, error) {
	fr, ok := c.RoT.(FirmwareLogReader)
	if !ok || len(nonce.FirmwarePCRs) == 0 {
		return nil, nil
	}
	b, err := fr.FirmwareEventLog(ctx)
	if err != nil {
		return nil, err
	}
	if len(b) > attest.MaxFirmwareEventLog {
		return nil, fmt.Errorf("the firmware event log is %d bytes, more than the %d the service takes", len(b), attest.MaxFirmwareEventLog)
	}
	return b, nil
}

// quoteWithValues quotes pcrs and reads their values, and checks that the values are the
// quoted ones; if a PCR changed in between, it tries again.
func (c *Client) quoteWithValues(ctx context.Context, pcrs []int, qualifyingData []byte) (*rot.Quote, map[int][]byte, error) {
	for range 3 {
		q, err := c.RoT.Quote(ctx, pcrs, qualifyingData)
		if err != nil {
			return nil, nil, fmt.Errorf("quoting PCRs %v: %w", pcrs, err)
		}
		values, err := c.RoT.ReadPCRs(ctx, pcrs)
		if err != nil {
			return nil, nil, fmt.Errorf("reading PCRs %v: %w", pcrs, err)
		}
		a, err := tpm2.Unmarshal[tpm2.TPMSAttest](q.Attest)
		if err != nil {
			return nil, nil, fmt.Errorf("the root of trust's quote: %w", err)
		}
		info, err := a.Attested.Quote()
		if err != nil {
			return nil, nil, fmt.Errorf("the root of trust's quote: %w", err)
		}
		if bytes.Equal(rot.PCRDigest(pcrs, values), info.PCRDigest.Buffer) {
			return q, values, nil
		}
	}
	return nil, nil, fmt.Errorf("PCRs %v kept changing while they were quoted and read", pcrs)
}

// Nonce asks the service for a nonce.
func (c *Client) Nonce(ctx context.Context) (v1.AttestationNonce, error) {
	var nonce v1.AttestationNonce
	err := c.post(ctx, c.httpClient(), "/v1/device/attestation/nonce", v1.AttestationNonceRequest{DeviceID: c.DeviceID}, &nonce)
	return nonce, err
}

// Send posts evidence and returns the service's answer.
func (c *Client) Send(ctx context.Context, req v1.AttestationRequest) (v1.AttestationResult, error) {
	var res v1.AttestationResult
	err := c.post(ctx, c.httpClient(), "/v1/device/attestation", req, &res)
	return res, err
}

// Result is a successful attestation.
type Result struct {
	OSRelease  string
	NotAfter   time.Time // of the agent's certificate
	RenewAfter time.Time
	ServerTime time.Time
}

// Attest runs one attestation and installs the certificates it yields.
func (c *Client) Attest(ctx context.Context) (*Result, error) {
	nonce, err := c.Nonce(ctx)
	if err != nil {
		return nil, err
	}
	req, keys, err := c.Evidence(ctx, nonce)
	if err != nil {
		return nil, err
	}
	res, err := c.Send(ctx, req)
	if err != nil {
		return nil, err
	}
	out := &Result{OSRelease: res.OSRelease, RenewAfter: res.RenewAfter, ServerTime: res.ServerTime}
	files := map[string][]byte{}
	for _, ic := range res.Certificates {
		k, ok := keys[ic.Component]
		if !ok {
			return nil, fmt.Errorf("the service certified component %q, which was not asked for", ic.Component)
		}
		leaf, err := parseCert(ic.Certificate)
		if err != nil {
			return nil, fmt.Errorf("certificate for %q: %w", ic.Component, err)
		}
		if !k.PublicKey.Equal(leaf.PublicKey) {
			return nil, fmt.Errorf("the certificate for %q does not certify the key sent", ic.Component)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		certName, keyName := AgentCert, AgentKey
		if ic.Component != "" {
			certName, keyName = "app-"+ic.Component+".crt", "app-"+ic.Component+".key"
		}
		files[certName] = []byte(ic.Certificate)
		files[keyName] = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if ic.Component == "" {
			files[ChainFile] = []byte(ic.Chain)
			out.NotAfter = leaf.NotAfter
		}
		delete(keys, ic.Component)
	}
	if len(keys) > 0 || out.NotAfter.IsZero() {
		return nil, errors.New("the service did not certify every key sent")
	}
	if err := install(c.Dir, files); err != nil {
		return nil, fmt.Errorf("installing the certificates: %w", err)
	}
	return out, nil
}

func parseCert(p string) (*x509.Certificate, error) {
	blk, _ := pem.Decode([]byte(p))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// install writes files into a new directory and atomically points DIR/certs at it.
func install(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	nd, err := os.MkdirTemp(dir, "certs.")
	if err != nil {
		return err
	}
	for name, b := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		if err := atomicfile.WriteFile(filepath.Join(nd, name), b, mode); err != nil {
			return err
		}
	}
	link := filepath.Join(dir, CertsLink)
	old, _ := os.Readlink(link)
	tmp := link + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(nd), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if old != "" && old != filepath.Base(nd) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// LoadCertificate loads the installed agent certificate and key for mutual TLS.
func LoadCertificate(dir string) (tls.Certificate, error) {
	base := filepath.Join(dir, CertsLink)
	pair, err := tls.LoadX509KeyPair(filepath.Join(base, AgentCert), filepath.Join(base, AgentKey))
	if err != nil {
		return tls.Certificate{}, err
	}
	chain, err := os.ReadFile(filepath.Join(base, ChainFile))
	if err != nil {
		return tls.Certificate{}, err
	}
	for rest := chain; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		pair.Certificate = append(pair.Certificate, blk.Bytes)
	}
	if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
		return tls.Certificate{}, err
	}
	return pair, nil
}

// Self asks the service, over mutual TLS with the installed certificate, who this device is.
func (c *Client) Self(ctx context.Context) (*v1.DeviceSelf, error) {
	cert, err := LoadCertificate(c.Dir)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: c.RootCAs, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(c.Server, "/")+"/v1/device/self", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponse))
	if resp.StatusCode != 200 {
		var e v1.ErrorResponse
		_ = json.Unmarshal(b, &e)
		return nil, &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	var self v1.DeviceSelf
	return &self, json.Unmarshal(b, &self)
}
