package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
)

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the error line
	}{
		{[]string{"bogus"}, `unknown command "bogus" for "rampart"; run 'rampart --help'`},
		{[]string{"prodcut"}, `did you mean "product"?`},
		{[]string{"product", "bogus"}, `unknown command "bogus" for "rampart product"; run 'rampart product --help'`},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"product", "create", "--bogus"}, "unknown flag: --bogus; run 'rampart product create --help'"},
		{[]string{"product", "create"}, "missing flag --name"},
		{[]string{"product", "create", "--name"}, "flag needs an argument"},
		{[]string{"product", "create", "--name", "x", "extra"}, `unexpected argument "extra"`},
		{[]string{"product", "show"}, "missing argument PRODUCT"},
		{[]string{"product", "show", "a", "b"}, "too many arguments"},
		{[]string{"product", "update", "p"}, "nothing to update"},
		{[]string{"product", "list", "-o", "yaml"}, "want one of table, json"},
		{[]string{"device-group", "create", "--product", "p", "--name", "g", "--os-feed", "Beta"}, "want one of Retail, RetailEval"},
		{[]string{"device-group", "create", "--product", "p", "--name", "g", "--check-in-interval", "soon"}, "invalid duration"},
		{[]string{"device-group", "update", "g"}, "nothing to update"},
		{[]string{"role", "add", "--user", "ann"}, "missing flag --role"},
		{[]string{"role", "add", "--user", "ann", "--role", "Owner"}, "want one of Administrator, Contributor, Reader"},
		{[]string{"device", "claim"}, "pass either --enrollment FILE or --bulk FILE"},
		{[]string{"device", "claim", "--enrollment", "a", "--bulk", "b"}, "pass either"},
		{[]string{"device", "claim", "--bulk", "b", "--product", "p"}, "--product needs --device-group"},
		{[]string{"device", "assign", "abc"}, "missing flag --device-group"},
		{[]string{"device", "claim", "--bulk", "-", "--token", "-"}, "cannot both come from stdin"},
		{[]string{"audit", "list", "--since", "yesterday"}, "--since: invalid time"},
		{[]string{"audit", "list", "--result", "maybe"}, "want one of success, failure"},
		{[]string{"audit", "list", "--max", "-1"}, "--max must be"},
		{[]string{"completion"}, "want one shell"},
		{[]string{"completion", "powershell"}, `unsupported shell "powershell"`},
		{[]string{"token", "create", "--expires-in", "0d"}, "must be positive"},
		{[]string{"login"}, "missing flag --token"},
		{[]string{"login", "--token", "x"}, "missing flag --addr"},
		{[]string{"version", "now"}, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := newRunner(t, nil).run(t, tt.args...)
			if res.code != 2 {
				t.Errorf("exit code = %d, want 2 (stderr %q)", res.code, res.err)
			}
			if line := res.oneErrorLine(t); !strings.Contains(line, tt.want) {
				t.Errorf("error = %q, want it to contain %q", line, tt.want)
			}
			if !strings.Contains(res.err, "--help'") {
				t.Errorf("error %q has no help hint", res.err)
			}
			if res.out != "" {
				t.Errorf("stdout = %q, want nothing", res.out)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"--help"}, {"help"}, {"product"}, {"product", "--help"}, {"help", "device"}, {"device", "claim", "-h"}} {
		res := newRunner(t, nil).run(t, args...)
		if res.code != 0 || res.err != "" || !strings.Contains(res.out, "Usage:") {
			t.Errorf("%v: code %d, stderr %q, stdout %.80q", args, res.code, res.err, res.out)
		}
	}
}

func TestNotConfigured(t *testing.T) {
	res := newRunner(t, nil).run(t, "product", "list")
	if res.code != 1 {
		t.Errorf("exit code = %d, want 1", res.code)
	}
	if line := res.oneErrorLine(t); !strings.Contains(line, "no server address") {
		t.Errorf("error = %q", line)
	}

	res = newRunner(t, map[string]string{envAddr: "https://127.0.0.1:1"}).run(t, "product", "list")
	if line := res.oneErrorLine(t); res.code != 1 || !strings.Contains(line, "not logged in") {
		t.Errorf("code %d, error %q", res.code, line)
	}

	res = newRunner(t, map[string]string{envAddr: "http://127.0.0.1:1", envToken: "x"}).run(t, "product", "list")
	if line := res.oneErrorLine(t); res.code != 1 || !strings.Contains(line, "plain http is refused") {
		t.Errorf("code %d, error %q", res.code, line)
	}

	res = newRunner(t, map[string]string{envAddr: "https://127.0.0.1:1", envToken: "x", envCACert: "/nonexistent.pem"}).run(t, "product", "list")
	if line := res.oneErrorLine(t); res.code != 1 || !strings.Contains(line, "reading CA certificate") {
		t.Errorf("code %d, error %q", res.code, line)
	}
}

func TestUnreachable(t *testing.T) {
	res := newRunner(t, map[string]string{envAddr: "https://127.0.0.1:1", envToken: "x"}).run(t, "tenant", "list")
	if line := res.oneErrorLine(t); res.code != 1 || !strings.Contains(line, "cannot reach the Rampart server at https://127.0.0.1:1") {
		t.Errorf("code %d, error %q", res.code, line)
	}
}

func TestDescribe(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		err  error
		want string
		code int
	}{
		{&client.APIError{Status: 403, Body: v1.Error{Code: v1.CodeForbidden, Message: "forbidden: your role Reader does not allow product.create"}},
			"forbidden: your role Reader does not allow product.create", 1},
		{&client.APIError{Status: 403, Body: v1.Error{Code: v1.CodeForbidden, Message: "your role Reader does not allow product.create"}},
			"forbidden: your role Reader does not allow product.create", 1},
		{fmt.Errorf("login failed: %w", &client.APIError{Status: 401, Body: v1.Error{Code: v1.CodeUnauthenticated, Message: "token expired"}}),
			"login failed: unauthenticated: token expired", 1},
		{&client.APIError{Status: 409, Body: v1.Error{Code: v1.CodeConflict, Message: "product \"A\" exists\nsecond line\x1b[31m"}},
			`product "A" exists; second line [31m`, 1},
		{&notFoundError{`product "Foo" not found`}, `product "Foo" not found`, 1},
		{&usageError{msg: "bad"}, "bad; run 'rampart --help'", 2},
		{errors.New("plain"), "plain", 1},
	}
	for _, tt := range tests {
		msg, code := describe(ctx, tt.err)
		if msg != tt.want || code != tt.code {
			t.Errorf("describe(%v) = %q, %d; want %q, %d", tt.err, msg, code, tt.want, tt.code)
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if msg, code := describe(cctx, fmt.Errorf("request: %w", context.Canceled)); msg != "interrupted" || code != 1 {
		t.Errorf("cancelled: %q, %d", msg, code)
	}
}

func TestCompletion(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash": "__start_rampart",
		"zsh":  "#compdef rampart",
		"fish": "complete -c rampart",
	} {
		res := newRunner(t, nil).run(t, "completion", shell)
		if res.code != 0 || res.err != "" || !strings.Contains(res.out, marker) {
			t.Errorf("completion %s: code %d, stderr %q, script lacks %q", shell, res.code, res.err, marker)
		}
	}
}

// TestDynamicCompletion checks the completions that the generated scripts ask for.
func TestDynamicCompletion(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "prod"}, []string{"product"}},
		{[]string{"__complete", "device-group", "create", "--os-feed", ""}, []string{"Retail", "RetailEval"}},
		{[]string{"__complete", "role", "add", "--role", ""}, []string{"Administrator", "Contributor", "Reader"}},
		{[]string{"__complete", "-o", ""}, []string{"table", "json"}},
		{[]string{"__complete", "completion", ""}, []string{"bash", "zsh", "fish"}},
	}
	for _, tt := range tests {
		res := newRunner(t, nil).run(t, tt.args...)
		for _, w := range tt.want {
			if res.code != 0 || !strings.Contains(res.out, w) {
				t.Errorf("%v: code %d, output %q lacks %q", tt.args, res.code, res.out, w)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	res := newRunner(t, nil).run(t, "version")
	if res.code != 0 || !strings.HasPrefix(res.out, "rampart ") {
		t.Errorf("version: code %d, out %q", res.code, res.out)
	}
	res = newRunner(t, nil).run(t, "version", "-o", "json")
	if res.code != 0 || !strings.Contains(res.out, `"go_version"`) {
		t.Errorf("version -o json: code %d, out %q", res.code, res.out)
	}
}
