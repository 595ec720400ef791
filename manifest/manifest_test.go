package manifest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGoldenManifests parses real-shaped manifests and compares what they parse to with golden
// files; each must also survive a round trip through its JSON form.
func TestGoldenManifests(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) < 5 {
		t.Fatalf("testdata manifests: %v %v", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			m, err := ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", strings.TrimSuffix(filepath.Base(file), ".json")+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenManifests -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("parsed manifest differs from %s:\n%s", golden, got)
			}
			back, err := Parse(got)
			if err != nil {
				t.Fatalf("re-parsing the marshalled manifest: %v", err)
			}
			if !reflect.DeepEqual(back, m) {
				t.Errorf("round trip changed the manifest:\n%+v\n%+v", m, back)
			}
			if err := m.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParseNormalizes(t *testing.T) {
	m, err := ReadFile("testdata/azureiot.json")
	if err != nil {
		t.Fatal(err)
	}
	if m.ComponentId != "819255ff-8640-41fd-aea7-f85d34c491d5" {
		t.Errorf("ComponentId = %q, want lower case", m.ComponentId)
	}
	if m.Capabilities.DeviceAuthentication != "6f8c1a2b-3d4e-4f50-8a6b-7c8d9e0f1a2b" {
		t.Errorf("DeviceAuthentication = %q, want lower case", m.Capabilities.DeviceAuthentication)
	}
	min, err := ReadFile("testdata/minimal.json")
	if err != nil {
		t.Fatal(err)
	}
	if min.ApplicationType != ApplicationTypeDefault || min.CmdArgs == nil || len(min.Capabilities.Requested()) != 0 {
		t.Errorf("minimal manifest: %+v", min)
	}
	rt, err := ReadFile("testdata/intercore_real_time.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []Peripheral{{Number: 8}, {Number: 12}}
	if !reflect.DeepEqual(rt.Capabilities.Gpio, want) || rt.Capabilities.Uart[0] != (Peripheral{Name: "ISU0"}) {
		t.Errorf("RTApp peripherals: %+v", rt.Capabilities)
	}
}

// TestCapabilityKeys checks that every capability key of the reference table is a field, in
// the documented order, of both the parsed and the wire form, and that the enforced ones are
// among them.
func TestCapabilityKeys(t *testing.T) {
	reference := []string{
		"AllowedConnections", "AllowedTcpServerPorts", "AllowedUdpServerPorts",
		"AllowedApplicationConnections", "Gpio", "Uart", "I2cMaster", "SpiMaster", "Adc", "Pwm",
		"I2sSubordinate", "ExternalInterrupt", "MutableStorage", "DeviceAuthentication",
		"CertStore", "WifiConfig", "EnterpriseWifiConfig", "NetworkConfig",
		"ReadNetworkProxyConfig", "HardwareAddressConfig", "DhcpService", "SntpService",
		"TimeSyncConfig", "SystemTime", "SystemEventNotifications", "SoftwareUpdateDeferral",
		"PowerControls", "HeapMemStats", "ResetMemoryWatermarks",
	}
	if !slices.Equal(AllCapabilities(), reference) {
		t.Errorf("AllCapabilities = %v", AllCapabilities())
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[Capabilities](), reflect.TypeFor[wireCapabilities]()} {
		var names []string
		for i := 0; i < typ.NumField(); i++ {
			names = append(names, jsonName(typ.Field(i)))
		}
		if !slices.Equal(names, reference) {
			t.Errorf("%v keys = %v", typ, names)
		}
	}
	wantEnforced := []string{"AllowedConnections", "AllowedTcpServerPorts", "AllowedUdpServerPorts",
		"AllowedApplicationConnections", "Gpio", "Uart", "I2cMaster", "SpiMaster", "Adc", "Pwm",
		"MutableStorage", "DeviceAuthentication", "SystemEventNotifications",
		"SoftwareUpdateDeferral", "PowerControls"}
	if !slices.Equal(EnforcedCapabilities(), wantEnforced) {
		t.Errorf("EnforcedCapabilities = %v", EnforcedCapabilities())
	}
	for _, e := range EnforcedCapabilities() {
		if !slices.Contains(reference, e) {
			t.Errorf("enforced capability %s is not a capability", e)
		}
	}
	if IsEnforced("WifiConfig") || !IsEnforced("Gpio") {
		t.Error("IsEnforced is wrong")
	}
}

func TestRequestedAndNotEnforced(t *testing.T) {
	m, err := ReadFile("testdata/every_capability.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Capabilities.Requested(); len(got) != len(AllCapabilities())-2 {
		t.Errorf("Requested = %v; want every capability but the two real-time ones", got)
	}
	want := []string{"CertStore", "WifiConfig", "EnterpriseWifiConfig", "NetworkConfig",
		"ReadNetworkProxyConfig", "HardwareAddressConfig", "DhcpService", "SntpService",
		"TimeSyncConfig", "SystemTime", "HeapMemStats", "ResetMemoryWatermarks"}
	if got := m.NotEnforced(); !slices.Equal(got, want) {
		t.Errorf("NotEnforced = %v, want %v", got, want)
	}
	pns, err := ReadFile("testdata/private_network_services.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := pns.NotEnforced(); !slices.Equal(got, []string{"NetworkConfig", "ReadNetworkProxyConfig", "HardwareAddressConfig", "DhcpService", "SntpService", "TimeSyncConfig"}) {
		t.Errorf("NotEnforced = %v", got)
	}
}

const testComponentID = "1689d8b2-c835-2e27-27ad-e894d6d15fa9"

// doc builds a manifest from the base one: each override replaces a top-level field with raw
// JSON, or removes it when the value is "-"; extra keys are appended.
func doc(overrides map[string]string) string {
	base := [][2]string{
		{"SchemaVersion", `1`},
		{"Name", `"Test"`},
		{"ComponentId", `"` + testComponentID + `"`},
		{"EntryPoint", `"/bin/app"`},
		{"CmdArgs", `[]`},
		{"Capabilities", `{}`},
	}
	var parts []string
	used := map[string]bool{}
	for _, kv := range base {
		v := kv[1]
		if o, ok := overrides[kv[0]]; ok {
			v = o
			used[kv[0]] = true
		}
		if v == "-" {
			continue
		}
		parts = append(parts, `"`+kv[0]+`":`+v)
	}
	var extra []string
	for k := range overrides {
		if !used[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		parts = append(parts, `"`+k+`":`+overrides[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// caps builds a manifest with the given Capabilities object body.
func caps(body string) string { return doc(map[string]string{"Capabilities": "{" + body + "}"}) }

func rtCaps(body string) string {
	return doc(map[string]string{"Capabilities": "{" + body + "}", "ApplicationType": `"RealTimeCapable"`})
}

func TestParseRejects(t *testing.T) {
	long := strings.Repeat("a", 64)
	hosts := make([]string, MaxHosts+1)
	for i := range hosts {
		hosts[i] = `"h` + strings.Repeat("x", i%10) + string(rune('a'+i%26)) + `.example.com"`
	}
	for _, tc := range []struct {
		name, doc string
		path      string // the path of a problem that must be reported
		msg       string // a fragment of that problem's message
	}{
		// The document.
		{"empty", ``, "", "empty document"},
		{"not an object", `[]`, "", "must be an object"},
		{"malformed", `{"SchemaVersion":1,`, "", "malformed JSON"},
		{"trailing data", doc(nil) + `{}`, "", "after the JSON document"},
		{"duplicate key", `{"SchemaVersion":1,"SchemaVersion":1}`, "", "duplicate key"},
		{"too large", `{"Name":"` + strings.Repeat("x", MaxManifestSize) + `"}`, "", "the limit is"},
		{"unknown key", doc(map[string]string{"Policy": `{}`}), "Policy", "unknown field"},
		{"wrong case key", doc(map[string]string{"schemaVersion": `1`}), "schemaVersion", "unknown field"},
		// Required fields.
		{"no SchemaVersion", doc(map[string]string{"SchemaVersion": "-"}), "SchemaVersion", "is required"},
		{"null SchemaVersion", doc(map[string]string{"SchemaVersion": "null"}), "SchemaVersion", "is required"},
		{"no Name", doc(map[string]string{"Name": "-"}), "Name", "is required"},
		{"no ComponentId", doc(map[string]string{"ComponentId": "-"}), "ComponentId", "is required"},
		{"no EntryPoint", doc(map[string]string{"EntryPoint": "-"}), "EntryPoint", "is required"},
		{"no CmdArgs", doc(map[string]string{"CmdArgs": "-"}), "CmdArgs", "is required"},
		{"no Capabilities", doc(map[string]string{"Capabilities": "-"}), "Capabilities", "is required"},
		// Top-level values.
		{"SchemaVersion 2", doc(map[string]string{"SchemaVersion": `2`}), "SchemaVersion", "must be 1"},
		{"SchemaVersion string", doc(map[string]string{"SchemaVersion": `"1"`}), "SchemaVersion", "wrong type"},
		{"SchemaVersion float", doc(map[string]string{"SchemaVersion": `1.5`}), "SchemaVersion", "wrong type"},
		{"Name empty", doc(map[string]string{"Name": `""`}), "Name", "must not be empty"},
		{"Name too long", doc(map[string]string{"Name": `"` + strings.Repeat("n", MaxNameLength+1) + `"`}), "Name", "the limit is"},
		{"Name control", doc(map[string]string{"Name": `"a\u0007b"`}), "Name", "control characters"},
		{"Name number", doc(map[string]string{"Name": `5`}), "Name", "wrong type"},
		{"ComponentId short", doc(map[string]string{"ComponentId": `"1689d8b2-c835"`}), "ComponentId", "must be a UUID"},
		{"ComponentId braces", doc(map[string]string{"ComponentId": `"{` + testComponentID[1:35] + `}"`}), "ComponentId", "must be a UUID"},
		{"ComponentId non-hex", doc(map[string]string{"ComponentId": `"1689d8b2-c835-2e27-27ad-e894d6d15fxg"`}), "ComponentId", "must be a UUID"},
		{"ComponentId nil", doc(map[string]string{"ComponentId": `"00000000-0000-0000-0000-000000000000"`}), "ComponentId", "nil UUID"},
		{"EntryPoint relative", doc(map[string]string{"EntryPoint": `"bin/app"`}), "EntryPoint", "absolute path"},
		{"EntryPoint dotdot", doc(map[string]string{"EntryPoint": `"/bin/../../etc/passwd"`}), "EntryPoint", `".." segments`},
		{"EntryPoint dot", doc(map[string]string{"EntryPoint": `"/bin/./app"`}), "EntryPoint", `"." segments`},
		{"EntryPoint empty segment", doc(map[string]string{"EntryPoint": `"/bin//app"`}), "EntryPoint", "empty path segments"},
		{"EntryPoint directory", doc(map[string]string{"EntryPoint": `"/bin/"`}), "EntryPoint", "not a directory"},
		{"EntryPoint root", doc(map[string]string{"EntryPoint": `"/"`}), "EntryPoint", "not a directory"},
		{"EntryPoint empty", doc(map[string]string{"EntryPoint": `""`}), "EntryPoint", "must not be empty"},
		{"EntryPoint NUL", doc(map[string]string{"EntryPoint": `"/bin/a\u0000"`}), "EntryPoint", "control characters"},
		{"EntryPoint too long", doc(map[string]string{"EntryPoint": `"/` + strings.Repeat("a", MaxPathLength) + `"`}), "EntryPoint", "the limit is"},
		{"CmdArgs string", doc(map[string]string{"CmdArgs": `"--x"`}), "CmdArgs", "wrong type"},
		{"CmdArgs number", doc(map[string]string{"CmdArgs": `["a", 1]`}), "CmdArgs[1]", "must be a string"},
		{"CmdArgs too many", doc(map[string]string{"CmdArgs": `[` + strings.Repeat(`"a",`, MaxCmdArgs) + `"a"]`}), "CmdArgs", "the limit is"},
		{"CmdArg too long", doc(map[string]string{"CmdArgs": `["` + strings.Repeat("a", MaxCmdArgLength+1) + `"]`}), "CmdArgs[0]", "the limit is"},
		{"CmdArgs too long together", doc(map[string]string{"CmdArgs": `[` + strings.Repeat(`"`+strings.Repeat("a", 1000)+`",`, 9) + `"a"]`}), "CmdArgs", "total"},
		{"CmdArg NUL", doc(map[string]string{"CmdArgs": `["a\u0000b"]`}), "CmdArgs[0]", "NUL"},
		{"ApplicationType unknown", doc(map[string]string{"ApplicationType": `"Service"`}), "ApplicationType", "must be"},
		{"ApplicationType case", doc(map[string]string{"ApplicationType": `"default"`}), "ApplicationType", "must be"},
		{"MallocVersion 3", doc(map[string]string{"MallocVersion": `3`}), "MallocVersion", "must be 1 to 2"},
		{"MallocVersion 0", doc(map[string]string{"MallocVersion": `0`}), "MallocVersion", "must be 1 to 2"},
		{"MallocVersion string", doc(map[string]string{"MallocVersion": `"2"`}), "MallocVersion", "wrong type"},
		{"Capabilities array", doc(map[string]string{"Capabilities": `[]`}), "Capabilities", "must be an object"},
		{"unknown capability", caps(`"Camera":true`), "Capabilities.Camera", "unknown field"},
		// Hosts.
		{"hosts not array", caps(`"AllowedConnections":"example.com"`), "Capabilities.AllowedConnections", "wrong type"},
		{"host number", caps(`"AllowedConnections":[5]`), "Capabilities.AllowedConnections[0]", "must be a string"},
		{"host empty", caps(`"AllowedConnections":[""]`), "Capabilities.AllowedConnections[0]", "must not be empty"},
		{"host URL", caps(`"AllowedConnections":["https://example.com"]`), "Capabilities.AllowedConnections[0]", "not a URL"},
		{"host port", caps(`"AllowedConnections":["example.com:443"]`), "Capabilities.AllowedConnections[0]", "host:port"},
		{"host IPv6", caps(`"AllowedConnections":["::1"]`), "Capabilities.AllowedConnections[0]", "IPv6"},
		{"host bad IPv4", caps(`"AllowedConnections":["192.168.1.256"]`), "Capabilities.AllowedConnections[0]", "not a valid IPv4"},
		{"host short IPv4", caps(`"AllowedConnections":["10.1.2"]`), "Capabilities.AllowedConnections[0]", "not a valid IPv4"},
		{"host numeric TLD", caps(`"AllowedConnections":["example.123"]`), "Capabilities.AllowedConnections[0]", "neither an IPv4 address nor a DNS name"},
		{"host trailing dot", caps(`"AllowedConnections":["example.com."]`), "Capabilities.AllowedConnections[0]", "end with a dot"},
		{"host empty label", caps(`"AllowedConnections":["example..com"]`), "Capabilities.AllowedConnections[0]", "empty label"},
		{"host space", caps(`"AllowedConnections":["exa mple.com"]`), "Capabilities.AllowedConnections[0]", "character other than"},
		{"host hyphen", caps(`"AllowedConnections":["-example.com"]`), "Capabilities.AllowedConnections[0]", "hyphen"},
		{"host long label", caps(`"AllowedConnections":["` + long + `.com"]`), "Capabilities.AllowedConnections[0]", "longer than 63"},
		{"host too long", caps(`"AllowedConnections":["` + strings.Repeat("abcdefghi.", 26) + `com"]`), "Capabilities.AllowedConnections[0]", "the limit is 253"},
		{"host wildcard inside", caps(`"AllowedConnections":["a.*.example.com"]`), "Capabilities.AllowedConnections[0]", "wildcard"},
		{"host wildcard TLD", caps(`"AllowedConnections":["*.com"]`), "Capabilities.AllowedConnections[0]", "wildcard"},
		{"host partial wildcard", caps(`"AllowedConnections":["a*.example.com"]`), "Capabilities.AllowedConnections[0]", "character other than"},
		{"host duplicate", caps(`"AllowedConnections":["Example.com","example.COM"]`), "Capabilities.AllowedConnections[1]", "repeats Capabilities.AllowedConnections[0]"},
		{"too many hosts", caps(`"AllowedConnections":[` + strings.Join(hosts, ",") + `]`), "Capabilities.AllowedConnections", "the limit is 100"},
		// Ports.
		{"port zero", caps(`"AllowedTcpServerPorts":[0]`), "Capabilities.AllowedTcpServerPorts[0]", "1 to 65535"},
		{"port too high", caps(`"AllowedUdpServerPorts":[65536]`), "Capabilities.AllowedUdpServerPorts[0]", "1 to 65535"},
		{"port negative", caps(`"AllowedUdpServerPorts":[-1]`), "Capabilities.AllowedUdpServerPorts[0]", "1 to 65535"},
		{"port float", caps(`"AllowedTcpServerPorts":[80.5]`), "Capabilities.AllowedTcpServerPorts[0]", "must be an integer, not 80.5"},
		{"port string", caps(`"AllowedTcpServerPorts":["80"]`), "Capabilities.AllowedTcpServerPorts[0]", "must be an integer, not a string"},
		{"port duplicate", caps(`"AllowedTcpServerPorts":[80,443,80]`), "Capabilities.AllowedTcpServerPorts[2]", "repeats Capabilities.AllowedTcpServerPorts[0]"},
		{"too many ports", caps(`"AllowedTcpServerPorts":[` + portList(MaxServerPorts+1) + `]`), "Capabilities.AllowedTcpServerPorts", "the limit is"},
		// Application connections.
		{"app connection not UUID", caps(`"AllowedApplicationConnections":["app"]`), "Capabilities.AllowedApplicationConnections[0]", "must be a UUID"},
		{"app connection self", caps(`"AllowedApplicationConnections":["` + strings.ToUpper(testComponentID) + `"]`), "Capabilities.AllowedApplicationConnections[0]", "own component ID"},
		{"app connection duplicate", caps(`"AllowedApplicationConnections":["005180bc-402f-4cb3-a662-72937dbcde47","005180BC-402F-4CB3-A662-72937DBCDE47"]`), "Capabilities.AllowedApplicationConnections[1]", "repeats"},
		// Peripherals.
		{"gpio negative", caps(`"Gpio":[-1]`), "Capabilities.Gpio[0]", "0 to 1023"},
		{"gpio too high", caps(`"Gpio":[1024]`), "Capabilities.Gpio[0]", "0 to 1023"},
		{"gpio float", caps(`"Gpio":[1.5]`), "Capabilities.Gpio[0]", "GPIO number"},
		{"gpio controller", caps(`"Gpio":["ISU0"]`), "Capabilities.Gpio[0]", "GPIO number or a hardware-definition name"},
		{"gpio bool", caps(`"Gpio":[true]`), "Capabilities.Gpio[0]", "number or a string, not a boolean"},
		{"gpio object", caps(`"Gpio":{"a":1}`), "Capabilities.Gpio", "wrong type"},
		{"gpio duplicate", caps(`"Gpio":[8,"$LED",8]`), "Capabilities.Gpio[2]", "repeats Capabilities.Gpio[0]"},
		{"gpio duplicate name", caps(`"Gpio":["$LED","$LED"]`), "Capabilities.Gpio[1]", "repeats Capabilities.Gpio[0]"},
		{"reference empty", caps(`"Gpio":["$"]`), "Capabilities.Gpio[0]", "must not be empty"},
		{"reference bad", caps(`"Gpio":["$1LED"]`), "Capabilities.Gpio[0]", "C identifier"},
		{"reference dash", caps(`"Uart":["$MY-UART"]`), "Capabilities.Uart[0]", "C identifier"},
		{"uart number", caps(`"Uart":[0]`), "Capabilities.Uart[0]", "controller name"},
		{"uart lower case", caps(`"Uart":["isu0"]`), "Capabilities.Uart[0]", "controller name"},
		{"uart empty", caps(`"Uart":[""]`), "Capabilities.Uart[0]", "controller name"},
		{"adc bad controller", caps(`"Adc":["ADC CONTROLLER 0"]`), "Capabilities.Adc[0]", "controller name"},
		{"pwm trailing hyphen", caps(`"Pwm":["PWM-"]`), "Capabilities.Pwm[0]", "controller name"},
		{"i2c duplicate", caps(`"I2cMaster":["ISU2","ISU2"]`), "Capabilities.I2cMaster[1]", "repeats"},
		{"spi too many", caps(`"SpiMaster":[` + strings.TrimSuffix(strings.Repeat(`"ISU0",`, MaxPeripherals+1), ",") + `]`), "Capabilities.SpiMaster", "the limit is"},
		{"i2s on high-level app", caps(`"I2sSubordinate":["I2S0"]`), "Capabilities.I2sSubordinate", "only for real-time"},
		{"eint on high-level app", caps(`"ExternalInterrupt":["EINT4"]`), "Capabilities.ExternalInterrupt", "only for real-time"},
		{"RTApp reference", rtCaps(`"Gpio":["$SAMPLE_LED"]`), "Capabilities.Gpio[0]", "raw values"},
		{"RTApp deferral", rtCaps(`"SoftwareUpdateDeferral":true`), "Capabilities.SoftwareUpdateDeferral", "cannot defer"},
		// MutableStorage.
		{"storage no size", caps(`"MutableStorage":{}`), "Capabilities.MutableStorage.SizeKB", "is required"},
		{"storage zero", caps(`"MutableStorage":{"SizeKB":0}`), "Capabilities.MutableStorage.SizeKB", "1 to 65536"},
		{"storage too big", caps(`"MutableStorage":{"SizeKB":65537}`), "Capabilities.MutableStorage.SizeKB", "1 to 65536"},
		{"storage string", caps(`"MutableStorage":{"SizeKB":"8"}`), "Capabilities.MutableStorage.SizeKB", "wrong type"},
		{"storage unknown key", caps(`"MutableStorage":{"SizeKB":8,"Path":"/x"}`), "Capabilities.MutableStorage.Path", "unknown field"},
		{"storage number", caps(`"MutableStorage":8`), "Capabilities.MutableStorage", "must be an object"},
		// DeviceAuthentication.
		{"device auth not GUID", caps(`"DeviceAuthentication":"tenant"`), "Capabilities.DeviceAuthentication", "must be a UUID"},
		{"device auth bool", caps(`"DeviceAuthentication":true`), "Capabilities.DeviceAuthentication", "wrong type"},
		// Booleans.
		{"bool string", caps(`"CertStore":"true"`), "Capabilities.CertStore", "wrong type"},
		{"bool number", caps(`"WifiConfig":1`), "Capabilities.WifiConfig", "wrong type"},
		{"bool array", caps(`"HeapMemStats":[true]`), "Capabilities.HeapMemStats", "wrong type"},
		// PowerControls.
		{"power controls empty", caps(`"PowerControls":[]`), "Capabilities.PowerControls", "must not be empty"},
		{"power control unknown", caps(`"PowerControls":["Hibernate"]`), "Capabilities.PowerControls[0]", "must be one of"},
		{"power control duplicate", caps(`"PowerControls":["ForceReboot","ForceReboot"]`), "Capabilities.PowerControls[1]", "repeats"},
		{"power controls too many", caps(`"PowerControls":["ForceReboot","ForceReboot","ForceReboot","ForceReboot"]`), "Capabilities.PowerControls", "only 3"},
		{"power controls bool", caps(`"PowerControls":true`), "Capabilities.PowerControls", "wrong type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("error is %T, want *Error: %v", err, err)
			}
			for _, p := range e.Problems {
				if p.Path == tc.path && strings.Contains(p.Message, tc.msg) {
					return
				}
			}
			t.Errorf("no problem at %q containing %q; got %v", tc.path, tc.msg, err)
		})
	}
}

func portList(n int) string {
	ports := make([]string, n)
	for i := range ports {
		ports[i] = strconv.Itoa(1000 + i)
	}
	return strings.Join(ports, ",")
}

// TestParseReportsEveryProblem checks that one document's problems all come back at once, and
// each only once.
func TestParseReportsEveryProblem(t *testing.T) {
	d := doc(map[string]string{
		"SchemaVersion": `2`,
		"EntryPoint":    `"app"`,
		"CmdArgs":       "-",
		"Bogus":         `1`,
		"Capabilities":  `{"Gpio":["ISU0", 3, 3],"AllowedTcpServerPorts":[0],"CertStore":"yes","Wifi":true}`,
	})
	_, err := Parse([]byte(d))
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("got %v", err)
	}
	want := []string{"Bogus", "Capabilities.CertStore", "Capabilities.Wifi", "SchemaVersion", "EntryPoint", "CmdArgs",
		"Capabilities.AllowedTcpServerPorts[0]", "Capabilities.Gpio[0]", "Capabilities.Gpio[2]"}
	var got []string
	for _, p := range e.Problems {
		got = append(got, p.Path)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problem paths = %v\nwant %v\n(%v)", got, want, err)
	}
}

func TestValidate(t *testing.T) {
	m := &Manifest{
		SchemaVersion: 1, Name: "Go", ComponentId: testComponentID, EntryPoint: "/bin/app",
		ApplicationType: ApplicationTypeDefault,
		Capabilities:    Capabilities{Gpio: []Peripheral{{Number: 3}}, PowerControls: []string{PowerControlForceReboot}},
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	m.Capabilities.Gpio = append(m.Capabilities.Gpio, Peripheral{Number: 3})
	m.EntryPoint = "app"
	err := m.Validate()
	if err == nil || !strings.Contains(err.Error(), "Capabilities.Gpio[1]: repeats") || !strings.Contains(err.Error(), "EntryPoint:") {
		t.Fatalf("Validate = %v", err)
	}
}

// FuzzParse feeds arbitrary documents to Parse: it must not panic, and what it accepts must
// survive a round trip through its JSON form unchanged.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(caps(`"Gpio":[1,"$A","$A"],"MutableStorage":{"SizeKB":1}`)))
	f.Add([]byte(rtCaps(`"Uart":["ISU0"],"ExternalInterrupt":["EINT1"]`)))
	f.Add([]byte(`{"SchemaVersion":1e0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error is %T, not *Error: %v", err, err)
			}
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("accepted %q but rejects its own output %s: %v", data, out, err)
		}
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip changed %q:\n%+v\n%+v", data, m, back)
		}
	})
}
