// Command blink is Rampart's smallest example application: the red LED follows button A. It
// polls $BUTTON_A through the applibs API and drives $LED_RED to match, on while the button is
// down and off when it is up, logging each change. Its manifest grants exactly those two GPIOs.
//
// CmdArgs: -poll DURATION, how often the button is read (default 50ms).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rampart-iot/rampart/applibs"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "blink:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("blink", flag.ContinueOnError)
	poll := fs.Duration("poll", 50*time.Millisecond, "how often button A is read")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *poll < time.Millisecond || *poll > time.Minute {
		return fmt.Errorf("-poll %s: want 1ms to 1m", *poll)
	}
	c, err := applibs.Dial()
	if err != nil {
		return err
	}
	led, button := c.GPIOByName("$LED_RED"), c.GPIOByName("$BUTTON_A")
	if err := led.OpenAsOutput(false); err != nil {
		return fmt.Errorf("opening the LED: %w", err)
	}
	if err := button.OpenAsInput(); err != nil {
		return fmt.Errorf("opening the button: %w", err)
	}
	// The app is PID 1 of its sandbox: without a handler, SIGTERM would not reach it.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	say(c, "blink: ready; the red LED follows button A")

	on := false
	tick := time.NewTicker(*poll)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			say(c, "blink: stopping")
			return nil
		case <-tick.C:
		}
		pressed, err := button.Get()
		if err != nil {
			if errors.Is(err, applibs.ErrPermission) {
				return err // the manifest will not change while we run
			}
			say(c, "blink: reading the button: "+err.Error())
			continue
		}
		if pressed != on {
			if err := led.Set(pressed); err != nil {
				return fmt.Errorf("setting the LED: %w", err)
			}
			on = pressed
			say(c, fmt.Sprintf("blink: button A %s; red LED %s", upDown(on), onOff(on)))
		}
	}
}

func upDown(pressed bool) string {
	if pressed {
		return "down"
	}
	return "up"
}

// say writes msg to the app's log on the device (Log_Debug), or to stderr, which the agent
// also keeps, if the API fails.
func say(c *applibs.Client, msg string) {
	if err := c.Log(msg); err != nil {
		fmt.Fprintln(os.Stderr, msg)
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
