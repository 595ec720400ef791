package linux

import (
	"fmt"
	"sync"

	"github.com/warthog618/go-gpiocdev"
)

// gpioLine is a GPIO line requested once, at open, and kept: an output driven only by the
// board, or an input read on demand. Values are logical: with ActiveLow, high is the pin's low.
type gpioLine struct {
	cfg  GPIO
	mu   sync.Mutex
	line *gpiocdev.Line
	last bool // an output's value as last driven
}

func requestGPIO(cfg GPIO) (*gpioLine, error) {
	opts := []gpiocdev.LineReqOption{gpiocdev.WithConsumer("rampart")}
	if cfg.ActiveLow {
		opts = append(opts, gpiocdev.AsActiveLow)
	}
	switch cfg.Bias {
	case "pull-up":
		opts = append(opts, gpiocdev.WithPullUp)
	case "pull-down":
		opts = append(opts, gpiocdev.WithPullDown)
	case "disabled":
		opts = append(opts, gpiocdev.WithBiasDisabled)
	}
	if cfg.Direction == "output" {
		opts = append(opts, gpiocdev.AsOutput(bit(cfg.Initial)))
	} else {
		opts = append(opts, gpiocdev.AsInput)
	}
	l, err := gpiocdev.RequestLine(cfg.Chip, cfg.Line, opts...)
	if err != nil {
		return nil, fmt.Errorf("requesting line %d of %s: %w", cfg.Line, cfg.Chip, err)
	}
	return &gpioLine{cfg: cfg, line: l, last: cfg.Initial}, nil
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (g *gpioLine) read() (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.line == nil {
		return false, fmt.Errorf("GPIO %d: closed", g.cfg.Gpio)
	}
	v, err := g.line.Value()
	if err != nil {
		return false, fmt.Errorf("GPIO %d (line %d of %s): %w", g.cfg.Gpio, g.cfg.Line, g.cfg.Chip, err)
	}
	return v != 0, nil
}

func (g *gpioLine) write(high bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.line == nil {
		return fmt.Errorf("GPIO %d: closed", g.cfg.Gpio)
	}
	if err := g.line.SetValue(bit(high)); err != nil {
		return fmt.Errorf("GPIO %d (line %d of %s): %w", g.cfg.Gpio, g.cfg.Line, g.cfg.Chip, err)
	}
	g.last = high
	return nil
}

func (g *gpioLine) driven() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

func (g *gpioLine) close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.line == nil {
		return nil
	}
	err := g.line.Close()
	g.line = nil
	return err
}
