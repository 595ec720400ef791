// Command app is the application the agent's end-to-end test deploys: it prints its version
// and runs until SIGTERM, or, given -crash, exits with status 1 at once, as a broken release
// would. Given -led, it turns the board's red LED (GPIO 8) on through the applibs API. Given
// -defer, it defers every update announced to it by 600 minutes, and resumes them when button
// B (GPIO 13) is pressed. Given -crash-after D, it runs for D and then exits with status 1, as a
// release that crashes in the field (not on start) would.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

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
	if i := slices.Index(os.Args, "-crash-after"); i > 0 && i+1 < len(os.Args) {
		if d, err := time.ParseDuration(os.Args[i+1]); err == nil {
			time.AfterFunc(d, func() {
				fmt.Println("crashing after", d)
				os.Exit(1)
			})
		}
	}
	if slices.Contains(os.Args[1:], "-defer") {
		go deferUpdates()
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	<-term
}

func deferUpdates() {
	c, err := applibs.Dial()
	if err != nil {
		fmt.Println("defer:", err)
		return
	}
	button := c.GPIO(13)
	if err := button.OpenAsInput(); err != nil {
		fmt.Println("defer: button:", err)
	}
	var seq uint64
	for {
		evs, err := c.WaitSysEvents(context.Background(), seq, time.Second)
		if err != nil {
			fmt.Println("defer: wait:", err)
			time.Sleep(time.Second)
		}
		for _, e := range evs {
			seq = e.Seq
			fmt.Println("sysevent", e.UpdateType, e.Status)
			if e.Status == applibs.SysEventPending {
				d, err := c.DeferUpdate(e.UpdateType, 600)
				fmt.Println("deferred", e.UpdateType, "until", d.Until.Format(time.RFC3339), err)
			}
		}
		if pressed, err := button.Get(); err == nil && pressed {
			for _, t := range []string{applibs.UpdateTypeSystem, applibs.UpdateTypeApp} {
				fmt.Println("resume", t, c.ResumeUpdate(t))
			}
		}
	}
}
