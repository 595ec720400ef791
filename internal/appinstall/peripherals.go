package appinstall

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rampart-iot/rampart/manifest"
)

// Conflict is one peripheral that an application claims and another installed application
// holds.
type Conflict struct {
	// Peripheral names it by class and value: "GPIO 8", "ISU ISU0", "ADC ADC-CONTROLLER-0".
	Peripheral string
	// Holder and HolderID name the application that holds it.
	Holder, HolderID string
}

// ConflictError refuses an application that claims peripherals other installed applications
// hold: peripheral grants are exclusive, as on Azure Sphere.
type ConflictError struct {
	// App and AppID name the application refused.
	App, AppID string
	Conflicts  []Conflict
}

func (e *ConflictError) Error() string {
	parts := make([]string, len(e.Conflicts))
	for i, c := range e.Conflicts {
		parts[i] = fmt.Sprintf("application %q (%s) claims %s, which application %q (%s) holds", e.App, e.AppID, c.Peripheral, c.Holder, c.HolderID)
	}
	return strings.Join(parts, "; ") + "; peripheral grants are exclusive"
}

// claims returns the peripherals m claims, by the keys the service uses for the same check:
// UART, I2C and SPI share the ISU blocks, so those three are one class.
func claims(m *manifest.Manifest) []string {
	c := &m.Capabilities
	var out []string
	for _, class := range []struct {
		name  string
		lists [][]manifest.Peripheral
	}{
		{"GPIO", [][]manifest.Peripheral{c.Gpio}}, {"ISU", [][]manifest.Peripheral{c.Uart, c.I2cMaster, c.SpiMaster}},
		{"ADC", [][]manifest.Peripheral{c.Adc}}, {"PWM", [][]manifest.Peripheral{c.Pwm}},
		{"I2S", [][]manifest.Peripheral{c.I2sSubordinate}}, {"interrupt", [][]manifest.Peripheral{c.ExternalInterrupt}},
	} {
		for _, l := range class.lists {
			for _, p := range l {
				key := class.name + " " + strings.ToUpper(p.String())
				if !slices.Contains(out, key) {
					out = append(out, key)
				}
			}
		}
	}
	return out
}

// conflicts checks m, the manifest component cid would run, against the current manifests of
// every other installed component.
func conflicts(st *state, cid string, m *manifest.Manifest) error {
	mine := claims(m)
	if len(mine) == 0 {
		return nil
	}
	e := &ConflictError{App: m.Name, AppID: cid}
	for _, other := range st.ids() {
		if other == cid {
			continue
		}
		om := st.Components[other].Current.Manifest
		for _, key := range claims(om) {
			if slices.Contains(mine, key) {
				e.Conflicts = append(e.Conflicts, Conflict{Peripheral: key, Holder: om.Name, HolderID: other})
			}
		}
	}
	if len(e.Conflicts) > 0 {
		return e
	}
	return nil
}
