// Command rampart-agent is the Rampart device agent. See internal/agentcli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rampart-iot/rampart/internal/agentcli"
	"github.com/rampart-iot/rampart/internal/cloudbroker"
	_ "github.com/rampart-iot/rampart/internal/residency" // its init keeps the binary's untouched pages out of memory
	"github.com/rampart-iot/rampart/internal/sandbox"
)

func main() {
	sandbox.Init()     // in a sandbox's setup process, this builds the sandbox and execs the app
	cloudbroker.Init() // in the cloud broker's process, this confines it and serves
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agentcli.Run(ctx, os.Args[1:], agentcli.IO{Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
