package enrollment_test

import (
	"crypto/rand"
	"crypto/rsa"
)

// rsaKey makes an RSA key of any size for negative tests. crypto/rsa refuses keys under 1024
// bits, which is all the tests need.
func rsaKey(bits int) (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, bits) }
