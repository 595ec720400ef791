// Command rampart is the Rampart CLI and, as `rampart server`, the security service.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rampart-iot/rampart/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	home, _ := os.UserHomeDir()
	code := cli.Run(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv, HomeDir: home})
	stop()
	os.Exit(code)
}
