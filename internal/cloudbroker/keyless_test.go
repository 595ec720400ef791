package cloudbroker

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mask keeps the scanner's needles out of the scanning process's memory in the clear: the
// monitor's own scan must find the key where the monitor holds it, not in the test's needle.
const mask = 0xa5

type needle struct {
	name   string
	masked []byte
}

func newNeedle(name string, clear []byte) needle {
	m := make([]byte, len(clear))
	for i, c := range clear {
		m[i] = c ^ mask
	}
	return needle{name: name, masked: m}
}

// keyNeedles are the forms the key's scalar takes in a Go process's memory: big-endian bytes
// (PKCS#8, crypto/internal/fips140/ecdsa) and little-endian words (math/big on a
// little-endian machine: the whole 32 bytes reversed).
func keyNeedles(t *testing.T, k *ecdsa.PrivateKey) []needle {
	t.Helper()
	be, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	le := slices.Clone(be)
	slices.Reverse(le)
	n := []needle{newNeedle("scalar, big-endian", be), newNeedle("scalar, little-endian", le)}
	clear(be)
	clear(le)
	return n
}

// memScan is what scanMemory saw of a process.
type memScan struct {
	found   map[string]bool // the needles it holds
	scanned int64           // bytes read
	// unreadable counts the bytes of readable anonymous read-write mappings (the heap, the
	// stacks, Go's arenas: where a key would be) that could not be read. It must be zero, or
	// the scan missed part of the process.
	unreadable int64
	anonymous  int64 // the size of those mappings
}

// anonymousRW says whether a /proc/PID/maps line's fields describe an anonymous read-write
// mapping.
func anonymousRW(f []string) bool {
	if !strings.HasPrefix(f[1], "rw") {
		return false
	}
	return len(f) < 6 || f[5] == "[heap]" || strings.HasPrefix(f[5], "[stack") || strings.HasPrefix(f[5], "[anon:")
}

// scanMemory reads every readable mapping of the process through /proc/PID/mem and says which
// needles it holds, how many bytes it read, and how many of its anonymous read-write mappings'
// it could not.
func scanMemory(pid int, needles []needle) (memScan, error) {
	res := memScan{found: map[string]bool{}}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return res, err
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return res, err
	}
	defer mem.Close()
	longest := 0
	for _, n := range needles {
		longest = max(longest, len(n.masked))
	}
	const chunk = 1 << 20
	buf := make([]byte, chunk+longest)
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[1][0] != 'r' {
			continue
		}
		if len(f) >= 6 && (f[5] == "[vvar]" || f[5] == "[vvar_vclock]" || f[5] == "[vsyscall]") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil {
			return res, fmt.Errorf("maps line %q", sc.Text())
		}
		anon := anonymousRW(f)
		if anon {
			res.anonymous += int64(end - start)
		}
		for at := start; at < end; at += chunk {
			n, err := mem.ReadAt(buf[:min(uint64(len(buf)), end-at)], int64(at))
			own := int(min(chunk, end-at)) // this chunk's bytes; the rest overlaps the next
			res.scanned += int64(min(n, own))
			if err != nil && anon && n < own {
				res.unreadable += int64(own - n)
			}
			for _, nd := range needles {
				if !res.found[nd.name] && containsMasked(buf[:n], nd.masked) {
					res.found[nd.name] = true
				}
			}
		}
	}
	return res, sc.Err()
}

// containsMasked says whether hay holds the needle whose masked form is m, without making
// the needle in the clear.
func containsMasked(hay, m []byte) bool {
	first := m[0] ^ mask
	for i := 0; i+len(m) <= len(hay); {
		j := bytes.IndexByte(hay[i:len(hay)-len(m)+1], first)
		if j < 0 {
			return false
		}
		i += j
		k := 1
		for k < len(m) && hay[i+k]^mask == m[k] {
			k++
		}
		if k == len(m) {
			return true
		}
		i++
	}
	return false
}

func TestAnonymousRW(t *testing.T) {
	for line, want := range map[string]bool{
		"c000000000-c000400000 rw-p 00000000 00:00 0":                                      true,
		"7f0000000000-7f0000021000 rw-p 00000000 00:00 0 [heap]":                           true,
		"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]":                          true,
		"7f0000000000-7f0000001000 rw-p 00000000 00:00 0 [anon:go: heap]":                  true,
		"00400000-00800000 r-xp 00000000 08:01 123 /usr/bin/rampart-agent":                 false,
		"00a00000-00a10000 rw-p 00600000 08:01 123 /usr/bin/rampart-agent":                 false,
		"7f0000000000-7f0000001000 r--p 00000000 00:00 0":                                  false,
		"7f0000000000-7f0000001000 ---p 00000000 00:00 0":                                  false,
		"7f1000000000-7f1000001000 rw-s 00000000 00:01 9 /dev/shm/x":                       false,
		"7f2000000000-7f2000001000 rw-p 00000000 00:00 0                          [stack]": true,
	} {
		if got := anonymousRW(strings.Fields(line)); got != want {
			t.Errorf("%q: %v, want %v", line, got, want)
		}
	}
}

func TestContainsMasked(t *testing.T) {
	n := newNeedle("n", []byte("needle"))
	for hay, want := range map[string]bool{"needle": true, "a needle in": true, "needl": false, "neeedle": false, "": false, "xxneedle": true} {
		if got := containsMasked([]byte(hay), n.masked); got != want {
			t.Errorf("%q: %v, want %v", hay, got, want)
		}
	}
}

// TestBrokerHoldsNoKey reads a running broker's memory, after a handshake with the agent's
// certificate, for the certificate's private key: it is not there. The controls: the same scan
// of the monitor (this process) finds the key, so does the scan of another process of the
// broker's uid that parsed the key and signed with it (across processes, as the broker held it
// before it held none), and the scan of the broker finds the certificate's public key, which
// the broker does hold. Every scan reads all of the anonymous read-write memory it lists.
func TestBrokerHoldsNoKey(t *testing.T) {
	needRoot(t)
	p := newPKI(t)
	srv := newService(t, p)
	id := p.client("device-1", time.Now().Add(time.Hour))
	b, err := Start(t.Context(), Config{Server: srv.URL, RootPEM: p.caPEM, SocketDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Identity: func() (tls.Certificate, error) { return id, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if code, body := get(t, b.Transport(), srv.URL+"/tls"); code != 200 || body != "device-1 TLS 1.3" {
		t.Fatalf("with identity: %d %q", code, body)
	}
	if got := b.Signatures(); got != (SignStats{Signed: 1}) {
		t.Fatalf("signatures %+v, want the handshake's one", got)
	}

	key := id.PrivateKey.(*ecdsa.PrivateKey)
	needles := keyNeedles(t, key)
	pub, err := key.PublicKey.Bytes() // the uncompressed point, inside the certificate
	if err != nil {
		t.Fatal(err)
	}
	needles = append(needles, newNeedle("public key", pub))

	scan := func(who string, pid int) map[string]bool {
		t.Helper()
		s, err := scanMemory(pid, needles)
		if err != nil {
			t.Fatalf("reading the %s's memory: %v", who, err)
		}
		t.Logf("%s (pid %d): %d MiB read (%d MiB anonymous read-write), found %v", who, pid, s.scanned>>20, s.anonymous>>20, s.found)
		if s.anonymous == 0 {
			t.Fatalf("the scan of the %s lists no anonymous read-write memory: its check of unreadable bytes checks nothing", who)
		}
		if s.unreadable != 0 {
			t.Fatalf("%d bytes of the %s's anonymous read-write memory could not be read: the scan is incomplete", s.unreadable, who)
		}
		return s.found
	}
	inMonitor := scan("monitor", os.Getpid())
	if !inMonitor["scalar, big-endian"] && !inMonitor["scalar, little-endian"] {
		t.Fatal("the scan does not find the key in the monitor, which holds it: it proves nothing")
	}
	// Across processes too: another process of the broker's uid that holds the key as the
	// broker once did (parsed from PKCS#8, and signed with once) is found out by the same scan.
	inHolder := scan("key holder", startKeyHolder(t, key))
	if !inHolder["scalar, big-endian"] && !inHolder["scalar, little-endian"] {
		t.Fatal("the scan does not find the key in another process that holds it: it proves nothing")
	}

	inBroker := scan("broker", b.PID())
	if !inBroker["public key"] {
		t.Fatal("the scan does not find the certificate's public key in the broker, which holds it: it proves nothing")
	}
	for _, nd := range needles[:2] {
		if inBroker[nd.name] {
			t.Errorf("the broker's memory holds the private key (%s)", nd.name)
		}
	}
}

// keyHolderArgv0 makes the test binary a process that holds a key as the broker did before
// it held none: it reads a PKCS#8 key on keyHolderFD, parses it, signs once, says "ready" and
// waits for its stdin to close (runKeyHolder).
const keyHolderArgv0 = "rampart-cloud-broker-keyholder"

const (
	keyHolderFD    = 3
	keyHolderExeFD = 4
)

func runKeyHolder() {
	f := os.NewFile(keyHolderFD, "key")
	der, err := io.ReadAll(io.LimitReader(f, 4096))
	f.Close()
	if err != nil {
		fmt.Println("reading the key:", err)
		os.Exit(1)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		fmt.Println("parsing the key:", err)
		os.Exit(1)
	}
	d := sha256.Sum256([]byte("handshake"))
	if _, err := k.(crypto.Signer).Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		fmt.Println("signing:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// startKeyHolder starts a key holder for key, as the broker's uid, and returns its pid once
// it holds the key; it stops at the end of the test.
func startKeyHolder(t *testing.T, key *ecdsa.PrivateKey) int {
	t.Helper()
	uid, gid, err := UIDFor("")
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyR, keyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer keyR.Close()
	exe, err := os.Open("/proc/self/exe") // the test binary's directory is the test user's alone
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	cmd := &exec.Cmd{Path: fmt.Sprintf("/proc/self/fd/%d", keyHolderExeFD), Args: []string{keyHolderArgv0},
		ExtraFiles: []*os.File{keyR, exe},
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL,
			Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	_, err = keyW.Write(der)
	keyW.Close()
	clear(der)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("the key holder: %q %v", line, err)
	}
	return cmd.Process.Pid
}
