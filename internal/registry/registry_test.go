package registry

import (
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := New[int]("widget")
	r.Register("b", 2)
	r.Register("a", 1)
	if got := strings.Join(r.Names(), ","); got != "a,b" {
		t.Fatalf("names %s", got)
	}
	if v, err := r.Lookup("b"); err != nil || v != 2 {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := r.Lookup("c"); err == nil || !strings.Contains(err.Error(), `unknown widget "c" (known: a, b)`) {
		t.Fatalf("unknown name: %v", err)
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "widget registered twice: a") {
			t.Fatalf("duplicate registration: %v", p)
		}
	}()
	r.Register("a", 3)
}
