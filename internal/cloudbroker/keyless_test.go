package cloudbroker

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
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

// scanMemory reads every readable mapping of the process through /proc/PID/mem and says which
// needles it holds, and how many bytes it read.
func scanMemory(pid int, needles []needle) (map[string]bool, int64, error) {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, 0, err
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return nil, 0, err
	}
	defer mem.Close()
	longest := 0
	for _, n := range needles {
		longest = max(longest, len(n.masked))
	}
	const chunk = 1 << 20
	buf := make([]byte, chunk+longest)
	found := map[string]bool{}
	var scanned int64
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
			return nil, 0, fmt.Errorf("maps line %q", sc.Text())
		}
		for at := start; at < end; at += chunk {
			n, _ := mem.ReadAt(buf[:min(uint64(len(buf)), end-at)], int64(at))
			scanned += int64(min(n, chunk))
			for _, nd := range needles {
				if !found[nd.name] && containsMasked(buf[:n], nd.masked) {
					found[nd.name] = true
				}
			}
		}
	}
	return found, scanned, sc.Err()
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
// of the monitor (this process) finds the key, and the scan of the broker finds the
// certificate's public key, which the broker does hold.
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

	inMonitor, n, err := scanMemory(os.Getpid(), needles)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("monitor: %d MiB read, found %v", n>>20, inMonitor)
	if !inMonitor["scalar, big-endian"] && !inMonitor["scalar, little-endian"] {
		t.Fatal("the scan does not find the key in the monitor, which holds it: it proves nothing")
	}

	pid := b.PID()
	inBroker, n, err := scanMemory(pid, needles)
	if err != nil {
		t.Fatalf("reading the broker's memory: %v", err)
	}
	t.Logf("broker (pid %d): %d MiB read, found %v", pid, n>>20, inBroker)
	if !inBroker["public key"] {
		t.Fatal("the scan does not find the certificate's public key in the broker, which holds it: it proves nothing")
	}
	for _, nd := range needles[:2] {
		if inBroker[nd.name] {
			t.Errorf("the broker's memory holds the private key (%s)", nd.name)
		}
	}
}
