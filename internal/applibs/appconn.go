package applibs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	sdk "github.com/rampart-iot/rampart/applibs"
)

// MailboxSize bounds the messages waiting for one application; a sender to a full mailbox
// gets ErrBusy and may retry.
const MailboxSize = 64

// Errors of the application-to-application channel.
var (
	ErrBusy = errors.New("the receiving application's mailbox is full")
)

// mailboxes carry messages between running applications whose manifests list each other in
// AllowedApplicationConnections: Azure Sphere's partner applications, here over the agent. A
// message is at most sdk.MaxAppMessage bytes; the agent keeps at most MailboxSize per receiver
// and drops them when it stops.
type mailboxes struct {
	mu    sync.Mutex
	boxes map[string]*mailbox
}

type mailbox struct {
	allowed []string
	msgs    []sdk.AppMessage
	changed chan struct{}
}

// open gives a running application its mailbox; close drops it with what is waiting.
func (m *mailboxes) open(component string, allowed []string) (closeBox func()) {
	b := &mailbox{allowed: lower(allowed), changed: make(chan struct{})}
	m.mu.Lock()
	if m.boxes == nil {
		m.boxes = map[string]*mailbox{}
	}
	m.boxes[strings.ToLower(component)] = b
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.boxes[strings.ToLower(component)] == b {
			delete(m.boxes, strings.ToLower(component))
		}
		close(b.changed)
	}
}

func lower(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strings.ToLower(id)
	}
	return out
}

// send delivers data from one application to another; the sender's grant was checked by the
// caller, the receiver's is checked here.
func (m *mailboxes) send(from, to string, data []byte) error {
	from, to = strings.ToLower(from), strings.ToLower(to)
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.boxes[to]
	if b == nil {
		return fmt.Errorf("%w: application %s is not running (or takes no messages)", ErrNotAvailable, to)
	}
	if !slices.Contains(b.allowed, from) {
		return &PermissionError{Capability: "AllowedApplicationConnections", What: "of " + to + " (it does not list " + from + ")"}
	}
	if len(b.msgs) >= MailboxSize {
		return fmt.Errorf("%w (%s holds %d messages)", ErrBusy, to, MailboxSize)
	}
	b.msgs = append(b.msgs, sdk.AppMessage{From: from, Data: slices.Clone(data)})
	close(b.changed)
	b.changed = make(chan struct{})
	return nil
}

// recv takes the messages waiting for component, waiting up to wait for one.
func (m *mailboxes) recv(ctx context.Context, component string, wait time.Duration) ([]sdk.AppMessage, error) {
	component = strings.ToLower(component)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		m.mu.Lock()
		b := m.boxes[component]
		if b == nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("%w: no mailbox", ErrNotAvailable)
		}
		if len(b.msgs) > 0 {
			out := b.msgs
			b.msgs = nil
			m.mu.Unlock()
			return out, nil
		}
		ch := b.changed
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, nil
		case <-t.C:
			return nil, nil
		case <-ch:
		}
	}
}
