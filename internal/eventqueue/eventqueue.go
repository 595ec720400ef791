// Package eventqueue is the device's durable queue of error-report events: the agent adds an
// event when an app crashes or exits, an update fails or rolls back, attestation is refused or
// the agent restarts, and uploads the queue at check-in. The queue is bounded: when it is full
// the oldest event goes and the queue's dropped total grows, and that total is uploaded too.
//
// On disk it is one directory holding an append-only log of checksummed records (an event, an
// acknowledgement, a header with the dropped total), each appended with one write and made
// durable with fsync before Add or Ack returns, and compacted now and then by atomic
// replacement. A process killed or a power cut at any moment leaves a log that opens: a torn or
// corrupt record ends the log, and Open cuts it off, losing at most the event whose Add had not
// returned. An upload retried after a lost reply sends the same events with the same IDs, and
// the service stores each ID once, so nothing is lost or duplicated.
//
// Trust: the queue trusts its directory (the agent's state, writable only by the agent) but
// not the log's contents beyond their checksums: every record is bounded and parsed strictly,
// and a log that does not parse is cut at its first bad record, never a reason not to start.
package eventqueue

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/errorreport"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/manifest"
)

// Limits.
const (
	// DefaultMax is how many events a queue keeps unless configured otherwise.
	DefaultMax = 1000
	// MaxMax bounds Config.Max.
	MaxMax = 100000
	// MaxEventSize bounds one event as encoded, so that MaxReportEvents of them fit in one
	// upload of MaxReportBody bytes.
	MaxEventSize = (v1.MaxReportBody - 1024) / v1.MaxReportEvents
	// maxRecord bounds one record's payload in the log.
	maxRecord = 64 << 10
	// ackChunk is how many IDs one acknowledgement record holds.
	ackChunk = 1000
)

// Files in the queue's directory.
const (
	logName  = "events.log"
	lockName = "lock"
)

// Record kinds.
const (
	kindHeader = 'H' // payload: the dropped total, 8 bytes big-endian
	kindEvent  = 'E' // payload: the event as JSON
	kindAck    = 'A' // payload: event IDs, 36 bytes each
)

const idLen = 36

// ErrClosed is returned by a closed queue.
var ErrClosed = errors.New("event queue is closed")

// Config configures a queue. Dir is required.
type Config struct {
	Dir  string           // created with mode 0700 if missing
	Max  int              // events kept (default DefaultMax, at most MaxMax)
	Now  func() time.Time // default time.Now: the time of events added without one, and their IDs
	Rand io.Reader        // default crypto/rand: event IDs (UUIDv7)
}

// Queue is a durable, bounded queue of events. It is safe for concurrent use by one process;
// a second process opening the same directory is refused while the first holds it.
type Queue struct {
	mu       sync.Mutex
	dir      string
	max      int
	now      func() time.Time
	ids      *ids.Generator
	lock     *os.File
	f        *os.File // the log, open for appending
	records  int      // records in the log since it was last compacted
	pending  []v1.ReportEvent
	live     map[string]bool // IDs of pending events not yet acknowledged or dropped
	dropped  int64
	reported int64 // the dropped total the last Flush uploaded
	closed   bool
}

// testHookMidRecord, when set, runs between the two halves of a record's write (tests kill the
// process there).
var testHookMidRecord func()

// compactAfter is how many records the log may hold before it is compacted.
var compactAfter = func(max int) int { return 2*max + 64 }

// testHookCompact, when set, runs before a compacted log replaces the old one.
var testHookCompact func()

// Open opens the queue in cfg.Dir, creating it if needed, and replays its log.
func Open(cfg Config) (*Queue, error) {
	if cfg.Dir == "" {
		return nil, errors.New("event queue: no directory")
	}
	if cfg.Max == 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Max < 1 || cfg.Max > MaxMax {
		return nil, fmt.Errorf("event queue: Max %d is outside 1 to %d", cfg.Max, MaxMax)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("event queue: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("event queue: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("event queue %s is in use by another process: %w", cfg.Dir, err)
	}
	q := &Queue{dir: cfg.Dir, max: cfg.Max, now: cfg.Now, ids: &ids.Generator{Now: cfg.Now, Rand: cfg.Rand},
		lock: lock, live: map[string]bool{}}
	if err := q.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return q, nil
}

func (q *Queue) logPath() string { return filepath.Join(q.dir, logName) }

// load replays the log, cuts off a torn or corrupt tail, and opens the log for appending.
func (q *Queue) load() error {
	f, err := os.OpenFile(q.logPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("event queue: %w", err)
	}
	good, err := q.replay(bufio.NewReader(f))
	if err != nil {
		f.Close()
		return fmt.Errorf("event queue: reading %s: %w", q.logPath(), err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("event queue: %w", err)
	}
	if st.Size() != good {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return fmt.Errorf("event queue: cutting off a torn record: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("event queue: %w", err)
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("event queue: %w", err)
	}
	q.f = f
	return nil
}

// replay applies the log's records in order and returns the length of its good prefix. Only a
// read error is an error: a torn or corrupt record ends the log.
func (q *Queue) replay(r *bufio.Reader) (int64, error) {
	var good int64
	for {
		kind, payload, n, err := readRecord(r)
		if errors.Is(err, errBadRecord) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return good, nil
		}
		if err != nil {
			return 0, err
		}
		if !q.apply(kind, payload) {
			return good, nil
		}
		good += n
		q.records++
	}
}

var errBadRecord = errors.New("bad record")

// readRecord reads one record: length (4 bytes, big-endian, of kind and payload), CRC-32C of
// kind and payload (4 bytes), kind (1 byte), payload. n is the record's size in the log.
func readRecord(r *bufio.Reader) (kind byte, payload []byte, n int64, err error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, 0, err
	}
	size := binary.BigEndian.Uint32(hdr[0:4])
	if size < 1 || size > maxRecord+1 {
		return 0, nil, 0, errBadRecord
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, 0, err
	}
	if crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)) != binary.BigEndian.Uint32(hdr[4:8]) {
		return 0, nil, 0, errBadRecord
	}
	return body[0], body[1:], int64(8 + size), nil
}

// The records' checksum is CRC-32C: crc32.MakeTable(crc32.Castagnoli) returns the package's
// own table, built on first use, so a process that never reads or writes a queue (the cloud
// broker) does not build it at start.

func encodeRecord(kind byte, payload []byte) []byte {
	b := make([]byte, 9+len(payload))
	binary.BigEndian.PutUint32(b[0:4], uint32(1+len(payload)))
	b[8] = kind
	copy(b[9:], payload)
	binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(b[8:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// apply applies one record to the queue's state; false means the record does not parse, which
// ends the log as a bad checksum does.
func (q *Queue) apply(kind byte, payload []byte) bool {
	switch kind {
	case kindHeader:
		if len(payload) != 8 {
			return false
		}
		d := int64(binary.BigEndian.Uint64(payload))
		if d < 0 {
			return false
		}
		q.dropped = d
	case kindEvent:
		var e v1.ReportEvent
		if len(payload) > MaxEventSize || json.Unmarshal(payload, &e) != nil || !validID(e.ID) ||
			len(errorreport.ValidateEvent("event", e)) > 0 {
			return false
		}
		q.push(e)
	case kindAck:
		if len(payload)%idLen != 0 {
			return false
		}
		for i := 0; i < len(payload); i += idLen {
			id := string(payload[i : i+idLen])
			if !validID(id) {
				return false
			}
			delete(q.live, id)
		}
		q.trim()
	default:
		return false
	}
	return true
}

// validID reports whether id is a UUID in lowercase canonical form, as the queue stores IDs.
func validID(id string) bool {
	u, err := manifest.ParseUUID(id)
	return err == nil && u == id
}

// push appends e unless its ID is pending, dropping the oldest event if the queue is full.
func (q *Queue) push(e v1.ReportEvent) {
	if q.live[e.ID] {
		return
	}
	q.pending = append(q.pending, e)
	q.live[e.ID] = true
	for len(q.live) > q.max {
		for i, p := range q.pending {
			if q.live[p.ID] {
				delete(q.live, p.ID)
				q.pending = q.pending[i+1:]
				q.dropped++
				break
			}
		}
	}
	q.trim()
}

// trim forgets acknowledged events at the front of pending, and compacts the slice when most
// of it is dead.
func (q *Queue) trim() {
	i := 0
	for i < len(q.pending) && !q.live[q.pending[i].ID] {
		i++
	}
	q.pending = q.pending[i:]
	if len(q.pending) > 2*len(q.live)+16 {
		kept := make([]v1.ReportEvent, 0, len(q.live))
		for _, e := range q.pending {
			if q.live[e.ID] {
				kept = append(kept, e)
			}
		}
		q.pending = kept
	}
}

// append writes one record and makes it durable.
func (q *Queue) append(kind byte, payload []byte) error {
	b := encodeRecord(kind, payload)
	if testHookMidRecord != nil {
		if _, err := q.f.Write(b[:len(b)/2]); err != nil {
			return err
		}
		testHookMidRecord()
		b = b[len(b)/2:]
	}
	if _, err := q.f.Write(b); err != nil {
		return fmt.Errorf("event queue: appending: %w", err)
	}
	if err := q.f.Sync(); err != nil {
		return fmt.Errorf("event queue: syncing: %w", err)
	}
	q.records++
	return nil
}

// Add queues e and returns it as queued: with a new ID (UUIDv7) unless it has one, the time now
// unless it has one, text fields cut to their limits and control characters replaced. An event
// the service would refuse (a missing field its type needs, say) is an error. When Add returns
// nil the event is on disk.
func (q *Queue) Add(e v1.ReportEvent) (v1.ReportEvent, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return v1.ReportEvent{}, ErrClosed
	}
	if e.ID == "" {
		id, err := q.ids.New()
		if err != nil {
			return v1.ReportEvent{}, fmt.Errorf("event queue: %w", err)
		}
		e.ID = id
	}
	e.ID = strings.ToLower(e.ID)
	e.ComponentID, e.ImageID = strings.ToLower(e.ComponentID), strings.ToLower(e.ImageID)
	if e.Time.IsZero() {
		e.Time = q.now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Phase = clean(e.Phase, v1.MaxReportPhase)
	e.Reason = clean(e.Reason, v1.MaxReportReason)
	e.Message = clean(e.Message, v1.MaxReportMessage)
	if d := errorreport.ValidateEvent("event", e); len(d) > 0 {
		msgs := make([]string, len(d))
		for i, x := range d {
			msgs[i] = x.Field + ": " + x.Message
		}
		return v1.ReportEvent{}, fmt.Errorf("event queue: refusing an event the service would refuse: %s", strings.Join(msgs, "; "))
	}
	payload, err := Encode(e)
	if err != nil {
		return v1.ReportEvent{}, fmt.Errorf("event queue: %w", err)
	}
	if len(payload) > MaxEventSize { // only a long message can make it so
		e.Message = ""
		if payload, err = Encode(e); err != nil {
			return v1.ReportEvent{}, fmt.Errorf("event queue: %w", err)
		}
	}
	if q.live[e.ID] {
		return e, nil
	}
	if err := q.append(kindEvent, payload); err != nil {
		return v1.ReportEvent{}, err
	}
	q.push(e)
	return e, q.maybeCompact()
}

// Encode encodes an event as the queue stores it and as an upload should send it: JSON without
// HTML escaping, so that an event the queue accepted takes at most MaxEventSize bytes.
func Encode(e v1.ReportEvent) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// clean replaces control characters and invalid UTF-8 with spaces and cuts s to at most max
// bytes on a character boundary.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Peek returns up to max of the oldest events (at most MaxReportEvents), oldest first, and the
// dropped total: the number of events the queue has dropped since it was made. It does not
// remove them: Ack does, once the service has them.
func (q *Queue) Peek(max int) ([]v1.ReportEvent, int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	max = min(max, v1.MaxReportEvents)
	out := []v1.ReportEvent{}
	for _, e := range q.pending {
		if len(out) >= max {
			break
		}
		if q.live[e.ID] {
			out = append(out, e)
		}
	}
	return out, q.dropped
}

// Ack removes the events with these IDs, which the service has stored. IDs not in the queue
// (acknowledged already, or dropped) are ignored, so acknowledging twice is harmless. When Ack
// returns nil the removal is on disk.
func (q *Queue) Ack(eventIDs []string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	var known []string
	for _, id := range eventIDs {
		id = strings.ToLower(id)
		if q.live[id] {
			known = append(known, id)
		}
	}
	for len(known) > 0 {
		n := min(len(known), ackChunk)
		if err := q.append(kindAck, []byte(strings.Join(known[:n], ""))); err != nil {
			return err
		}
		for _, id := range known[:n] {
			delete(q.live, id)
		}
		known = known[n:]
	}
	q.trim()
	return q.maybeCompact()
}

// discard removes the events with these IDs and counts them as dropped, durably.
func (q *Queue) discard(eventIDs []string) error {
	q.mu.Lock()
	n := int64(0)
	for _, id := range eventIDs {
		if q.live[id] {
			n++
		}
	}
	q.mu.Unlock()
	if err := q.Ack(eventIDs); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropped += n
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(q.dropped))
	return q.append(kindHeader, hdr[:])
}

// Len is how many events are queued.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.live)
}

// maybeCompact rewrites the log as a header and the pending events once it holds many more
// records than that.
func (q *Queue) maybeCompact() error {
	if q.records <= compactAfter(q.max) {
		return nil
	}
	return q.compact()
}

func (q *Queue) compact() error {
	var buf []byte
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(q.dropped))
	buf = append(buf, encodeRecord(kindHeader, hdr[:])...)
	n := 1
	for _, e := range q.pending {
		if !q.live[e.ID] {
			continue
		}
		payload, err := Encode(e)
		if err != nil {
			return fmt.Errorf("event queue: compacting: %w", err)
		}
		buf = append(buf, encodeRecord(kindEvent, payload)...)
		n++
	}
	if testHookCompact != nil {
		testHookCompact()
	}
	if err := atomicfile.WriteFile(q.logPath(), buf, 0o600); err != nil {
		return fmt.Errorf("event queue: compacting: %w", err)
	}
	f, err := os.OpenFile(q.logPath(), os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("event queue: compacting: %w", err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return fmt.Errorf("event queue: compacting: %w", err)
	}
	q.f.Close()
	q.f, q.records = f, n
	return nil
}

// Close releases the queue. Everything added or acknowledged is already on disk.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	err := q.f.Close()
	if lerr := q.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// Flush uploads the queue with upload (such as checkinclient's UploadReports) in batches of at
// most MaxReportEvents, acknowledging each batch once upload returns nil, until the queue is
// empty and the dropped total has been sent. It returns how many events it uploaded. If upload
// fails, the batch stays queued, and the next Flush sends the same events with the same IDs;
// but if the error has a Permanent method that says true (the service refused the batch
// itself, as checkinclient.Error does for 400, 413, 415 and 422), the batch is discarded and
// counted as dropped, so that one bad batch cannot block the queue for good.
func (q *Queue) Flush(ctx context.Context, upload func(context.Context, v1.ReportBatch) error) (int, error) {
	sent := 0
	for {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		events, dropped := q.Peek(v1.MaxReportEvents)
		q.mu.Lock()
		done := len(events) == 0 && dropped == q.reported
		q.mu.Unlock()
		if done {
			return sent, nil
		}
		ids := make([]string, len(events))
		for i, e := range events {
			ids[i] = e.ID
		}
		if err := upload(ctx, v1.ReportBatch{Events: events, Dropped: dropped}); err != nil {
			var p interface{ Permanent() bool }
			if !errors.As(err, &p) || !p.Permanent() {
				return sent, err
			}
			if err := q.discard(ids); err != nil {
				return sent, err
			}
			continue
		}
		if err := q.Ack(ids); err != nil {
			return sent, err
		}
		q.mu.Lock()
		q.reported = max(q.reported, dropped)
		q.mu.Unlock()
		sent += len(events)
	}
}
