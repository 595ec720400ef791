package cli

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/manifest"
)

func newImagePackageCmd(a *app) *cobra.Command {
	return group("image-package", "Build and inspect signed image packages (offline; no server needed)",
		newImagePackagePackApplicationCmd(a), newImagePackagePackOSCmd(a), newImagePackageShowCmd(a))
}

// packFlags are the flags both pack commands take.
type packFlags struct {
	output, signingKey, version string
}

func (f *packFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.output, "output-file", "", "the image package to write")
	cmd.Flags().StringVar(&f.signingKey, "signing-key", "", "PEM file of the ECDSA P-256 private key to sign with (default: the development key, which only development-mode devices trust)")
	cmd.Flags().StringVar(&f.version, "version", "", "the image's semantic version, such as 1.4.2 (default: 0.0.<Unix time>, which increases with each pack)")
}

// signer returns the key to sign with, and whether it is the development key.
func (f *packFlags) signer() (crypto.Signer, bool, error) {
	if f.signingKey == "" {
		return imagepkg.DevelopmentKey(), true, nil
	}
	b, err := os.ReadFile(f.signingKey)
	if err != nil {
		return nil, false, err
	}
	k, err := imagepkg.ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, false, fmt.Errorf("--signing-key %s: %w", f.signingKey, err)
	}
	id, err := imagepkg.KeyID(k.Public())
	if err != nil {
		return nil, false, err
	}
	return k, id == imagepkg.DevelopmentKeyID, nil
}

// imageVersion returns --version, checked, or the default that increases with each pack.
func (a *app) imageVersion(cmd *cobra.Command, v string) (string, error) {
	if v == "" {
		return "0.0." + strconv.FormatInt(a.now().Unix(), 10), nil
	}
	if _, err := imagepkg.ParseVersion(v); err != nil {
		return "", usagef(cmd, "--version: %v", err)
	}
	return v, nil
}

// checkOutside refuses an output file inside the directory being packed.
func checkOutside(cmd *cobra.Command, output, dir, dirFlag string) error {
	ao, err1 := filepath.Abs(output)
	ad, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return nil
	}
	if rel, err := filepath.Rel(ad, ao); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return usagef(cmd, "--output-file must be outside --%s", dirFlag)
	}
	return nil
}

func newImagePackagePackApplicationCmd(a *app) *cobra.Command {
	var pf packFlags
	var dir, manifestFile string
	var hwDirs []string
	cmd := &cobra.Command{
		Use:   "pack-application --package-directory DIR --output-file F",
		Short: "Pack a directory holding an application into a signed image package",
		Long: `pack-application packs DIR into an application image package. The application manifest
(DIR/app_manifest.json unless --application-manifest names another) is checked strictly against
the Azure Sphere schema; hardware-definition names in it ("$SAMPLE_LED") are resolved through
the files in --hardware-definitions (repeat it to search several directories, in order) and the
package records the resolved manifest. The manifest's EntryPoint must be an executable file in
DIR. Without --signing-key the package is signed with the development key, which only devices
in development mode trust; 'rampart image add' has the service sign it for production.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "package-directory", "output-file"); err != nil {
				return err
			}
			if err := checkOutside(cmd, pf.output, dir, "package-directory"); err != nil {
				return err
			}
			version, err := a.imageVersion(cmd, pf.version)
			if err != nil {
				return err
			}
			signer, dev, err := pf.signer()
			if err != nil {
				return err
			}
			if manifestFile == "" {
				manifestFile = filepath.Join(dir, "app_manifest.json")
			}
			m, err := manifest.ReadFile(manifestFile)
			if err != nil {
				return err
			}
			var hw *manifest.HardwareDefinitions
			if len(hwDirs) > 0 {
				var dirs []fs.FS
				for _, d := range hwDirs {
					root, err := os.OpenRoot(d)
					if err != nil {
						return fmt.Errorf("--hardware-definitions: %w", err)
					}
					defer root.Close()
					dirs = append(dirs, root.FS())
				}
				if hw, err = manifest.LoadHardwareDefinitions(dirs...); err != nil {
					return fmt.Errorf("--hardware-definitions: %w", err)
				}
			}
			if m.HasReferences() || hw != nil {
				if m, err = m.Resolve(hw); err != nil {
					return fmt.Errorf("%s: %w", manifestFile, err)
				}
			}
			if err := checkEntryPoint(dir, m.EntryPoint); err != nil {
				return err
			}
			for _, c := range m.NotEnforced() {
				fmt.Fprintf(a.sys.Err, "warning: the manifest asks for %s, which is valid but not enforced by devices yet\n", c)
			}
			meta := &imagepkg.Metadata{
				Version:      imagepkg.MetadataVersion,
				ComponentID:  m.ComponentId,
				Kind:         imagepkg.KindApplication,
				Name:         m.Name,
				ImageVersion: version,
				CreatedAt:    a.now().UTC().Truncate(time.Second),
				Manifest:     m,
				Development:  dev,
			}
			return a.pack(pf.output, dir, meta, signer)
		},
	}
	cmd.Flags().StringVar(&dir, "package-directory", "", "the directory to pack: the application's files, with its manifest")
	cmd.Flags().StringVar(&manifestFile, "application-manifest", "", "the application manifest (default: DIR/app_manifest.json)")
	cmd.Flags().StringArrayVar(&hwDirs, "hardware-definitions", nil, "a directory of hardware definition files that resolve \"$NAME\"s in the manifest (repeatable)")
	pf.register(cmd)
	return cmd
}

// checkEntryPoint checks that the manifest's entry point is an executable file in dir.
func checkEntryPoint(dir, entryPoint string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	st, err := root.Lstat(strings.TrimPrefix(entryPoint, "/"))
	switch {
	case err != nil:
		return fmt.Errorf("the manifest's EntryPoint %s is not in %s", entryPoint, dir)
	case !st.Mode().IsRegular():
		return fmt.Errorf("the manifest's EntryPoint %s is not a regular file", entryPoint)
	case st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("the manifest's EntryPoint %s is not executable", entryPoint)
	}
	return nil
}

func newImagePackagePackOSCmd(a *app) *cobra.Command {
	var pf packFlags
	var dir, componentID, agentBinary, policyFile string
	var securityVersion uint64
	cmd := &cobra.Command{
		Use:   "pack-os --os-directory DIR --output-file F",
		Short: "Pack an OS bundle directory into a signed image package with its golden measurement",
		Long: `pack-os packs the OS bundle in DIR into an image package. The package records the bundle's
golden "os-bundle" measurement, computed as a device's security monitor measures an installed
bundle, so that the attestation verifier can expect it. Every OS release shares one component
ID unless --component-id gives another.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "os-directory", "output-file"); err != nil {
				return err
			}
			if err := checkOutside(cmd, pf.output, dir, "os-directory"); err != nil {
				return err
			}
			id, err := manifest.ParseUUID(componentID)
			if err != nil {
				return usagef(cmd, "--component-id: %v", err)
			}
			version, err := a.imageVersion(cmd, pf.version)
			if err != nil {
				return err
			}
			signer, dev, err := pf.signer()
			if err != nil {
				return err
			}
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return fmt.Errorf("--os-directory %s is not a directory", dir)
			}
			digest, err := measure.TreeDigest(dir)
			if err != nil {
				return fmt.Errorf("measuring %s: %w", dir, err)
			}
			measurements := map[string]string{imagepkg.MeasurementOSBundle: hex.EncodeToString(digest)}
			if agentBinary != "" {
				// The whole set a device running this bundle measures: the service registers
				// the image as an OS release, to be published to a feed.
				ds, err := measure.Digests(measure.Inputs{AgentBinary: agentBinary, PolicyFile: policyFile, OSBundle: dir})
				if err != nil {
					return err
				}
				for k, v := range ds {
					measurements[k] = hex.EncodeToString(v)
				}
			} else if policyFile != "" {
				return usagef(cmd, "--policy needs --agent-binary: a release names the agent and the policy together")
			}
			meta := &imagepkg.Metadata{
				Version:         imagepkg.MetadataVersion,
				ComponentID:     id,
				Kind:            imagepkg.KindOS,
				Name:            "os",
				ImageVersion:    version,
				CreatedAt:       a.now().UTC().Truncate(time.Second),
				Measurements:    measurements,
				SecurityVersion: securityVersion,
				Development:     dev,
			}
			if securityVersion > imagepkg.MaxSecurityVersion {
				return usagef(cmd, "--security-version %d is above %d", securityVersion, imagepkg.MaxSecurityVersion)
			}
			if err := a.pack(pf.output, dir, meta, signer); err != nil {
				return err
			}
			// The measurement must be of what was packed.
			again, err := measure.TreeDigest(dir)
			if err != nil || !bytes.Equal(again, digest) {
				os.Remove(pf.output)
				return fmt.Errorf("%s changed while it was packed; pack it again", dir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "os-directory", "", "the OS bundle directory to pack")
	cmd.Flags().StringVar(&agentBinary, "agent-binary", "", "the rampart-agent binary devices run with this bundle: its digest and the policy's join the golden measurements, which makes the upload an OS release")
	cmd.Flags().StringVar(&policyFile, "policy", "", "the security policy devices run with this bundle (default: the built-in policy; needs --agent-binary)")
	cmd.Flags().StringVar(&componentID, "component-id", imagepkg.OSComponentID, "the OS bundle's component ID")
	cmd.Flags().Uint64Var(&securityVersion, "security-version", 0, "the bundle's security version: a device that commits it advances its anti-rollback counter to it and never installs a bundle with a lower one again; raise it when the releases before must never run again")
	pf.register(cmd)
	return cmd
}

// pack packs dir as the payload of meta, signed by signer, into the file output, written
// atomically, and prints what it wrote.
func (a *app) pack(output, dir string, meta *imagepkg.Metadata, signer crypto.Signer) error {
	var err error
	if meta.ImageID, err = imagepkg.NewUUID(rand.Reader); err != nil {
		return err
	}
	outDir := filepath.Dir(output)
	payload, err := os.CreateTemp(outDir, "."+filepath.Base(output)+".payload-*")
	if err != nil {
		return err
	}
	defer os.Remove(payload.Name())
	defer payload.Close()
	if meta.Payload, err = imagepkg.PackDir(payload, dir); err != nil {
		return err
	}
	if _, err := payload.Seek(0, io.SeekStart); err != nil {
		return err
	}
	out, err := os.CreateTemp(outDir, "."+filepath.Base(output)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	if err := imagepkg.Write(out, meta, payload, signer); err != nil {
		return err
	}
	if err := out.Chmod(0o644); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(out.Name(), output); err != nil {
		return err
	}
	return a.showPackage(output, false)
}

func newImagePackageShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show F",
		Short: "Show an image package: its metadata, signatures and whether its payload matches",
		Long: `show prints an image package's metadata and signatures, and checks its payload against the
digest in the metadata. A signature by the development key is checked; other signatures are
listed by key ID, for the service or a device to check with the keys it trusts. It fails if the
package is malformed or its payload does not match.`,
		Args: args(1, 1, "F"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.showPackage(args[0], true)
		},
	}
}

// packageView is what show prints.
type packageView struct {
	File            string             `json:"file"`
	Metadata        *imagepkg.Metadata `json:"metadata"`
	Signatures      []signatureView    `json:"signatures"`
	PayloadVerified bool               `json:"payload_verified"`
	PayloadError    string             `json:"payload_error,omitempty"`
}

type signatureView struct {
	KeyID       string `json:"keyid"`
	Development bool   `json:"development"`
	// Verified is "valid" or "invalid" for the development key, "not checked" for others.
	Verified string `json:"verified"`
}

// showPackage opens, checks and prints the package in file. With checkPayload it also streams
// the payload through its digest.
func (a *app) showPackage(file string, checkPayload bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	p, err := imagepkg.Open(f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	v := packageView{File: file, Metadata: p.Metadata, PayloadVerified: true}
	devValid := ""
	for _, s := range p.Signatures() {
		if s.Development {
			devValid = "valid"
			if _, err := p.Verify([]crypto.PublicKey{imagepkg.DevelopmentPublicKey()}, 1); err != nil {
				devValid = "invalid: " + err.Error()
			}
		}
	}
	for _, s := range p.Signatures() {
		sv := signatureView{KeyID: s.KeyID, Development: s.Development, Verified: "not checked"}
		if s.Development {
			sv.Verified = devValid
		}
		v.Signatures = append(v.Signatures, sv)
	}
	var payloadErr error
	if checkPayload {
		if payloadErr = p.VerifyPayload(); payloadErr != nil {
			v.PayloadVerified, v.PayloadError = false, payloadErr.Error()
		}
	}
	pr := a.printer()
	err = pr.print(v, func() error { return pr.fields(packageRows(v)) })
	if err != nil {
		return err
	}
	if payloadErr != nil {
		return fmt.Errorf("%s: %w", file, payloadErr)
	}
	if strings.HasPrefix(devValid, "invalid") {
		return fmt.Errorf("%s: the development key's signature does not verify", file)
	}
	return nil
}

func packageRows(v packageView) [][2]string {
	m := v.Metadata
	rows := [][2]string{
		{"File", v.File},
		{"Kind", string(m.Kind)},
		{"Name", m.Name},
		{"Component ID", m.ComponentID},
		{"Image ID", m.ImageID},
		{"Version", m.ImageVersion},
		{"Created", timeCell(m.CreatedAt)},
		{"Development", boolCell(m.Development)},
		{"Payload", fmt.Sprintf("%s, %d bytes, sha256 %s", m.Payload.Format, m.Payload.Size, m.Payload.SHA256)},
	}
	if v.PayloadVerified {
		rows = append(rows, [2]string{"Payload check", "matches the metadata"})
	} else {
		rows = append(rows, [2]string{"Payload check", "FAILED: " + v.PayloadError})
	}
	if am := m.Manifest; am != nil {
		rows = append(rows,
			[2]string{"Application type", am.ApplicationType},
			[2]string{"Entry point", am.EntryPoint + " " + strings.Join(am.CmdArgs, " ")},
			[2]string{"Capabilities", strings.Join(am.Capabilities.Requested(), ", ")},
		)
		if ne := am.NotEnforced(); len(ne) > 0 {
			rows = append(rows, [2]string{"Not enforced", strings.Join(ne, ", ")})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Measurements)) {
		rows = append(rows, [2]string{"Measurement " + name, m.Measurements[name]})
	}
	if m.Kind == imagepkg.KindOS {
		rows = append(rows, [2]string{"Security version", strconv.FormatUint(m.SecurityVersion, 10)})
	}
	for i, s := range v.Signatures {
		who := "key " + s.KeyID
		if s.Development {
			who = "development key " + s.KeyID
		}
		rows = append(rows, [2]string{fmt.Sprintf("Signature %d", i+1), who + " (" + s.Verified + ")"})
	}
	return rows
}
