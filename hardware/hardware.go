// Package hardware holds the hardware definition files (Azure Sphere's JSON format, parsed by
// the manifest package) of the boards Rampart knows, so that application manifests can name
// peripherals such as "$LED_RED". Emulated is the emulated board's (internal/board/emulated);
// `rampart imagepackage --hardware-definitions hardware/emulated` uses the same files. It trusts
// nothing and owns only these files.
package hardware

import (
	"embed"
	"io/fs"
)

//go:embed emulated/*.json
var files embed.FS

// Emulated returns the directory of the emulated board's hardware definitions, for
// manifest.LoadHardwareDefinitions.
func Emulated() fs.FS {
	sub, err := fs.Sub(files, "emulated")
	if err != nil {
		panic(err) // the embedded directory exists
	}
	return sub
}
