package httpapi

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/pem"
	"strings"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/ca"
	"github.com/rampart-iot/rampart/internal/store"
)

// AttestBodyLimit bounds an attestation request: a measurement log of up to 1 MiB, base64'd
// inside JSON, plus the quote and keys.
const AttestBodyLimit = 2 << 20

// attestationRoutes are the device-facing endpoints and the management of attestation: device
// state, OS releases, and the tenant CA.
func attestationRoutes() []route {
	devicePath := tenantPath + "/devices/{device}"
	return []route{
		{method: "POST", path: "/v1/device/attestation/nonce", op: "attestationNonce",
			summary: "A single-use nonce for a claimed device, with a credential-activation challenge until it has answered one.",
			public:  true, in: v1.AttestationNonceRequest{}, out: v1.AttestationNonce{}, status: 200, handle: attestationNonce},
		{method: "POST", path: "/v1/device/attestation", op: "attest",
			summary: "Verify a device's evidence (TPM quote, measurement log, activation answer) and, if it passes, certify its keys. A failure is 403 attestation_failed with extra.reason.",
			public:  true, in: v1.AttestationRequest{}, out: v1.AttestationResult{}, status: 200, limit: AttestBodyLimit, handle: attestDevice},
		{method: "GET", path: "/v1/device/self", op: "deviceSelf", summary: "Who the calling device is (mutual TLS with its certificate).",
			device: true, out: v1.DeviceSelf{}, status: 200, handle: deviceSelf},
		{method: "GET", path: tenantPath + "/trust-bundle", op: "trustBundle",
			summary: "The tenant's CA bundle as PEM, for relying parties (public).", public: true, status: 200,
			produces: "application/x-pem-file", handle: trustBundle},

		{method: "POST", path: devicePath + "/disable", op: "disableDevice", summary: "Disable a device: it is refused at its next attestation and on mutual TLS.",
			action: authz.DeviceDisable, out: v1.Device{}, status: 200, handle: func(c *call) (any, error) { return setDisabled(c, true) }},
		{method: "POST", path: devicePath + "/enable", op: "enableDevice", summary: "Enable a disabled device.",
			action: authz.DeviceDisable, out: v1.Device{}, status: 200, handle: func(c *call) (any, error) { return setDisabled(c, false) }},
		{method: "GET", path: devicePath + "/attestations", op: "listAttestations", summary: "A device's attestations, newest first.",
			action: authz.DeviceRead, out: v1.List[v1.Attestation]{}, status: 200, list: true, handle: listAttestations},

		{method: "GET", path: tenantPath + "/os-releases", op: "listOSReleases", summary: "OS releases whose golden measurements devices may attest to.",
			action: authz.OSReleaseRead, out: v1.List[v1.OSRelease]{}, status: 200, list: true, handle: listOSReleases},
		{method: "POST", path: tenantPath + "/os-releases", op: "createOSRelease", summary: "Register an OS release and its golden measurements.",
			action: authz.OSReleaseCreate, in: v1.OSReleaseCreate{}, out: v1.OSRelease{}, status: 201, handle: createOSRelease},
		{method: "POST", path: tenantPath + "/os-releases/{release}/publish", op: "publishOSRelease",
			summary: "Publish a release made from an OS image to a feed (RetailEval: groups that follow it; Retail: every group), or take it back (Unpublished). Devices may then attest to it, and the groups' directors offer its image.",
			action:  authz.OSReleaseCreate, in: v1.OSReleasePublish{}, out: v1.OSRelease{}, status: 200, handle: publishOSRelease},
		{method: "POST", path: tenantPath + "/os-releases/{release}/withdraw", op: "withdrawOSRelease",
			summary: "Withdraw a release from its feed: no group is offered it any more (each gets its feed's newest remaining release), and only devices that already attested with it are still accepted with it.",
			action:  authz.OSReleaseCreate, out: v1.OSRelease{}, status: 200, handle: withdrawOSRelease},
		{method: "DELETE", path: tenantPath + "/os-releases/{release}", op: "deleteOSRelease", summary: "Remove an OS release; devices that measure it fail their next attestation.",
			action: authz.OSReleaseDelete, status: 204, handle: deleteOSRelease},

		{method: "GET", path: tenantPath + "/ca-certificates", op: "listCACertificates", summary: "The tenant's CA certificates and their status.",
			action: authz.CARead, out: v1.List[v1.CACertificate]{}, status: 200, handle: listCACertificates},
		{method: "GET", path: tenantPath + "/ca-certificates/chain", op: "caCertificateChain", summary: "The PEM bundle that verifies the tenant's device certificates.",
			action: authz.CARead, out: v1.PEMBundle{}, status: 200, handle: caChain},
		{method: "POST", path: tenantPath + "/ca-certificates/{ca}/proof", op: "caProofOfPossession",
			summary: "A proof-of-possession certificate (CN = verification code) signed by the CA ({ca} = an ID, or 'active').",
			action:  authz.CAProof, in: v1.ProofOfPossessionRequest{}, out: v1.PEMBundle{}, status: 200, handle: caProof},
	}
}

func attestationNonce(c *call) (any, error) {
	var req v1.AttestationNonceRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return c.h.att.Nonce(c.r.Context(), req)
}

func attestDevice(c *call) (any, error) {
	var req v1.AttestationRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return c.h.att.Attest(c.r.Context(), req)
}

func deviceSelf(c *call) (any, error) {
	return v1.DeviceSelf{DeviceID: c.dev.DeviceID, TenantID: c.dev.TenantID, DeviceGroupID: c.dev.Device.DeviceGroupID,
		Component: c.dev.Component, NotAfter: c.dev.NotAfter}, nil
}

func pemOf(certs ...[]byte) string {
	var b []byte
	for _, der := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return string(b)
}

func trustBundle(c *call) (any, error) {
	certs, err := c.h.m.PublicCABundle(c.r.Context(), c.param("tenant"))
	if err != nil {
		return nil, err
	}
	var ders [][]byte
	for _, cert := range certs {
		ders = append(ders, cert.Raw)
	}
	return rawResponse{contentType: "application/x-pem-file", body: []byte(pemOf(ders...))}, nil
}

func setDisabled(c *call, disabled bool) (any, error) {
	return conv(toDevice)(c.h.m.SetDeviceDisabled(c.r.Context(), c.p, c.param("tenant"), c.param("device"), disabled))
}

func listAttestations(c *call) (any, error) {
	return listWith(c, func(o store.ListOptions) (store.Page[store.Attestation], error) {
		return c.h.m.ListAttestations(c.r.Context(), c.p, c.param("tenant"), c.param("device"), o)
	}, toAttestation)
}

func listOSReleases(c *call) (any, error) {
	return listWith(c, func(o store.ListOptions) (store.Page[store.OSRelease], error) {
		return c.h.m.ListOSReleases(c.r.Context(), c.p, c.param("tenant"), o)
	}, toOSRelease)
}

func createOSRelease(c *call) (any, error) {
	var req v1.OSReleaseCreate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return conv(toOSRelease)(c.h.m.CreateOSRelease(c.r.Context(), c.p, c.param("tenant"), req))
}

func deleteOSRelease(c *call) (any, error) {
	return nil, c.h.m.DeleteOSRelease(c.r.Context(), c.p, c.param("tenant"), c.param("release"))
}

func listCACertificates(c *call) (any, error) {
	infos, err := c.h.m.ListCACertificates(c.r.Context(), c.p, c.param("tenant"))
	if err != nil {
		return nil, err
	}
	out := v1.List[v1.CACertificate]{Items: make([]v1.CACertificate, len(infos))}
	for i, in := range infos {
		out.Items[i] = toCACertificate(in)
	}
	return out, nil
}

func caChain(c *call) (any, error) {
	certs, err := c.h.m.CABundle(c.r.Context(), c.p, c.param("tenant"))
	if err != nil {
		return nil, err
	}
	var ders [][]byte
	for _, cert := range certs {
		ders = append(ders, cert.Raw)
	}
	return v1.PEMBundle{PEM: pemOf(ders...)}, nil
}

func caProof(c *call) (any, error) {
	var req v1.ProofOfPossessionRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	caID := c.param("ca")
	if caID == "active" {
		caID = ""
	}
	cert, err := c.h.m.ProofOfPossession(c.r.Context(), c.p, c.param("tenant"), caID, req.VerificationCode)
	if err != nil {
		return nil, err
	}
	return v1.PEMBundle{PEM: pemOf(cert.Raw)}, nil
}

func toCACertificate(in ca.Info) v1.CACertificate {
	thumb := in.ThumbprintSHA1
	if thumb == "" {
		s := sha1.Sum(in.Cert.Raw)
		thumb = strings.ToUpper(hex.EncodeToString(s[:]))
	}
	return v1.CACertificate{ID: in.ID, Status: string(in.Status), Subject: in.Cert.Subject.String(), ThumbprintSHA1: thumb,
		NotBefore: in.NotBefore, NotAfter: in.NotAfter, ActiveFrom: in.ActiveFrom, Certificate: pemOf(in.Cert.Raw)}
}

func publishOSRelease(c *call) (any, error) {
	var req v1.OSReleasePublish
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return conv(toOSRelease)(c.h.m.PublishOSRelease(c.r.Context(), c.p, c.param("tenant"), c.param("release"), req.Feed))
}

func withdrawOSRelease(c *call) (any, error) {
	return conv(toOSRelease)(c.h.m.WithdrawOSRelease(c.r.Context(), c.p, c.param("tenant"), c.param("release")))
}
