package hardware

import (
	"testing"

	"github.com/rampart-iot/rampart/manifest"
)

func TestEmulatedDefinitionsResolve(t *testing.T) {
	h, err := manifest.LoadHardwareDefinitions(Emulated())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"$LED_RED": "8", "$BUTTON_A": "12", "$UART_LOOPBACK": "ISU0", "$TEMP_SENSOR_I2C": "ISU2",
		"$ADC_CONTROLLER": "ADC-CONTROLLER-0", "$PWM_CONTROLLER": "PWM-CONTROLLER-0",
	} {
		r, err := h.Resolve(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if r.Value == nil || r.Value.String() != want {
			t.Errorf("%s = %v, want %s", name, r.Value, want)
		}
	}
	m, err := manifest.Parse([]byte(`{"SchemaVersion":1,"Name":"blink","ComponentId":"3f2504e0-4f89-41d3-9a0c-0305e82c3301","EntryPoint":"/bin/app","CmdArgs":[],"Capabilities":{"Gpio":["$LED_RED","$BUTTON_A"],"I2cMaster":["$TEMP_SENSOR_I2C"]},"ApplicationType":"Default"}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Resolve(h)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Capabilities.Gpio; len(got) != 2 || got[0].Number != 8 || got[1].Number != 12 {
		t.Errorf("resolved Gpio %v", got)
	}
}
