// Command app is a test application that uses the applibs SDK inside a real sandbox and prints
// one JSON line per step.
package main

import (
	"encoding/json"
	"errors"
	"os"
	"time"

	"github.com/rampart-iot/rampart/applibs"
)

func report(v map[string]any) { _ = json.NewEncoder(os.Stdout).Encode(v) }

func errInfo(err error) map[string]any {
	m := map[string]any{"err": ""}
	if err != nil {
		m["err"] = err.Error()
		m["permission"] = errors.Is(err, applibs.ErrPermission)
		var e *applibs.Error
		if errors.As(err, &e) {
			m["capability"] = e.Capability
		}
	}
	return m
}

func main() {
	c, err := applibs.Dial()
	if err != nil {
		report(errInfo(err))
		os.Exit(1)
	}
	switch os.Args[1] {
	case "led":
		r := errInfo(c.GPIOByName("$LED_RED").Set(true))
		report(r)
		_, err := c.I2C("$TEMP_SENSOR_I2C").WriteThenRead(0x48, []byte{0}, 2)
		report(errInfo(err))
	case "temp":
		d, err := c.I2C("ISU2").WriteThenRead(0x48, []byte{0}, 2)
		r := errInfo(err)
		if err == nil {
			r["celsius"] = float64(int16(uint16(d[0])<<8|uint16(d[1]))>>4) / 16
		}
		report(r)
	case "button":
		_ = c.Log("waiting for button A")
		report(map[string]any{"ready": true})
		for range 3000 {
			v, err := c.GPIO(12).Get()
			if err != nil {
				report(errInfo(err))
				os.Exit(1)
			}
			if v {
				report(map[string]any{"pressed": true})
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		report(map[string]any{"pressed": false})
	}
}
