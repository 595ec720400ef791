// Command app is the application the agent's end-to-end test deploys: it prints its version
// and runs until SIGTERM, or, given -crash, exits with status 1 at once, as a broken release
// would. Given -led, it turns the board's red LED (GPIO 8) on through the applibs API.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/rampart-iot/rampart/applibs"
)

func main() {
	fmt.Println("running", os.Getenv("RAMPART_IMAGE_VERSION"))
	if slices.Contains(os.Args[1:], "-crash") {
		fmt.Println("crashing on start")
		os.Exit(1)
	}
	if slices.Contains(os.Args[1:], "-led") {
		c, err := applibs.Dial()
		if err == nil {
			led := c.GPIO(8)
			if err = led.OpenAsOutput(false); err == nil {
				err = led.Set(true)
			}
		}
		fmt.Println("led:", err)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	<-term
}
