package attestsvc

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"io"
	"time"
)

// A nonce is a ticket the service can check without having stored it: what the service needs
// to remember about the challenge travels inside it, authenticated with a key only the service
// holds. Issuing a nonce therefore writes nothing; using one writes its hash, once, in the same
// transaction that records the attestation, which is what makes it single-use.
//
//	ticket = version (1) || expires, unix ms (8) || random (16) || activation flag (1) ||
//	         activation hash (32) || HMAC-SHA256(key, "rampart-nonce-v1" || device ID || all before) (32)
const (
	ticketVersion = 1
	ticketSize    = 1 + 8 + 16 + 1 + 32 + 32
)

// TicketSize is the size of an attestation nonce.
const TicketSize = ticketSize

var errTicket = errors.New("the nonce was not issued by this service for this device")

type ticket struct {
	expires        time.Time
	activationHash []byte // nil when the nonce carried no activation challenge
}

func ticketMAC(key []byte, deviceID string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("rampart-nonce-v1\x00"))
	m.Write([]byte(deviceID))
	m.Write(body)
	return m.Sum(nil)
}

func makeTicket(key []byte, rnd io.Reader, deviceID string, t ticket) ([]byte, error) {
	b := make([]byte, ticketSize)
	b[0] = ticketVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(t.expires.UnixMilli()))
	if _, err := io.ReadFull(rnd, b[9:25]); err != nil {
		return nil, err
	}
	if t.activationHash != nil {
		b[25] = 1
		copy(b[26:58], t.activationHash)
	}
	copy(b[58:], ticketMAC(key, deviceID, b[:58]))
	return b, nil
}

func openTicket(key []byte, deviceID string, b []byte) (ticket, error) {
	if len(b) != ticketSize || b[0] != ticketVersion || b[25] > 1 {
		return ticket{}, errTicket
	}
	if subtle.ConstantTimeCompare(ticketMAC(key, deviceID, b[:58]), b[58:]) != 1 {
		return ticket{}, errTicket
	}
	t := ticket{expires: time.UnixMilli(int64(binary.BigEndian.Uint64(b[1:9]))).UTC()}
	if b[25] == 1 {
		t.activationHash = append([]byte(nil), b[26:58]...)
	}
	return t, nil
}
