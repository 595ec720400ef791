// Package push wakes devices that hold a push channel open when something they must act on
// changes, such as their device group's deployment. A Hub fans events out, within one server
// process, to the channels of the devices in a group, or of one device; internal/push/pgpush
// carries events between replicas that share a PostgreSQL database.
//
// Events are hints, not state: a device that gets one checks in, and the check-in tells it what
// to do. So delivery is best effort and coalescing: each channel holds at most one pending
// event (the newest wins), a slow device never blocks a publisher, and a device that missed an
// event catches up at its next check-in.
//
// Trust: the Hub trusts its callers to name the right tenant, group and device.
package push

import "sync"

// Event types.
const (
	EventDeployment = "deployment" // the group's deployment changed
	EventCheckIn    = "check-in"   // check in now
)

// Event is one thing a device should know about.
type Event struct {
	Type         string // EventDeployment or EventCheckIn
	DeploymentID string
}

// Hub routes events to subscribed devices. The zero value is ready to use.
type Hub struct {
	mu      sync.Mutex
	devices map[string]*Sub            // by device ID: a device holds one channel at a time
	groups  map[groupKey]map[*Sub]bool // subscribers by tenant and group
}

type groupKey struct{ tenant, group string }

// Sub is one device's open push channel.
type Sub struct {
	c        chan Event
	done     chan struct{}
	once     sync.Once
	hub      *Hub
	deviceID string
	key      groupKey
}

// C delivers events. It is never closed; Done says when the subscription ended.
func (s *Sub) C() <-chan Event { return s.c }

// Done is closed when the subscription ends: the device opened another channel, or Close was
// called.
func (s *Sub) Done() <-chan struct{} { return s.done }

// Subscribe opens a channel for a device in a tenant's group (groupID "" for none). A device
// has one channel at a time: an earlier one is ended.
func (h *Hub) Subscribe(tenantID, groupID, deviceID string) *Sub {
	s := &Sub{c: make(chan Event, 1), done: make(chan struct{}), hub: h, deviceID: deviceID,
		key: groupKey{tenantID, groupID}}
	h.mu.Lock()
	if h.devices == nil {
		h.devices = map[string]*Sub{}
		h.groups = map[groupKey]map[*Sub]bool{}
	}
	old := h.devices[deviceID]
	if old != nil {
		h.removeLocked(old)
	}
	h.devices[deviceID] = s
	if h.groups[s.key] == nil {
		h.groups[s.key] = map[*Sub]bool{}
	}
	h.groups[s.key][s] = true
	h.mu.Unlock()
	if old != nil {
		old.end()
	}
	return s
}

// Close ends the subscription. It is safe to call more than once.
func (s *Sub) Close() {
	s.hub.mu.Lock()
	s.hub.removeLocked(s)
	s.hub.mu.Unlock()
	s.end()
}

func (s *Sub) end() { s.once.Do(func() { close(s.done) }) }

func (h *Hub) removeLocked(s *Sub) {
	if h.devices[s.deviceID] == s {
		delete(h.devices, s.deviceID)
	}
	if subs := h.groups[s.key]; subs != nil {
		delete(subs, s)
		if len(subs) == 0 {
			delete(h.groups, s.key)
		}
	}
}

// offer delivers e, replacing a pending event the device has not read yet.
func (s *Sub) offer(e Event) {
	for {
		select {
		case s.c <- e:
			return
		default:
		}
		select {
		case <-s.c: // drop the stale event; the newest wins
		default:
		}
	}
}

// PublishGroup sends e to every device subscribed in the tenant's group, and returns how many
// channels it reached.
func (h *Hub) PublishGroup(tenantID, groupID string, e Event) int {
	h.mu.Lock()
	subs := make([]*Sub, 0, len(h.groups[groupKey{tenantID, groupID}]))
	for s := range h.groups[groupKey{tenantID, groupID}] {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.offer(e)
	}
	return len(subs)
}

// PublishDevice sends e to one device's channel, and reports whether it had one.
func (h *Hub) PublishDevice(deviceID string, e Event) bool {
	h.mu.Lock()
	s := h.devices[deviceID]
	h.mu.Unlock()
	if s == nil {
		return false
	}
	s.offer(e)
	return true
}

// Len is the number of open channels.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.devices)
}

// End ends the device's channel, if it has one; the device reconnects, and its new channel
// follows its new group. It reports whether there was one.
func (h *Hub) End(deviceID string) bool {
	h.mu.Lock()
	s := h.devices[deviceID]
	if s != nil {
		h.removeLocked(s)
	}
	h.mu.Unlock()
	if s != nil {
		s.end()
	}
	return s != nil
}

// DeploymentCreated wakes the group's devices: a deployment event.
func (h *Hub) DeploymentCreated(tenantID, groupID, deploymentID string) {
	h.PublishGroup(tenantID, groupID, Event{Type: EventDeployment, DeploymentID: deploymentID})
}

// WakeDevice asks one device to check in now: a check-in event on its channel.
func (h *Hub) WakeDevice(tenantID, deviceID string) {
	h.PublishDevice(deviceID, Event{Type: EventCheckIn})
}

// DeviceMoved ends the device's channel, so that it reconnects into its new group and checks in.
func (h *Hub) DeviceMoved(tenantID, deviceID string) { h.End(deviceID) }

// WakeAll sends a check-in event to every open channel, and returns how many it reached: for
// when events may have been missed (a replica's notification listener reconnected).
func (h *Hub) WakeAll() int {
	h.mu.Lock()
	subs := make([]*Sub, 0, len(h.devices))
	for _, s := range h.devices {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.offer(Event{Type: EventCheckIn})
	}
	return len(subs)
}
