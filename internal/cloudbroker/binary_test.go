package cloudbroker

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// monitorEnv, set to a directory, makes the test binary a monitor that starts a broker with
// the default Config.Exe (its own binary) and the identity in that directory, and answers
// "get" lines on stdin with what the service said through the broker (runTestMonitor).
const monitorEnv = "RAMPART_CLOUDBROKER_TEST_MONITOR"

// runTestMonitor is the monitor of TestBrokerRestartRunsTheBinaryItStartedFrom, in its own
// process: it says "ok PID BODY" or "err PID ERROR" for each "get", and stops at EOF.
func runTestMonitor(dir string) int {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			fmt.Println("err 0", err)
			os.Exit(1)
		}
		return b
	}
	server, caPEM := string(read("server")), read("ca.pem")
	b, err := Start(context.Background(), Config{Server: server, RootPEM: caPEM, SocketDir: filepath.Join(dir, "sock"),
		Identity: func() (tls.Certificate, error) {
			return tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		}})
	if err != nil {
		fmt.Println("err 0", err)
		return 1
	}
	defer b.Close()
	c := &http.Client{Transport: b.Transport(), Timeout: 5 * time.Second}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		pid := b.PID()
		resp, err := c.Get(server + "/whoami")
		if err != nil {
			fmt.Println("err", pid, strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		fmt.Printf("ok %d %d %s\n", pid, resp.StatusCode, body)
	}
	return 0
}

// exeInode is the device and inode of the file /proc/PID/exe names (the binary the process
// runs), or of a path.
func exeInode(t *testing.T, path string) [2]uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return [2]uint64{st.Dev, st.Ino}
}

// TestBrokerRestartRunsTheBinaryItStartedFrom: a monitor started from a copy of this test
// binary starts its broker; the copy's path is then replaced by another file (as an update
// replaces the agent's binary) and the broker killed. The restarted broker works, and runs the
// binary the monitor was started from, not what the path names now.
func TestBrokerRestartRunsTheBinaryItStartedFrom(t *testing.T) {
	needRoot(t)
	p := newPKI(t)
	srv := newService(t, p)
	dir := t.TempDir()
	id := p.client("device-1", time.Now().Add(time.Hour))
	keyDER, err := x509.MarshalPKCS8PrivateKey(id.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"server":   []byte(srv.URL),
		"ca.pem":   p.caPEM,
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.Certificate[0]}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(dir, "rampart-agent")
	if err := os.WriteFile(agent, self, 0o755); err != nil {
		t.Fatal(err)
	}
	original := exeInode(t, agent)

	cmd := exec.Command(agent)
	cmd.Env = []string{monitorEnv + "=" + dir}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("the monitor: %v", err)
		}
	}()
	lines := bufio.NewScanner(stdout)
	// get asks the monitor for the service's answer through its broker: the broker's pid and
	// the answer, or "" and the error.
	get := func() (int, string) {
		t.Helper()
		if _, err := io.WriteString(stdin, "get\n"); err != nil {
			t.Fatal(err)
		}
		if !lines.Scan() {
			t.Fatalf("the monitor stopped: %v", lines.Err())
		}
		f := strings.SplitN(lines.Text(), " ", 3)
		if len(f) < 3 {
			t.Fatalf("the monitor said %q", lines.Text())
		}
		pid, _ := strconv.Atoi(f[1])
		if f[0] != "ok" {
			return pid, ""
		}
		return pid, f[2]
	}
	const want = "200 device-1 GET "
	pid, body := get()
	if body != want {
		t.Fatalf("through the broker: %q, want %q", body, want)
	}
	if got := exeInode(t, fmt.Sprintf("/proc/%d/exe", pid)); got != original {
		t.Fatalf("the broker runs %v, not the monitor's binary %v", got, original)
	}

	// The update: another file takes the binary's path. Were it run as the broker, it would
	// serve nothing.
	replacement := agent + ".new"
	if err := os.WriteFile(replacement, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(replacement, agent); err != nil {
		t.Fatal(err)
	}
	if exeInode(t, agent) == original {
		t.Fatal("the path still names the original binary")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		again, body := get()
		if again != pid && body == want {
			if got := exeInode(t, fmt.Sprintf("/proc/%d/exe", again)); got != original {
				t.Fatalf("the restarted broker runs %v, not the monitor's binary %v", got, original)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker did not come back working after its binary's path was replaced (pid %d, %q)", again, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
