package tpmrot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/strictjson"
)

// akFileName is the file in the backend's directory that keeps the AK.
const akFileName = "ak.json"

// maxAKFile bounds ak.json: an ECC key's public area and private blob take a few hundred bytes.
const maxAKFile = 16 << 10

// akFile is ak.json, version 1 (binary fields are standard base64):
//
//	{
//	  "version": 1,
//	  "parent_name": "<TPM2B_NAME contents of the storage root key the AK was created under>",
//	  "public": "<TPMT_PUBLIC of the AK>",
//	  "private": "<TPM2B_PRIVATE contents: the AK's private part, encrypted by the TPM>"
//	}
//
// The private blob is useless without the TPM that made it.
type akFile struct {
	Version    int    `json:"version"`
	ParentName []byte `json:"parent_name"`
	Public     []byte `json:"public"`
	Private    []byte `json:"private"`
}

// akTemplate is the AK: an ECDSA P-256 restricted signing key with SHA-256, which the TPM
// generated and will not let leave it, usable with an empty password. It has the attributes of
// the software root's AK (softrot.AKPublic), so the two look alike to a verifier.
var akTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true,
		Restricted: true, SignEncrypt: true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
}

// attestationKey is the AK as kept in ak.json.
type attestationKey struct {
	public  []byte // TPMT_PUBLIC
	private []byte // TPM2B_PRIVATE contents
	name    tpm2.TPM2BName
}

// createSRK creates the storage root key from the TCG ECC SRK template. The caller flushes it.
func (r *TPM) createSRK() (*tpm2.CreatePrimaryResponse, error) {
	srk, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(r.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: creating the storage root key: %w", err)
	}
	return srk, nil
}

// loadOrCreateAK reads ak.json and checks that the TPM loads the AK, or creates the AK and
// writes ak.json if there is none.
func (r *TPM) loadOrCreateAK() (*attestationKey, error) {
	path := filepath.Join(r.dir, akFileName)
	srk, err := r.createSRK()
	if err != nil {
		return nil, err
	}
	defer r.flush(srk.ObjectHandle)
	parent := tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)}

	data, err := readBounded(path, maxAKFile)
	if errors.Is(err, fs.ErrNotExist) {
		created, err := tpm2.Create{ParentHandle: parent, InPublic: tpm2.New2B(akTemplate)}.Execute(r.tpm)
		if err != nil {
			return nil, fmt.Errorf("TPM root of trust: creating the attestation key: %w", err)
		}
		ak := &attestationKey{public: created.OutPublic.Bytes(), private: created.OutPrivate.Buffer}
		if ak.name, err = akName(ak.public); err != nil {
			return nil, fmt.Errorf("TPM root of trust: the TPM made an unusable attestation key: %w", err)
		}
		b, err := marshalAKFile(&akFile{Version: 1, ParentName: srk.Name.Buffer, Public: ak.public, Private: ak.private})
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("TPM root of trust: %w", err)
		}
		return ak, nil
	}
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: %w", err)
	}

	var f akFile
	if err := strictjson.Decode(data, &f); err != nil {
		return nil, fmt.Errorf("TPM root of trust: %s: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("TPM root of trust: %s: unsupported version %d", path, f.Version)
	}
	ak := &attestationKey{public: f.Public, private: f.Private}
	if ak.name, err = akName(f.Public); err != nil {
		return nil, fmt.Errorf("TPM root of trust: %s: %w", path, err)
	}
	if !bytes.Equal(f.ParentName, srk.Name.Buffer) {
		return nil, fmt.Errorf("TPM root of trust: %s holds an attestation key of another TPM, or of this one before it was cleared; "+
			"remove %s to make a new one (the device must then enroll again)", path, r.dir)
	}
	loaded, err := tpm2.Load{
		ParentHandle: parent,
		InPrivate:    tpm2.TPM2BPrivate{Buffer: ak.private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](ak.public),
	}.Execute(r.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: the TPM refuses the attestation key in %s: %w", path, err)
	}
	r.flush(loaded.ObjectHandle)
	if !bytes.Equal(loaded.Name.Buffer, ak.name.Buffer) {
		return nil, fmt.Errorf("TPM root of trust: the TPM loaded the attestation key in %s under another name", path)
	}
	return ak, nil
}

// akName checks that public is an ECC attestation key and returns its name.
func akName(public []byte) (tpm2.TPM2BName, error) {
	parsed, err := enrollment.ParseAKPublic(public)
	if err != nil {
		return tpm2.TPM2BName{}, fmt.Errorf("attestation key %w", err)
	}
	if parsed.Public.Type != tpm2.TPMAlgECC {
		return tpm2.TPM2BName{}, errors.New("attestation key is not an ECC key")
	}
	name, err := tpm2.ObjectName(&parsed.Public)
	if err != nil {
		return tpm2.TPM2BName{}, err
	}
	return *name, nil
}

// loadAK loads the AK under a fresh storage root key, which it flushes at once (a loaded key
// does not need its parent), and returns the AK's handle for commands. The caller flushes it.
func (r *TPM) loadAK() (tpm2.AuthHandle, error) {
	srk, err := r.createSRK()
	if err != nil {
		return tpm2.AuthHandle{}, err
	}
	defer r.flush(srk.ObjectHandle)
	loaded, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    tpm2.TPM2BPrivate{Buffer: r.ak.private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](r.ak.public),
	}.Execute(r.tpm)
	if err != nil {
		return tpm2.AuthHandle{}, fmt.Errorf("TPM root of trust: loading the attestation key: %w", err)
	}
	return tpm2.AuthHandle{Handle: loaded.ObjectHandle, Name: loaded.Name, Auth: tpm2.PasswordAuth(nil)}, nil
}

func marshalAKFile(f *akFile) ([]byte, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: %w", err)
	}
	return b, nil
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
