// Command backend is the upstream Caddy proxies to in the real-server
// benchmark: a plain net/http server on a loopback address that answers
// every request with a small JSON body, so that the work measured is
// Caddy's.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	if host, _, err := net.SplitHostPort(*addr); err != nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintln(os.Stderr, "backend: -addr must be a loopback address")
		os.Exit(2)
	}
	body := make([]byte, 512)
	copy(body, `{"ok":true,"pad":"`)
	for i := 18; i < len(body)-2; i++ {
		body[i] = 'a' + byte(i%26)
	}
	copy(body[len(body)-2:], `"}`)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("X-Backend-Path", r.URL.Path)
		w.Write(body)
	})
	if err := http.Serve(ln, h); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}
