package collector

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// KeyHasher hashes map keys for --keys hash: HMAC-SHA256 under a secret
// drawn at random for each trace. Within one trace a key always hashes the
// same, so that its report, metrics and live view agree; a plain hash could
// be reversed by hashing guesses (e-mail addresses, small integers), and this
// one differs from trace to trace.
type KeyHasher struct {
	secret [32]byte
}

// NewKeyHasher draws a new secret.
func NewKeyHasher() *KeyHasher {
	h := &KeyHasher{}
	rand.Read(h.secret[:]) // never fails: it crashes the program instead
	return h
}

// Hash hashes a key as --keys raw shows it: "h:" and 12 hex digits.
func (h *KeyHasher) Hash(raw string) string {
	m := hmac.New(sha256.New, h.secret[:])
	m.Write([]byte(raw))
	return "h:" + hex.EncodeToString(m.Sum(nil)[:6])
}
