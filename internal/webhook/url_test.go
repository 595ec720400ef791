package webhook_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/webhook"
)

func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		url      string
		loopback bool
		want     string // "" for accepted, else part of the error
	}{
		{"https://hooks.example.com/rampart?x=1", false, ""},
		{"https://203.0.113.7:8443/hook", false, ""},
		{"https://[2001:db8::1]/hook", false, ""},
		{"http://hooks.example.com/x", false, "must use https"},
		{"http://127.0.0.1:9000/x", false, "must use https"},
		{"http://127.0.0.1:9000/x", true, ""},
		{"http://localhost/x", true, ""},
		{"http://[::1]:80/x", true, ""},
		{"http://hooks.example.com/x", true, "only to a loopback host"},
		{"http://10.0.0.1/x", true, "only to a loopback host"},
		{"ftp://hooks.example.com/x", true, "scheme must be https"},
		{"file:///etc/passwd", true, "no host"},
		{"javascript:alert(1)", true, "not an absolute"},
		{"/relative/path", false, "not an absolute"},
		{"https://user:pw@hooks.example.com/", false, "user name"},
		{"https://hooks.example.com/#frag", false, "fragment"},
		{"https://169.254.169.254/latest/meta-data", false, "link-local"},
		{"https://[fe80::1]/x", false, "link-local"},
		{"https://[fd00:ec2::254]/x", false, "link-local"},
		{"https://0.0.0.0/x", false, "link-local"},
		{"https://hooks.example.com/" + strings.Repeat("a", webhook.MaxURLLength), false, "limit"},
		{"https://%zz", false, "not a URL"},
	} {
		_, err := webhook.CheckURL(c.url, c.loopback)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckURL(%q, %v): %v", c.url, c.loopback, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("CheckURL(%q, %v) = %v, want an error saying %q", c.url, c.loopback, err, c.want)
		case err != nil && !strings.HasPrefix(err.Error(), "url: "):
			t.Errorf("CheckURL(%q): error does not name the field: %v", c.url, err)
		}
	}
}

// TestClientRefusesLinkLocal: the delivery client refuses link-local and metadata addresses
// when it dials, whatever the URL's check said, so a name that resolves there is refused too.
func TestClientRefusesLinkLocal(t *testing.T) {
	c := webhook.NewClient(2*time.Second, nil, false)
	for _, u := range []string{"https://169.254.169.254/latest/meta-data/", "http://169.254.0.1:80/", "https://[fe80::1]:443/"} {
		resp, err := c.Post(u, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: connected", u)
			continue
		}
		if !errors.Is(err, webhook.ErrRefusedAddress) {
			t.Errorf("%s: %v, want ErrRefusedAddress", u, err)
		}
	}
	if c.CheckRedirect == nil || c.CheckRedirect(&http.Request{}, nil) != http.ErrUseLastResponse {
		t.Error("the client would follow redirects")
	}
}

func TestParseEvents(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"rollout.state_changed", "[rollout.state_changed]", ""},
		{" rollout.state_changed , error_report.bucket_created", "[error_report.bucket_created rollout.state_changed]", ""},
		{"", "", "at least one"},
		{"  ", "", "at least one"},
		{"rollout.state_changed,", "", "empty name"},
		{"rollout.state_changed,rollout.state_changed", "", "twice"},
		{"push", "", `"push" is not an event type`},
		{strings.Repeat("x", 2000), "", "limit"},
	} {
		got, err := webhook.ParseEvents(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.HasPrefix(err.Error(), "events: ") {
				t.Errorf("ParseEvents(%q) = %v, %v; want an error saying %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != strings.Trim(c.want, "[]") {
			t.Errorf("ParseEvents(%q) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func FuzzParseEvents(f *testing.F) {
	f.Add("rollout.state_changed,error_report.bucket_created")
	f.Add(" , ")
	f.Add("error_report.bucket_created,error_report.bucket_created")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := webhook.ParseEvents(s)
		if err != nil {
			if got != nil {
				t.Fatalf("error with a result: %v", got)
			}
			return
		}
		if len(got) == 0 || len(got) > len(webhook.Events) {
			t.Fatalf("accepted %q as %v", s, got)
		}
		// What it returns parses to itself.
		again, err := webhook.ParseEvents(strings.Join(got, ","))
		if err != nil || strings.Join(again, ",") != strings.Join(got, ",") {
			t.Fatalf("%v does not round-trip: %v, %v", got, again, err)
		}
	})
}

func FuzzCheckURL(f *testing.F) {
	f.Add("https://hooks.example.com/x", false)
	f.Add("http://127.0.0.1:1/", true)
	f.Add("https://[fe80::1%25eth0]/", false)
	f.Fuzz(func(t *testing.T, s string, loopback bool) {
		u, err := webhook.CheckURL(s, loopback)
		if err != nil {
			return
		}
		if u.Scheme != "https" && !(loopback && u.Scheme == "http") {
			t.Fatalf("accepted scheme %q in %q", u.Scheme, s)
		}
		if u.Hostname() == "" || u.User != nil {
			t.Fatalf("accepted %q", s)
		}
	})
}
