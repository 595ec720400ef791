package manifest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Bounds on capabilities.
const (
	// MaxHosts bounds AllowedConnections.
	MaxHosts = 100
	// MaxHostLength bounds one host name, in bytes (the DNS limit).
	MaxHostLength = 253
	// MaxLabelLength bounds one label of a host name, in bytes (the DNS limit).
	MaxLabelLength = 63
	// MaxServerPorts bounds AllowedTcpServerPorts and AllowedUdpServerPorts, each.
	MaxServerPorts = 64
	// MaxApplicationConnections bounds AllowedApplicationConnections.
	MaxApplicationConnections = 32
	// MaxPeripherals bounds each peripheral capability (Gpio, Uart, ...).
	MaxPeripherals = 128
	// MaxGPIO is the highest GPIO number a manifest may name.
	MaxGPIO = 1023
	// MaxControllerNameLength bounds a controller name such as "ADC-CONTROLLER-0".
	MaxControllerNameLength = 32
	// MaxPeripheralNameLength bounds a hardware-definition name, with or without its "$".
	MaxPeripheralNameLength = 128
	// MinMutableStorageKB and MaxMutableStorageKB bound MutableStorage.SizeKB.
	MinMutableStorageKB = 1
	MaxMutableStorageKB = 65536
)

// Capabilities are what an application may use. The zero value grants nothing. Field names are
// the manifest's keys.
type Capabilities struct {
	// AllowedConnections are the hosts the application may connect to: DNS names (the leftmost
	// label may be "*"), IPv4 addresses, or DNS-SD names such as "_sample._tcp.local".
	AllowedConnections []string `json:"AllowedConnections,omitempty"`
	// AllowedTcpServerPorts and AllowedUdpServerPorts are the ports it may listen on.
	AllowedTcpServerPorts []int `json:"AllowedTcpServerPorts,omitempty"`
	AllowedUdpServerPorts []int `json:"AllowedUdpServerPorts,omitempty"`
	// AllowedApplicationConnections are the component IDs (lower case) of the applications it
	// may talk to; each must list this application in return.
	AllowedApplicationConnections []string `json:"AllowedApplicationConnections,omitempty"`
	// Peripherals: GPIO numbers, controller names ("ISU0", "ADC-CONTROLLER-0") or references
	// ("$SAMPLE_LED") to hardware definitions.
	Gpio              []Peripheral `json:"Gpio,omitempty"`
	Uart              []Peripheral `json:"Uart,omitempty"`
	I2cMaster         []Peripheral `json:"I2cMaster,omitempty"`
	SpiMaster         []Peripheral `json:"SpiMaster,omitempty"`
	Adc               []Peripheral `json:"Adc,omitempty"`
	Pwm               []Peripheral `json:"Pwm,omitempty"`
	I2sSubordinate    []Peripheral `json:"I2sSubordinate,omitempty"`
	ExternalInterrupt []Peripheral `json:"ExternalInterrupt,omitempty"`
	// MutableStorage is the application's persistent storage; nil means none.
	MutableStorage *MutableStorage `json:"MutableStorage,omitempty"`
	// DeviceAuthentication is the tenant ID (a UUID, lower case) whose device certificate the
	// application may use; empty means none.
	DeviceAuthentication string `json:"DeviceAuthentication,omitempty"`

	CertStore                bool `json:"CertStore,omitempty"`
	WifiConfig               bool `json:"WifiConfig,omitempty"`
	EnterpriseWifiConfig     bool `json:"EnterpriseWifiConfig,omitempty"`
	NetworkConfig            bool `json:"NetworkConfig,omitempty"`
	ReadNetworkProxyConfig   bool `json:"ReadNetworkProxyConfig,omitempty"`
	HardwareAddressConfig    bool `json:"HardwareAddressConfig,omitempty"`
	DhcpService              bool `json:"DhcpService,omitempty"`
	SntpService              bool `json:"SntpService,omitempty"`
	TimeSyncConfig           bool `json:"TimeSyncConfig,omitempty"`
	SystemTime               bool `json:"SystemTime,omitempty"`
	SystemEventNotifications bool `json:"SystemEventNotifications,omitempty"`
	SoftwareUpdateDeferral   bool `json:"SoftwareUpdateDeferral,omitempty"`
	// PowerControls are from PowerControlForcePowerDown, PowerControlForceReboot and
	// PowerControlSetPowerProfile.
	PowerControls         []string `json:"PowerControls,omitempty"`
	HeapMemStats          bool     `json:"HeapMemStats,omitempty"`
	ResetMemoryWatermarks bool     `json:"ResetMemoryWatermarks,omitempty"`
}

// MutableStorage is the MutableStorage capability.
type MutableStorage struct {
	SizeKB int `json:"SizeKB"`
}

// Power controls.
const (
	PowerControlForcePowerDown  = "ForcePowerDown"
	PowerControlForceReboot     = "ForceReboot"
	PowerControlSetPowerProfile = "SetPowerProfile"
)

var powerControls = []string{PowerControlForcePowerDown, PowerControlForceReboot, PowerControlSetPowerProfile}

// capabilityNames are every capability key, in the order of Azure Sphere's documentation.
var capabilityNames = []string{
	"AllowedConnections", "AllowedTcpServerPorts", "AllowedUdpServerPorts",
	"AllowedApplicationConnections", "Gpio", "Uart", "I2cMaster", "SpiMaster", "Adc", "Pwm",
	"I2sSubordinate", "ExternalInterrupt", "MutableStorage", "DeviceAuthentication", "CertStore",
	"WifiConfig", "EnterpriseWifiConfig", "NetworkConfig", "ReadNetworkProxyConfig",
	"HardwareAddressConfig", "DhcpService", "SntpService", "TimeSyncConfig", "SystemTime",
	"SystemEventNotifications", "SoftwareUpdateDeferral", "PowerControls", "HeapMemStats",
	"ResetMemoryWatermarks",
}

// enforced are the capabilities the platform enforces on a device.
var enforced = []string{
	"AllowedConnections", "AllowedTcpServerPorts", "AllowedUdpServerPorts",
	"AllowedApplicationConnections", "Gpio", "Uart", "I2cMaster", "SpiMaster", "Adc", "Pwm",
	"MutableStorage", "DeviceAuthentication", "SystemEventNotifications",
	"SoftwareUpdateDeferral", "PowerControls",
}

// AllCapabilities returns every capability key a manifest may hold.
func AllCapabilities() []string { return slices.Clone(capabilityNames) }

// EnforcedCapabilities returns the capabilities the platform enforces: a device grants these
// and nothing beyond them. The others are valid in a manifest, so that Azure Sphere manifests
// parse, but a device does not act on them yet.
func EnforcedCapabilities() []string { return slices.Clone(enforced) }

// IsEnforced reports whether the platform enforces the capability named name.
func IsEnforced(name string) bool { return slices.Contains(enforced, name) }

// Requested returns the names of the capabilities c grants, in the documented order.
func (c *Capabilities) Requested() []string {
	var out []string
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := v.Field(i)
		requested := !f.IsZero()
		if f.Kind() == reflect.Slice {
			requested = f.Len() > 0
		}
		if requested {
			out = append(out, jsonName(t.Field(i)))
		}
	}
	return out
}

// NotEnforced returns the capabilities m asks for that are valid but that the platform does not
// enforce yet, for a warning at pack time.
func (m *Manifest) NotEnforced() []string {
	var out []string
	for _, name := range m.Capabilities.Requested() {
		if !IsEnforced(name) {
			out = append(out, name)
		}
	}
	return out
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

// wireCapabilities is the Capabilities object as decoded, before validation.
type wireCapabilities struct {
	AllowedConnections            *[]json.RawMessage  `json:"AllowedConnections"`
	AllowedTcpServerPorts         *[]json.RawMessage  `json:"AllowedTcpServerPorts"`
	AllowedUdpServerPorts         *[]json.RawMessage  `json:"AllowedUdpServerPorts"`
	AllowedApplicationConnections *[]json.RawMessage  `json:"AllowedApplicationConnections"`
	Gpio                          *[]json.RawMessage  `json:"Gpio"`
	Uart                          *[]json.RawMessage  `json:"Uart"`
	I2cMaster                     *[]json.RawMessage  `json:"I2cMaster"`
	SpiMaster                     *[]json.RawMessage  `json:"SpiMaster"`
	Adc                           *[]json.RawMessage  `json:"Adc"`
	Pwm                           *[]json.RawMessage  `json:"Pwm"`
	I2sSubordinate                *[]json.RawMessage  `json:"I2sSubordinate"`
	ExternalInterrupt             *[]json.RawMessage  `json:"ExternalInterrupt"`
	MutableStorage                *wireMutableStorage `json:"MutableStorage"`
	DeviceAuthentication          *string             `json:"DeviceAuthentication"`
	CertStore                     *bool               `json:"CertStore"`
	WifiConfig                    *bool               `json:"WifiConfig"`
	EnterpriseWifiConfig          *bool               `json:"EnterpriseWifiConfig"`
	NetworkConfig                 *bool               `json:"NetworkConfig"`
	ReadNetworkProxyConfig        *bool               `json:"ReadNetworkProxyConfig"`
	HardwareAddressConfig         *bool               `json:"HardwareAddressConfig"`
	DhcpService                   *bool               `json:"DhcpService"`
	SntpService                   *bool               `json:"SntpService"`
	TimeSyncConfig                *bool               `json:"TimeSyncConfig"`
	SystemTime                    *bool               `json:"SystemTime"`
	SystemEventNotifications      *bool               `json:"SystemEventNotifications"`
	SoftwareUpdateDeferral        *bool               `json:"SoftwareUpdateDeferral"`
	PowerControls                 *[]json.RawMessage  `json:"PowerControls"`
	HeapMemStats                  *bool               `json:"HeapMemStats"`
	ResetMemoryWatermarks         *bool               `json:"ResetMemoryWatermarks"`
}

type wireMutableStorage struct {
	SizeKB *int `json:"SizeKB"`
}

const capPath = "Capabilities"

// capabilities validates w into m.Capabilities.
func (c *checker) capabilities(m *Manifest, w *wireCapabilities) {
	caps := &m.Capabilities
	rt := m.ApplicationType == ApplicationTypeRealTimeCapable
	if w.AllowedConnections != nil {
		caps.AllowedConnections = c.hosts(capPath+".AllowedConnections", *w.AllowedConnections)
	}
	if w.AllowedTcpServerPorts != nil {
		caps.AllowedTcpServerPorts = c.ports(capPath+".AllowedTcpServerPorts", *w.AllowedTcpServerPorts)
	}
	if w.AllowedUdpServerPorts != nil {
		caps.AllowedUdpServerPorts = c.ports(capPath+".AllowedUdpServerPorts", *w.AllowedUdpServerPorts)
	}
	if w.AllowedApplicationConnections != nil {
		caps.AllowedApplicationConnections = c.appConnections(capPath+".AllowedApplicationConnections", *w.AllowedApplicationConnections, m.ComponentId)
	}
	for _, p := range []struct {
		name string
		raw  *[]json.RawMessage
		dst  *[]Peripheral
	}{
		{"Gpio", w.Gpio, &caps.Gpio},
		{"Uart", w.Uart, &caps.Uart},
		{"I2cMaster", w.I2cMaster, &caps.I2cMaster},
		{"SpiMaster", w.SpiMaster, &caps.SpiMaster},
		{"Adc", w.Adc, &caps.Adc},
		{"Pwm", w.Pwm, &caps.Pwm},
		{"I2sSubordinate", w.I2sSubordinate, &caps.I2sSubordinate},
		{"ExternalInterrupt", w.ExternalInterrupt, &caps.ExternalInterrupt},
	} {
		if p.raw != nil {
			*p.dst = c.peripherals(capPath+"."+p.name, p.name, *p.raw, rt)
		}
	}
	if !rt {
		if len(caps.I2sSubordinate) > 0 {
			c.add(capPath+".I2sSubordinate", "is only for real-time capable applications (ApplicationType %q)", ApplicationTypeRealTimeCapable)
		}
		if len(caps.ExternalInterrupt) > 0 {
			c.add(capPath+".ExternalInterrupt", "is only for real-time capable applications (ApplicationType %q)", ApplicationTypeRealTimeCapable)
		}
	}
	if w.MutableStorage != nil {
		path := capPath + ".MutableStorage"
		if c.required(path+".SizeKB", w.MutableStorage.SizeKB != nil) {
			n := *w.MutableStorage.SizeKB
			if n < MinMutableStorageKB || n > MaxMutableStorageKB {
				c.add(path+".SizeKB", "must be %d to %d, not %d", MinMutableStorageKB, MaxMutableStorageKB, n)
			}
			caps.MutableStorage = &MutableStorage{SizeKB: n}
		}
	}
	if w.DeviceAuthentication != nil {
		caps.DeviceAuthentication = c.uuid(capPath+".DeviceAuthentication", *w.DeviceAuthentication)
	}
	for _, b := range []struct {
		raw *bool
		dst *bool
	}{
		{w.CertStore, &caps.CertStore},
		{w.WifiConfig, &caps.WifiConfig},
		{w.EnterpriseWifiConfig, &caps.EnterpriseWifiConfig},
		{w.NetworkConfig, &caps.NetworkConfig},
		{w.ReadNetworkProxyConfig, &caps.ReadNetworkProxyConfig},
		{w.HardwareAddressConfig, &caps.HardwareAddressConfig},
		{w.DhcpService, &caps.DhcpService},
		{w.SntpService, &caps.SntpService},
		{w.TimeSyncConfig, &caps.TimeSyncConfig},
		{w.SystemTime, &caps.SystemTime},
		{w.SystemEventNotifications, &caps.SystemEventNotifications},
		{w.SoftwareUpdateDeferral, &caps.SoftwareUpdateDeferral},
		{w.HeapMemStats, &caps.HeapMemStats},
		{w.ResetMemoryWatermarks, &caps.ResetMemoryWatermarks},
	} {
		if b.raw != nil {
			*b.dst = *b.raw
		}
	}
	if rt && caps.SoftwareUpdateDeferral {
		c.add(capPath+".SoftwareUpdateDeferral", "real-time capable applications cannot defer updates")
	}
	if w.PowerControls != nil {
		caps.PowerControls = c.powerControls(capPath+".PowerControls", *w.PowerControls)
	}
}

func (c *checker) hosts(path string, raw []json.RawMessage) []string {
	if len(raw) > MaxHosts {
		c.add(path, "has %d hosts; the limit is %d", len(raw), MaxHosts)
		return nil
	}
	var out []string
	seen := map[string]int{}
	for i, r := range raw {
		p := index(path, i)
		s, ok := c.str(p, r)
		if !ok {
			continue
		}
		if err := checkHost(s); err != nil {
			c.add(p, "%v", err)
			continue
		}
		key := strings.ToLower(s)
		if j, dup := seen[key]; dup {
			c.add(p, "repeats %s", index(path, j))
			continue
		}
		seen[key] = i
		out = append(out, s)
	}
	return out
}

// checkHost checks one AllowedConnections entry: an IPv4 address, or a DNS or DNS-SD name whose
// leftmost label may be the wildcard "*".
func checkHost(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case len(s) > MaxHostLength:
		return fmt.Errorf("is %d bytes; the limit is %d", len(s), MaxHostLength)
	case strings.Contains(s, ":"):
		return fmt.Errorf("must be a DNS name or an IPv4 address, not a URL, an IPv6 address or a host:port: %q", truncate(s))
	case strings.HasSuffix(s, "."):
		return fmt.Errorf("must not end with a dot: %q", s)
	}
	labels := strings.Split(s, ".")
	numeric := true
	for _, l := range labels {
		if l == "" || strings.Trim(l, "0123456789") != "" {
			numeric = false
		}
	}
	if numeric {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return fmt.Errorf("is not a valid IPv4 address: %q", s)
		}
		return nil
	}
	for i, l := range labels {
		if l == "*" {
			if i != 0 || len(labels) < 3 {
				return fmt.Errorf("may use the wildcard \"*\" only as the leftmost label of a name with at least two more labels: %q", s)
			}
			continue
		}
		if err := checkLabel(l); err != nil {
			return fmt.Errorf("%q: %v", truncate(s), err)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Errorf("is neither an IPv4 address nor a DNS name: %q", s)
	}
	return nil
}

// checkLabel checks one DNS label: letters, digits and hyphens, not starting or ending with a
// hyphen, 1 to MaxLabelLength bytes; DNS-SD service and protocol labels may start with an underscore.
func checkLabel(l string) error {
	if l == "" {
		return fmt.Errorf("has an empty label")
	}
	if len(l) > MaxLabelLength {
		return fmt.Errorf("has a label longer than %d bytes", MaxLabelLength)
	}
	body := strings.TrimPrefix(l, "_")
	if body == "" || body[0] == '-' || body[len(body)-1] == '-' {
		return fmt.Errorf("has a label that starts or ends with a hyphen or is only an underscore: %q", l)
	}
	for i := 0; i < len(body); i++ {
		ch := body[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-') {
			return fmt.Errorf("has a label with a character other than a letter, digit or hyphen: %q", l)
		}
	}
	return nil
}

func (c *checker) ports(path string, raw []json.RawMessage) []int {
	if len(raw) > MaxServerPorts {
		c.add(path, "has %d ports; the limit is %d", len(raw), MaxServerPorts)
		return nil
	}
	var out []int
	seen := map[int64]int{}
	for i, r := range raw {
		p := index(path, i)
		n, ok := c.integer(p, r)
		if !ok {
			continue
		}
		if n < 1 || n > 65535 {
			c.add(p, "must be a port from 1 to 65535, not %d", n)
			continue
		}
		if j, dup := seen[n]; dup {
			c.add(p, "repeats %s (%d)", index(path, j), n)
			continue
		}
		seen[n] = i
		out = append(out, int(n))
	}
	return out
}

func (c *checker) appConnections(path string, raw []json.RawMessage, self string) []string {
	if len(raw) > MaxApplicationConnections {
		c.add(path, "has %d component IDs; the limit is %d", len(raw), MaxApplicationConnections)
		return nil
	}
	var out []string
	seen := map[string]int{}
	for i, r := range raw {
		p := index(path, i)
		s, ok := c.str(p, r)
		if !ok {
			continue
		}
		u, err := ParseUUID(s)
		if err != nil {
			c.add(p, "%v", err)
			continue
		}
		if u == self {
			c.add(p, "is this application's own component ID")
			continue
		}
		if j, dup := seen[u]; dup {
			c.add(p, "repeats %s", index(path, j))
			continue
		}
		seen[u] = i
		out = append(out, u)
	}
	return out
}

func (c *checker) peripherals(path, capability string, raw []json.RawMessage, rt bool) []Peripheral {
	if len(raw) > MaxPeripherals {
		c.add(path, "has %d entries; the limit is %d", len(raw), MaxPeripherals)
		return nil
	}
	var out []Peripheral
	seen := map[Peripheral]int{}
	for i, r := range raw {
		p := index(path, i)
		per, err := parsePeripheral(capability, r)
		if err != nil {
			c.add(p, "%v", err)
			continue
		}
		if per.IsReference() && rt {
			c.add(p, "real-time capable applications must use raw values, not the hardware-definition name %s", per.Name)
			continue
		}
		if j, dup := seen[per]; dup {
			c.add(p, "repeats %s (%s)", index(path, j), per)
			continue
		}
		seen[per] = i
		out = append(out, per)
	}
	return out
}

func (c *checker) powerControls(path string, raw []json.RawMessage) []string {
	if len(raw) == 0 {
		c.add(path, "must not be empty: list one or more of %s", strings.Join(powerControls, ", "))
		return nil
	}
	if len(raw) > len(powerControls) {
		c.add(path, "has %d entries; there are only %d power controls", len(raw), len(powerControls))
		return nil
	}
	var out []string
	seen := map[string]int{}
	for i, r := range raw {
		p := index(path, i)
		s, ok := c.str(p, r)
		if !ok {
			continue
		}
		if !slices.Contains(powerControls, s) {
			c.add(p, "must be one of %s, not %q", strings.Join(powerControls, ", "), truncate(s))
			continue
		}
		if j, dup := seen[s]; dup {
			c.add(p, "repeats %s", index(path, j))
			continue
		}
		seen[s] = i
		out = append(out, s)
	}
	return out
}

// Peripheral is one entry of a peripheral capability: a number (a GPIO), a controller name such
// as "ISU0" or "ADC-CONTROLLER-0", or a reference such as "$SAMPLE_LED" to a peripheral in a
// hardware definition. Name is empty for a number.
type Peripheral struct {
	Number int
	Name   string
}

// IsReference reports whether p names a hardware-definition peripheral ("$NAME").
func (p Peripheral) IsReference() bool { return strings.HasPrefix(p.Name, "$") }

// String returns p as it appears in a manifest, without quotes.
func (p Peripheral) String() string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(p.Number)
}

// MarshalJSON writes p as a JSON number or string.
func (p Peripheral) MarshalJSON() ([]byte, error) {
	if p.Name != "" {
		return json.Marshal(p.Name)
	}
	return json.Marshal(p.Number)
}

// UnmarshalJSON reads a JSON number or string, without validating it.
func (p *Peripheral) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*p = Peripheral{Name: s}
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("a peripheral must be a number or a string")
	}
	*p = Peripheral{Number: n}
	return nil
}

// parsePeripheral parses one entry of the capability named capability. Gpio takes numbers and
// references; the others take controller names and references.
func parsePeripheral(capability string, raw json.RawMessage) (Peripheral, error) {
	switch kind(raw) {
	case "a number":
		if capability != "Gpio" {
			return Peripheral{}, fmt.Errorf("must be a controller name such as %q or a hardware-definition name such as \"$NAME\", not a number", exampleController(capability))
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 0 || n > MaxGPIO {
			return Peripheral{}, fmt.Errorf("must be a GPIO number from 0 to %d, not %s", MaxGPIO, truncate(string(raw)))
		}
		return Peripheral{Number: int(n)}, nil
	case "a string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Peripheral{}, fmt.Errorf("must be a string")
		}
		if strings.HasPrefix(s, "$") {
			if err := checkPeripheralName(s[1:]); err != nil {
				return Peripheral{}, fmt.Errorf("hardware-definition name %q: %v", truncate(s), err)
			}
			return Peripheral{Name: s}, nil
		}
		if capability == "Gpio" {
			return Peripheral{}, fmt.Errorf("must be a GPIO number or a hardware-definition name such as \"$NAME\", not %q", truncate(s))
		}
		if err := checkControllerName(s); err != nil {
			return Peripheral{}, err
		}
		return Peripheral{Name: s}, nil
	}
	return Peripheral{}, fmt.Errorf("must be a number or a string, not %s", kind(raw))
}

func exampleController(capability string) string {
	switch capability {
	case "Adc":
		return "ADC-CONTROLLER-0"
	case "Pwm":
		return "PWM-CONTROLLER-0"
	case "I2sSubordinate":
		return "I2S0"
	case "ExternalInterrupt":
		return "EINT4"
	}
	return "ISU0"
}

// checkControllerName checks a controller name: upper-case letters and digits in groups joined
// by hyphens, starting with a letter ("ISU0", "ADC-CONTROLLER-0").
func checkControllerName(s string) error {
	bad := fmt.Errorf("must be a controller name such as \"ISU0\" or \"ADC-CONTROLLER-0\" (upper-case letters, digits and hyphens) or a hardware-definition name such as \"$NAME\", not %q", truncate(s))
	if s == "" || len(s) > MaxControllerNameLength || s[0] < 'A' || s[0] > 'Z' || strings.HasSuffix(s, "-") || strings.Contains(s, "--") {
		return bad
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !('A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-') {
			return bad
		}
	}
	return nil
}

// checkPeripheralName checks a hardware-definition peripheral name: a C identifier, since the
// same name becomes a C macro in the generated header.
func checkPeripheralName(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > MaxPeripheralNameLength {
		return fmt.Errorf("is %d bytes; the limit is %d", len(s), MaxPeripheralNameLength)
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || ch == '_' || i > 0 && '0' <= ch && ch <= '9') {
			return fmt.Errorf("must be a C identifier (letters, digits and underscores, not starting with a digit)")
		}
	}
	return nil
}

// clone returns a deep copy of c.
func (c Capabilities) clone() Capabilities {
	out := c
	out.AllowedConnections = slices.Clone(c.AllowedConnections)
	out.AllowedTcpServerPorts = slices.Clone(c.AllowedTcpServerPorts)
	out.AllowedUdpServerPorts = slices.Clone(c.AllowedUdpServerPorts)
	out.AllowedApplicationConnections = slices.Clone(c.AllowedApplicationConnections)
	out.Gpio = slices.Clone(c.Gpio)
	out.Uart = slices.Clone(c.Uart)
	out.I2cMaster = slices.Clone(c.I2cMaster)
	out.SpiMaster = slices.Clone(c.SpiMaster)
	out.Adc = slices.Clone(c.Adc)
	out.Pwm = slices.Clone(c.Pwm)
	out.I2sSubordinate = slices.Clone(c.I2sSubordinate)
	out.ExternalInterrupt = slices.Clone(c.ExternalInterrupt)
	if c.MutableStorage != nil {
		ms := *c.MutableStorage
		out.MutableStorage = &ms
	}
	out.PowerControls = slices.Clone(c.PowerControls)
	return out
}

// Clone returns a deep copy of m.
func (m *Manifest) Clone() *Manifest {
	out := *m
	out.CmdArgs = slices.Clone(m.CmdArgs)
	out.Capabilities = m.Capabilities.clone()
	return &out
}
