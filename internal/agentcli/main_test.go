package agentcli

import (
	"os"
	"testing"

	"github.com/rampart-iot/rampart/internal/cloudbroker"
	"github.com/rampart-iot/rampart/internal/sandbox"
)

// TestMain lets this test binary serve as the sandbox's setup process, as rampart-agent's main
// does: the end-to-end test runs real applications.
func TestMain(m *testing.M) {
	sandbox.Init()
	cloudbroker.Init()
	os.Exit(m.Run())
}
