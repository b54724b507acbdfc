package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/maptrace/maptrace/internal/testtarget"
)

// TestListenTLS serves metrics over TLS with basic authentication from a
// web configuration file, and scrapes them with and without credentials.
func TestListenTLS(t *testing.T) {
	testtarget.NeedRoot(t)
	dir := t.TempDir()
	pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// Relative paths are relative to the configuration file.
	config := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`tls_server_config:
  cert_file: cert.pem
  key_file: key.pem
basic_auth_users:
  scraper: %s
`, hash)), 0o600); err != nil {
		t.Fatal(err)
	}

	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/contention", "local"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m, _, stderr := attached(t, "attach", "-p", strconv.Itoa(p.PID()), "--listen", addr, "--web.config.file", config, "--keys", "raw")
	p.Send(t, "run 300")
	p.Line(t, 30*time.Second)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(url, user, pass string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	url := "https://" + addr + "/metrics"
	for _, tc := range []struct{ user, pass string }{{"", ""}, {"scraper", "wrong"}, {"someone", "s3cret"}} {
		if code, _ := get(url, tc.user, tc.pass); code != http.StatusUnauthorized {
			t.Errorf("GET %s as %q/%q: %d, want 401", url, tc.user, tc.pass, code)
		}
	}
	code, body := get(url, "scraper", "s3cret")
	if code != http.StatusOK || !strings.Contains(body, "maptrace_target_info{") {
		t.Errorf("GET %s with credentials: %d\n%.1000s", url, code, body)
	}
	// --keys raw, given, puts keys on /metrics as they are.
	for _, k := range keyLabels(body) {
		if hashedKey.MatchString(k) {
			t.Errorf("key %q on /metrics with --keys raw, want it raw", k)
		}
	}
	if code, _ := get("http://"+addr+"/metrics", "scraper", "s3cret"); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS listener: %d, want 400", code)
	}
	if !strings.Contains(stderr.String(), "serving metrics at https://"+addr+"/metrics") {
		t.Errorf("stderr does not say it serves https:\n%s", stderr)
	}
	m.Process.Signal(os.Interrupt)
	if err := m.Wait(); err != nil {
		t.Errorf("maptrace: %v", err)
	}
}

// selfSigned writes cert.pem and key.pem for 127.0.0.1 into dir and returns
// a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "maptrace test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, b := range map[string][]byte{
		"cert.pem": certPEM,
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}
