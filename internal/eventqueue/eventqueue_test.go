package eventqueue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

const comp = "2a4e5d8f-0c1b-4a7e-9b3d-5f6e7a8b9c0d"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a deterministic clock that advances a millisecond per read.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { c.t = c.t.Add(time.Millisecond); return c.t }

// seeded is a deterministic source of randomness.
type seeded struct{ r *rand.ChaCha8 }

func (s seeded) Read(p []byte) (int, error) { return s.r.Read(p) }

// seeds makes each opened queue's randomness differ, as crypto/rand's would.
var seeds byte

func open(t *testing.T, dir string, max int) *Queue {
	t.Helper()
	seeds++
	q, err := Open(Config{Dir: dir, Max: max, Now: (&clock{t: t0}).Now, Rand: seeded{rand.NewChaCha8([32]byte{seeds})}})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func crash(n int) v1.ReportEvent {
	return v1.ReportEvent{Type: v1.EventAppCrash, ComponentID: comp, Signal: 11, Message: fmt.Sprintf("crash %d", n)}
}

func add(t *testing.T, q *Queue, e v1.ReportEvent) v1.ReportEvent {
	t.Helper()
	out, err := q.Add(e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func messages(es []v1.ReportEvent) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Message)
	}
	return out
}

func idsOf(es []v1.ReportEvent) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func peekAll(q *Queue) ([]string, int64) {
	es, d := q.Peek(v1.MaxReportEvents)
	return messages(es), d
}

func TestAddPeekAckReopen(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, 10)
	a := add(t, q, crash(1))
	if a.ID == "" || !validID(a.ID) || !a.Time.After(t0) || a.Time.After(t0.Add(time.Second)) {
		t.Fatalf("added event %+v: want a lowercase UUID and the injected time", a)
	}
	b := add(t, q, crash(2))
	add(t, q, crash(3))
	if a.ID >= b.ID {
		t.Errorf("IDs do not grow: %s then %s", a.ID, b.ID)
	}
	got, d := peekAll(q)
	if !slices.Equal(got, []string{"crash 1", "crash 2", "crash 3"}) || d != 0 {
		t.Fatalf("peek: %v dropped %d", got, d)
	}
	batch, _ := q.Peek(2)
	if err := q.Ack(idsOf(batch)); err != nil {
		t.Fatal(err)
	}
	// Acknowledging again, or an ID the queue never had, is harmless.
	if err := q.Ack(append(idsOf(batch), "01950000-0000-7000-8000-000000000000")); err != nil {
		t.Fatal(err)
	}
	if got, _ := peekAll(q); !slices.Equal(got, []string{"crash 3"}) {
		t.Fatalf("after ack: %v", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Add(crash(4)); !errors.Is(err, ErrClosed) {
		t.Fatalf("add after close: %v", err)
	}
	q = open(t, dir, 10)
	defer q.Close()
	if got, _ := peekAll(q); !slices.Equal(got, []string{"crash 3"}) {
		t.Fatalf("after reopen: %v", got)
	}
}

func TestFullDropsOldest(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, 3)
	for i := 1; i <= 5; i++ {
		add(t, q, crash(i))
	}
	got, d := peekAll(q)
	if !slices.Equal(got, []string{"crash 3", "crash 4", "crash 5"}) || d != 2 || q.Len() != 3 {
		t.Fatalf("peek: %v dropped %d", got, d)
	}
	q.Close()
	q = open(t, dir, 3)
	got, d = peekAll(q)
	if !slices.Equal(got, []string{"crash 3", "crash 4", "crash 5"}) || d != 2 {
		t.Fatalf("after reopen: %v dropped %d", got, d)
	}
	// The dropped total survives compaction.
	if err := q.compact(); err != nil {
		t.Fatal(err)
	}
	add(t, q, crash(6))
	q.Close()
	q = open(t, dir, 3)
	defer q.Close()
	got, d = peekAll(q)
	if !slices.Equal(got, []string{"crash 4", "crash 5", "crash 6"}) || d != 3 {
		t.Fatalf("after compaction and reopen: %v dropped %d", got, d)
	}
}

func TestAddCleansAndRefuses(t *testing.T) {
	q := open(t, t.TempDir(), 10)
	defer q.Close()
	long := strings.Repeat("é", v1.MaxReportMessage) // two bytes each
	e := add(t, q, v1.ReportEvent{Type: v1.EventUpdateFailed, Phase: "verify\n", Reason: "bad\x00digest", Message: long,
		ComponentID: strings.ToUpper(comp), Time: time.Date(2026, 1, 1, 0, 0, 0, 1234, time.FixedZone("X", 3600))})
	if e.Phase != "verify " || e.Reason != "bad digest" || len(e.Message) > v1.MaxReportMessage || e.ComponentID != comp ||
		e.Time.Location() != time.UTC || e.Time.Nanosecond() != 1000 {
		t.Fatalf("cleaned event %+v", e)
	}
	for _, bad := range []v1.ReportEvent{
		{Type: "Crash"},
		{Type: v1.EventAppExit, ComponentID: comp}, // no exit code
		{Type: v1.EventAppCrash, ComponentID: comp, Signal: 11, ID: "not-a-uuid"},
	} {
		if _, err := q.Add(bad); err == nil || !strings.Contains(err.Error(), "event.") {
			t.Errorf("Add(%+v) = %v, want a refusal naming the field", bad, err)
		}
	}
	// A long message of characters JSON escapes is cut so that the event fits its bound.
	e = add(t, q, v1.ReportEvent{Type: v1.EventUpdateFailed, Phase: strings.Repeat(`"`, 64), Reason: strings.Repeat(`\`, 256),
		Message: strings.Repeat(`"`, 512)})
	if b, _ := Encode(e); len(b) > MaxEventSize {
		t.Fatalf("event takes %d bytes; at most %d", len(b), MaxEventSize)
	}
	if q.Len() != 2 {
		t.Fatalf("queue holds %d events, want 2", q.Len())
	}
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, 10)
	if _, err := Open(Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	q.Close()
	q = open(t, dir, 10)
	q.Close()
}

// TestTornTailAtEveryOffset cuts the log at every byte of its last record: the queue opens
// with the events before it, cuts the torn bytes off, and goes on.
func TestTornTailAtEveryOffset(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, 10)
	add(t, q, crash(1))
	add(t, q, crash(2))
	st, _ := os.Stat(filepath.Join(dir, logName))
	before := st.Size()
	add(t, q, crash(3))
	q.Close()
	full, err := os.ReadFile(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	for cut := before; cut < int64(len(full)); cut++ {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, logName), full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		q := open(t, d, 10)
		if got, _ := peekAll(q); !slices.Equal(got, []string{"crash 1", "crash 2"}) {
			t.Fatalf("cut at %d: %v", cut, got)
		}
		add(t, q, crash(4))
		q.Close()
		q = open(t, d, 10)
		if got, _ := peekAll(q); !slices.Equal(got, []string{"crash 1", "crash 2", "crash 4"}) {
			t.Fatalf("cut at %d, then an add: %v", cut, got)
		}
		q.Close()
	}
}

// TestCorruptRecordEndsTheLog flips each byte of the second record: the log ends before it,
// and the queue still opens.
func TestCorruptRecordEndsTheLog(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, 10)
	add(t, q, crash(1))
	st, _ := os.Stat(filepath.Join(dir, logName))
	first := st.Size()
	add(t, q, crash(2))
	st, _ = os.Stat(filepath.Join(dir, logName))
	second := st.Size()
	add(t, q, crash(3))
	q.Close()
	full, _ := os.ReadFile(filepath.Join(dir, logName))
	for i := first; i < second; i++ {
		d := t.TempDir()
		b := bytes.Clone(full)
		b[i] ^= 0x40
		if err := os.WriteFile(filepath.Join(d, logName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		q := open(t, d, 10)
		if got, _ := peekAll(q); !slices.Equal(got, []string{"crash 1"}) {
			t.Fatalf("byte %d flipped: %v", i, got)
		}
		q.Close()
	}
}

func TestCompactionBoundsTheLog(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, 5)
	var largest int64
	for i := range 500 {
		e := add(t, q, crash(i))
		if i%3 != 0 {
			if err := q.Ack([]string{e.ID}); err != nil {
				t.Fatal(err)
			}
		}
		st, _ := os.Stat(filepath.Join(dir, logName))
		largest = max(largest, st.Size())
	}
	if limit := int64(2*5+64+2) * 200; largest > limit {
		t.Errorf("the log grew to %d bytes; want at most about %d", largest, limit)
	}
	want, d := peekAll(q)
	q.Close()
	q = open(t, dir, 5)
	defer q.Close()
	got, d2 := peekAll(q)
	if !slices.Equal(got, want) || d != d2 || len(got) == 0 {
		t.Fatalf("after reopen %v (dropped %d), want %v (dropped %d)", got, d2, want, d)
	}
}

// refusal is an upload error that says whether it is permanent, as checkinclient.Error does.
type refusal struct{ permanent bool }

func (r refusal) Error() string   { return fmt.Sprintf("refused (permanent %v)", r.permanent) }
func (r refusal) Permanent() bool { return r.permanent }

// TestFlushRetriesWithTheSameIDs simulates a service that stores a batch and loses its reply:
// the retry sends the same IDs, and a service that keeps each ID once has every event once.
func TestFlushRetriesWithTheSameIDs(t *testing.T) {
	q := open(t, t.TempDir(), 1000)
	defer q.Close()
	var want []string
	for i := range 600 {
		want = append(want, add(t, q, crash(i)).ID)
	}
	stored := map[string]int{}
	calls := 0
	upload := func(_ context.Context, b v1.ReportBatch) error {
		calls++
		if len(b.Events) > v1.MaxReportEvents {
			t.Fatalf("batch of %d events", len(b.Events))
		}
		for _, e := range b.Events {
			stored[e.ID]++
		}
		if calls == 2 {
			return errors.New("connection reset") // stored, but the reply was lost
		}
		return nil
	}
	n, err := q.Flush(t.Context(), upload)
	if err == nil || n != 256 {
		t.Fatalf("first flush: %d, %v; want 256 then the error", n, err)
	}
	n, err = q.Flush(t.Context(), upload)
	if err != nil || n != 600-256 {
		t.Fatalf("second flush: %d, %v", n, err)
	}
	if q.Len() != 0 {
		t.Fatalf("%d events left", q.Len())
	}
	for _, id := range want {
		if stored[id] == 0 {
			t.Fatalf("event %s never uploaded", id)
		}
	}
	if len(stored) != len(want) {
		t.Fatalf("uploaded %d distinct IDs, want %d", len(stored), len(want))
	}
	// Nothing more to send.
	calls = 0
	if n, err := q.Flush(t.Context(), upload); n != 0 || err != nil || calls != 0 {
		t.Fatalf("empty flush: %d %v, %d calls", n, err, calls)
	}
}

func TestFlushDiscardsAPermanentlyRefusedBatch(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, 1000)
	for i := range 300 {
		add(t, q, crash(i))
	}
	var dropped []int64
	upload := func(_ context.Context, b v1.ReportBatch) error {
		dropped = append(dropped, b.Dropped)
		if len(dropped) == 1 {
			return fmt.Errorf("upload: %w", refusal{permanent: true})
		}
		return nil
	}
	n, err := q.Flush(t.Context(), upload)
	if err != nil || n != 300-256 {
		t.Fatalf("flush: %d, %v", n, err)
	}
	if !slices.Equal(dropped, []int64{0, 256}) {
		t.Fatalf("dropped totals sent: %v", dropped)
	}
	// A transient refusal keeps the batch.
	add(t, q, crash(1000))
	if _, err := q.Flush(t.Context(), func(context.Context, v1.ReportBatch) error { return refusal{} }); err == nil || q.Len() != 1 {
		t.Fatalf("transient refusal: %v, %d queued", err, q.Len())
	}
	q.Close()
	q = open(t, dir, 1000)
	defer q.Close()
	if _, d := q.Peek(1); d != 256 {
		t.Fatalf("dropped total after reopen: %d", d)
	}
}

// TestKillMidAppend kills a child process in the middle of writing a record (and, in a second
// round, just before compaction replaces the log), many times over one directory: the queue
// always reopens with every event whose Add returned, in order, and at most the one it was
// writing.
func TestKillMidAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, mode := range []string{"record", "compact"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			var confirmed []string // messages whose Add returned in a child
			for round := range 8 {
				cmd := exec.Command(os.Args[0], "-test.run=^TestChildAppends$", "-test.v")
				cmd.Env = append(os.Environ(), "EVENTQUEUE_CHILD_DIR="+dir, "EVENTQUEUE_CHILD_MODE="+mode,
					"EVENTQUEUE_CHILD_ROUND="+strconv.Itoa(round), "EVENTQUEUE_CHILD_STOP="+strconv.Itoa(3+round*7%11))
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				sc := bufio.NewScanner(out)
				killed := false
				for sc.Scan() {
					line := sc.Text()
					if m, ok := strings.CutPrefix(line, "added "); ok {
						confirmed = append(confirmed, m)
					}
					if line == "stopped" {
						if err := cmd.Process.Kill(); err != nil {
							t.Fatal(err)
						}
						killed = true
						break
					}
				}
				_, _ = io.Copy(io.Discard, out)
				_ = cmd.Wait()
				if !killed {
					t.Fatalf("round %d: the child never reached its stop point", round)
				}
				q, err := Open(Config{Dir: dir, Max: 1000})
				if err != nil {
					t.Fatalf("round %d: reopening after the kill: %v", round, err)
				}
				got, _ := peekAll(q)
				q.Close()
				// Every confirmed event is there, in order; at most one more (the torn one made
				// it to disk whole only if the kill came after its write).
				if len(got) < len(confirmed) || len(got) > len(confirmed)+1 || !slices.Equal(got[:len(confirmed)], confirmed) {
					t.Fatalf("round %d: queue holds %v, want %v (maybe plus one)", round, got, confirmed)
				}
				confirmed = got
			}
		})
	}
}

// TestChildAppends is the child of TestKillMidAppend: it adds events to the queue, printing
// each one whose Add returned and that it keeps, and stops (to be killed) in the middle of a
// record or before a compaction replaces the log. In compact mode it acknowledges two events of
// every three right after adding them, and compacts every 20 records.
func TestChildAppends(t *testing.T) {
	dir := os.Getenv("EVENTQUEUE_CHILD_DIR")
	if dir == "" {
		t.Skip("run by TestKillMidAppend")
	}
	stop, _ := strconv.Atoi(os.Getenv("EVENTQUEUE_CHILD_STOP"))
	round := os.Getenv("EVENTQUEUE_CHILD_ROUND")
	compact := os.Getenv("EVENTQUEUE_CHILD_MODE") == "compact"
	if compact {
		compactAfter = func(int) int { return 20 }
	}
	q, err := Open(Config{Dir: dir, Max: 1000})
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(1)
	}
	halt := func() {
		fmt.Println("stopped")
		time.Sleep(time.Minute)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		if i == stop {
			if compact {
				testHookCompact = halt
			} else {
				testHookMidRecord = halt
			}
		}
		ev := crash(i)
		ev.Message = fmt.Sprintf("r%s-%d", round, i)
		e, err := q.Add(ev)
		if err != nil {
			fmt.Println("add failed:", err)
			os.Exit(1)
		}
		if compact && i%3 != 0 {
			if err := q.Ack([]string{e.ID}); err != nil {
				fmt.Println("ack failed:", err)
				os.Exit(1)
			}
			continue
		}
		fmt.Printf("added %s\n", e.Message)
	}
}

// FuzzOpen opens arbitrary log contents: Open never fails on them (a bad record ends the
// log), holds only valid events within its bound, and the log it leaves reopens to the same
// state, also after an Add.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	q, err := Open(Config{Dir: dir, Max: 3})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 5 {
		e, err := q.Add(crash(i))
		if err != nil {
			f.Fatal(err)
		}
		if i == 1 {
			_ = q.Ack([]string{e.ID})
		}
	}
	_ = q.compact()
	_, _ = q.Add(crash(9))
	q.Close()
	seed, err := os.ReadFile(filepath.Join(dir, logName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{})
	f.Add(encodeRecord(kindAck, []byte("x")))
	f.Add(encodeRecord(kindHeader, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, log []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, logName), log, 0o600); err != nil {
			t.Fatal(err)
		}
		q, err := Open(Config{Dir: dir, Max: 3})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		got, dropped := q.Peek(v1.MaxReportEvents)
		if len(got) > 3 || dropped < 0 {
			t.Fatalf("%d events, dropped %d", len(got), dropped)
		}
		for _, e := range got {
			if !validID(e.ID) {
				t.Fatalf("invalid ID %q", e.ID)
			}
		}
		if _, err := q.Add(crash(100)); err != nil {
			t.Fatal(err)
		}
		want, wantDropped := q.Peek(v1.MaxReportEvents)
		q.Close()
		q, err = Open(Config{Dir: dir, Max: 3})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer q.Close()
		again, againDropped := q.Peek(v1.MaxReportEvents)
		if !slices.Equal(idsOf(again), idsOf(want)) || againDropped != wantDropped {
			t.Fatalf("reopened to %v (dropped %d), want %v (dropped %d)", idsOf(again), againDropped, idsOf(want), wantDropped)
		}
	})
}
