package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
)

// A failed attempt's last_error, which every role of the tenant sees, says only what the
// service itself knows: the status code with its standard text, or the class of a transport
// failure. Nothing the receiver sent (a body, a reason phrase, a malformed status line, the
// bytes of a non-TLS answer) is kept, so a webhook cannot be used to read what an internal
// service answers.

// statusFailure describes a non-2xx answer by its code and the code's standard text.
func statusFailure(code int) string {
	msg := "HTTP " + strconv.Itoa(code)
	if text := http.StatusText(code); text != "" {
		msg += " " + text
	}
	if code >= 300 && code <= 399 {
		msg += " (redirects are not followed)"
	}
	return msg
}

// transportFailure describes an error of the HTTP client by its class alone: the error's own
// text may quote the receiver's answer (a malformed response, a non-TLS record), so it is
// never kept.
func transportFailure(err error) string {
	var dnsErr *net.DNSError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var alert tls.AlertError
	var netErr net.Error
	switch {
	case errors.Is(err, errPrivateAddress):
		return "refused: a private or other non-public address (webhooks.deny_private_networks)"
	case errors.Is(err, ErrRefusedAddress):
		return "refused: a link-local or metadata address"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "DNS: no such host"
		}
		return "DNS: lookup failed"
	case errors.As(err, &hostname):
		return "TLS: certificate not valid for the host"
	case errors.As(err, &invalid):
		return "TLS: certificate not valid (expired, not yet valid or not a server's)"
	case errors.As(err, &unknownAuthority), errors.As(err, &verify):
		return "TLS: certificate not trusted"
	case errors.As(err, &record), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "TLS: the receiver does not speak TLS"
	case errors.As(err, &alert):
		return "TLS: handshake refused by the receiver"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the receiver"
	default:
		return "request failed (no valid HTTP answer)"
	}
}
