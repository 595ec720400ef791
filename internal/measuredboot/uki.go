// Package measuredboot computes, at build time, the golden firmware PCR values of a unified
// kernel image (UKI): PCR 4 as UEFI firmware measures the boot applications, PCR 9 as the
// Linux EFI stub measures the command line and initrd, and PCR 11 as systemd-stub measures the
// UKI's sections. An OS release may list them (attest.FirmwarePCRMeasurement) so the verifier
// accepts only that kernel, initrd and command line. PCRs 0–3 and 5–7 depend on the firmware
// and the machine; they are trusted through event-log replay, never computed here.
//
// Its test boots a UKI for real: QEMU (TCG) with OVMF and swtpm as the TPM, with the real
// rampart-agent inside attesting to a real rampart server on the host.
//
// Trust: it reads only files the caller built; nothing here comes from a device.
package measuredboot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"unicode/utf16"
)

// UKI names what goes into a unified kernel image.
type UKI struct {
	Stub      string // systemd-stub, e.g. /usr/lib/systemd/boot/efi/linuxx64.efi.stub
	Kernel    string // vmlinuz (an EFI-stub kernel)
	Initrd    string
	OSRelease string // os-release file for .osrel
	Cmdline   string // file holding the kernel command line, without a trailing newline
}

// Build writes the UKI to out with objcopy, as systemd documents for systems without ukify.
func (u UKI) Build(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "objcopy",
		"--add-section", ".osrel="+u.OSRelease, "--change-section-vma", ".osrel=0x20000",
		"--add-section", ".cmdline="+u.Cmdline, "--change-section-vma", ".cmdline=0x30000",
		"--add-section", ".linux="+u.Kernel, "--change-section-vma", ".linux=0x2000000",
		"--add-section", ".initrd="+u.Initrd, "--change-section-vma", ".initrd=0x3000000",
		u.Stub, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("objcopy: %w: %s", err, b)
	}
	return nil
}

// Golden are a UKI's golden firmware PCR values (SHA-256 bank).
type Golden struct {
	PCR4  []byte // EFI applications: the UKI, then the kernel it carries
	PCR9  []byte // the kernel command line and the initrd, as the Linux EFI stub measures them
	PCR11 []byte // the UKI's sections, as systemd-stub measures them
	// Apps are the Authenticode digests of the UKI and of its kernel, as PCR 4's events hold them.
	Apps [][]byte
}

// ukiSections is the order in which systemd-stub (v252) measures a UKI's sections into PCR 11;
// .pcrsig is never measured.
var ukiSections = []string{".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey"}

// GoldenPCRs computes the PCR 4, 9 and 11 values that booting uki directly from a UEFI boot
// option (no shim, no boot loader in between) yields.
func GoldenPCRs(uki []byte) (*Golden, error) {
	f, err := pe.NewFile(bytes.NewReader(uki))
	if err != nil {
		return nil, fmt.Errorf("UKI: %w", err)
	}
	sections := map[string][]byte{}
	for _, s := range f.Sections {
		if s.Offset == 0 || uint64(s.Offset)+uint64(s.VirtualSize) > uint64(len(uki)) || s.VirtualSize > s.Size {
			continue
		}
		sections[s.Name] = uki[s.Offset : s.Offset+s.VirtualSize]
	}
	for _, n := range []string{".linux", ".cmdline", ".initrd"} {
		if _, ok := sections[n]; !ok {
			return nil, fmt.Errorf("UKI: no %s section", n)
		}
	}
	appUKI, err := Authenticode(uki)
	if err != nil {
		return nil, fmt.Errorf("UKI: %w", err)
	}
	appKernel, err := Authenticode(sections[".linux"])
	if err != nil {
		return nil, fmt.Errorf("UKI kernel: %w", err)
	}
	g := &Golden{Apps: [][]byte{appUKI, appKernel}}
	g.PCR4 = extend(digest([]byte("Calling EFI Application from Boot Option")), digest([]byte{0, 0, 0, 0}), appUKI, appKernel)
	var cmdline []byte
	for _, r := range utf16.Encode([]rune(string(sections[".cmdline"]) + "\x00")) {
		cmdline = binary.LittleEndian.AppendUint16(cmdline, r)
	}
	g.PCR9 = extend(digest(cmdline), digest(sections[".initrd"]))
	var pcr11 [][]byte
	for _, n := range ukiSections {
		if b, ok := sections[n]; ok {
			pcr11 = append(pcr11, digest([]byte(n+"\x00")), digest(b))
		}
	}
	g.PCR11 = extend(pcr11...)
	return g, nil
}

func digest(b []byte) []byte { d := sha256.Sum256(b); return d[:] }

// extend extends a zero PCR with each digest in turn.
func extend(digests ...[]byte) []byte {
	pcr := make([]byte, sha256.Size)
	for _, d := range digests {
		h := sha256.New()
		h.Write(pcr)
		h.Write(d)
		pcr = h.Sum(nil)
	}
	return pcr
}

// Authenticode is the SHA-256 Authenticode digest of a PE image, as UEFI firmware measures an
// EFI application into PCR 4: the headers without the checksum and the certificate table
// entry, the sections in file order, then any data after them except the certificate table.
func Authenticode(img []byte) ([]byte, error) {
	if len(img) < 0x40 {
		return nil, errors.New("not a PE image: too short")
	}
	peOff := int(binary.LittleEndian.Uint32(img[0x3c:]))
	if peOff < 0 || peOff+24 > len(img) || !bytes.Equal(img[peOff:peOff+4], []byte("PE\x00\x00")) {
		return nil, errors.New("not a PE image: no PE signature")
	}
	coff := peOff + 4
	nsec := int(binary.LittleEndian.Uint16(img[coff+2:]))
	optSize := int(binary.LittleEndian.Uint16(img[coff+16:]))
	opt := coff + 20
	if opt+optSize > len(img) || optSize < 96 {
		return nil, errors.New("not a PE image: short optional header")
	}
	var dirs, nDirsOff int
	switch binary.LittleEndian.Uint16(img[opt:]) {
	case 0x10b: // PE32
		dirs, nDirsOff = opt+96, opt+92
	case 0x20b: // PE32+
		dirs, nDirsOff = opt+112, opt+108
	default:
		return nil, errors.New("not a PE image: unknown optional header magic")
	}
	checksum := opt + 64
	sizeOfHeaders := int(binary.LittleEndian.Uint32(img[opt+60:]))
	nDirs := int(binary.LittleEndian.Uint32(img[nDirsOff:]))
	if sizeOfHeaders > len(img) || dirs > opt+optSize {
		return nil, errors.New("not a PE image: headers out of bounds")
	}
	h := sha256.New()
	h.Write(img[:checksum])
	certSize := 0
	if nDirs > 4 {
		cert := dirs + 4*8
		if cert+8 > sizeOfHeaders {
			return nil, errors.New("not a PE image: certificate table entry out of bounds")
		}
		certSize = int(binary.LittleEndian.Uint32(img[cert+4:]))
		h.Write(img[checksum+4 : cert])
		h.Write(img[cert+8 : sizeOfHeaders])
	} else {
		h.Write(img[checksum+4 : sizeOfHeaders])
	}
	type sec struct{ off, size int }
	secTable := opt + optSize
	var secs []sec
	for i := 0; i < nsec; i++ {
		s := secTable + 40*i
		if s+40 > len(img) {
			return nil, errors.New("not a PE image: section table out of bounds")
		}
		size := int(binary.LittleEndian.Uint32(img[s+16:]))
		off := int(binary.LittleEndian.Uint32(img[s+20:]))
		if size == 0 {
			continue
		}
		if off+size > len(img) {
			return nil, errors.New("not a PE image: section out of bounds")
		}
		secs = append(secs, sec{off, size})
	}
	sort.Slice(secs, func(i, j int) bool { return secs[i].off < secs[j].off })
	hashed := sizeOfHeaders
	for _, s := range secs {
		h.Write(img[s.off : s.off+s.size])
		hashed += s.size
	}
	if extra := len(img) - hashed - certSize; extra > 0 && hashed < len(img) {
		h.Write(img[hashed : hashed+extra])
	}
	return h.Sum(nil), nil
}
