// Command app is the application the agent's end-to-end test deploys: it prints its version
// and runs until SIGTERM, or, given -crash, exits with status 1 at once, as a broken release
// would.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

func main() {
	fmt.Println("running", os.Getenv("RAMPART_IMAGE_VERSION"))
	if slices.Contains(os.Args[1:], "-crash") {
		fmt.Println("crashing on start")
		os.Exit(1)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	<-term
}
