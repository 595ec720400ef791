// Package swtpmtest starts swtpm, the software TPM emulator, for tests: a freshly manufactured
// TPM 2.0 with RSA and ECC EKs and EK certificates issued by a local CA made for the test, served
// on a Unix socket or a loopback TCP port. The process is a child of the test and is killed
// when the test ends (or when the test process dies).
//
// swtpm comes from the Debian packages swtpm and swtpm-tools. Without them the tests that use
// this package skip, unless RAMPART_REQUIRE_SWTPM=1, when they fail: CI sets it.
//
// Trust: nothing here is secure. The TPM's state and the CA's keys are plain files in the
// test's temporary directory.
package swtpmtest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing swtpm from a skip into a failure.
const RequireEnv = "RAMPART_REQUIRE_SWTPM"

// Options change what StartWith starts.
type Options struct {
	// TCP serves the TPM on a loopback TCP port instead of a Unix socket.
	TCP bool
}

// SWTPM is a running swtpm.
type SWTPM struct {
	// Spec is the root-of-trust spec that reaches it: "swtpm:unix:PATH" or
	// "swtpm:tcp:127.0.0.1:PORT".
	Spec string
	// LocalCA is the CA that issued its EK certificates: the root, then the intermediate
	// (swtpm-localca) that signed them.
	LocalCA []*x509.Certificate
	// StateDir is the TPM's state directory; CADir the local CA's.
	StateDir, CADir string
	// Setup is swtpm_setup's output, which lists the EKs and NV indices it created.
	Setup string

	cmd *exec.Cmd
}

// Start starts a swtpm on a Unix socket and returns its spec and its local CA (root first).
func Start(t testing.TB) (spec string, localCA []*x509.Certificate) {
	t.Helper()
	s := StartWith(t, Options{})
	return s.Spec, s.LocalCA
}

// Available reports whether swtpm and swtpm_setup are installed.
func Available() bool {
	for _, bin := range []string{"swtpm", "swtpm_setup", "swtpm_localca"} {
		if _, err := exec.LookPath(bin); err != nil {
			return false
		}
	}
	return true
}

// Require skips the test if swtpm is not installed, or fails it if RAMPART_REQUIRE_SWTPM=1.
func Require(t testing.TB) {
	t.Helper()
	if Available() {
		return
	}
	msg := "swtpm is not installed: apt-get install swtpm swtpm-tools"
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s (%s=1)", msg, RequireEnv)
		return
	}
	t.Skip(msg)
}

// StartWith manufactures a TPM with swtpm_setup and starts swtpm on it.
func StartWith(t testing.TB, opt Options) *SWTPM {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	s := &SWTPM{StateDir: filepath.Join(dir, "state"), CADir: filepath.Join(dir, "localca")}
	s.setup(t, dir)

	// A Unix socket's path must fit in 108 bytes; test temporary directories may not.
	sockDir, err := os.MkdirTemp("", "swtpm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	ctrl := filepath.Join(sockDir, "ctrl")
	server := "type=unixio,path=" + filepath.Join(sockDir, "tpm")
	var addr string
	if opt.TCP {
		port := freePort(t)
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		server = fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port)
		s.Spec = "swtpm:tcp:" + addr
	} else {
		s.Spec = "swtpm:unix:" + filepath.Join(sockDir, "tpm")
	}
	logFile := filepath.Join(dir, "swtpm.log")
	s.cmd = exec.Command("swtpm", "socket", "--tpm2",
		"--tpmstate", "dir="+s.StateDir,
		"--server", server,
		"--ctrl", "type=unixio,path="+ctrl,
		"--flags", "startup-clear",
		"--log", "file="+logFile+",level=1",
	)
	// Die with the test process even if it is killed before cleanup runs.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &strings.Builder{}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting swtpm: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-exited
	})

	// Wait for the data channel to accept connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var c net.Conn
		var err error
		if opt.TCP {
			c, err = net.Dial("tcp", addr)
		} else {
			c, err = net.Dial("unix", filepath.Join(sockDir, "tpm"))
		}
		if err == nil {
			_ = c.Close()
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("swtpm exited: %s%s", out, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm did not listen within 10s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// setup runs swtpm_setup with a local CA of the test's own, so that tests neither need nor
// touch the system's /var/lib/swtpm-localca.
func (s *SWTPM) setup(t testing.TB, dir string) {
	t.Helper()
	localca, err := exec.LookPath("swtpm_localca")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{s.StateDir, s.CADir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"swtpm_setup.conf": fmt.Sprintf("create_certs_tool = %s\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha256\n",
			localca, filepath.Join(dir, "swtpm-localca.conf"), filepath.Join(dir, "swtpm-localca.options")),
		"swtpm-localca.conf":    fmt.Sprintf("statedir = %[1]s\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n", s.CADir),
		"swtpm-localca.options": "--platform-manufacturer Rampart\n--platform-version 2.1\n--platform-model swtpmtest\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", s.StateDir,
		"--config", filepath.Join(dir, "swtpm_setup.conf"),
		"--createek", "--create-ek-cert", "--create-platform-cert", "--lock-nvram", "--overwrite",
	).CombinedOutput()
	s.Setup = string(out)
	if err != nil {
		t.Fatalf("swtpm_setup: %v\n%s", err, out)
	}
	for _, name := range []string{"swtpm-localca-rootca-cert.pem", "issuercert.pem"} {
		b, err := os.ReadFile(filepath.Join(s.CADir, name))
		if err != nil {
			t.Fatalf("swtpm's local CA: %v", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("swtpm's local CA: %s is not PEM", name)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("swtpm's local CA: %s: %v", name, err)
		}
		s.LocalCA = append(s.LocalCA, cert)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
