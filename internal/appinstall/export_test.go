package appinstall

import "io"

// WithReadHook returns cfg with a wrapper for the package file as Install reads it.
func WithReadHook(cfg Config, wrap func(io.ReaderAt) io.ReaderAt) Config {
	cfg.wrap = wrap
	return cfg
}
