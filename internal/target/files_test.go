package target

import (
	"fmt"
	"net"
	"os"
	"reflect"
	"syscall"
	"testing"
)

// fdAddr is where the internal/poll.FD behind a net.Conn or *os.File is in
// this process: the first field of the netFD or os.file they point to.
func fdAddr(t *testing.T, v any) uint64 {
	t.Helper()
	r := reflect.ValueOf(v).Elem() // net.UDPConn{conn{fd *netFD}}, os.File{*file}
	if r.Kind() == reflect.Struct {
		r = r.Field(0)
	}
	for r.Kind() == reflect.Struct {
		r = r.Field(0)
	}
	if r.Kind() != reflect.Pointer {
		t.Fatalf("%T: no pointer to its FD", v)
	}
	return uint64(r.Pointer())
}

// TestFileAt names this process's own sockets and files from their FDs in
// memory, as the report names a file's lock.
func TestFileAt(t *testing.T) {
	p := &Process{PID: os.Getpid()}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcp, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		v    any
		fd   uintptr
		want string
	}{
		{udp, sysfd(t, udp), "udp " + udp.LocalAddr().String()},
		{tcp, sysfd(t, tcp.(*net.TCPConn)), "tcp " + tcp.LocalAddr().String() + " to " + ln.Addr().String()},
		{f, f.Fd(), f.Name()},
	} {
		want := fmt.Sprintf("fd %d (%s)", tc.fd, tc.want)
		if got := p.FileAt(fdAddr(t, tc.v)); got != want {
			t.Errorf("FileAt(%T) = %q, want %q", tc.v, got, want)
		}
	}
}

// sysfd is a connection's file descriptor, read without duplicating it.
func sysfd(t *testing.T, c syscall.Conn) uintptr {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	if err := raw.Control(func(s uintptr) { fd = s }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0100007F:0035", "127.0.0.1:53"},
		{"00000000000000000000000001000000:1F90", "[::1]:8080"},
		{"0000000000000000FFFF00000100007F:01BB", "127.0.0.1:443"},
	} {
		a, ok := parseAddr(tc.in)
		if !ok || a.String() != tc.want {
			t.Errorf("parseAddr(%q) = %v, %v; want %s", tc.in, a, ok, tc.want)
		}
	}
	for _, bad := range []string{"", "0100007F", "zz00007F:0035", "01007F:0035"} {
		if a, ok := parseAddr(bad); ok {
			t.Errorf("parseAddr(%q) = %v, want an error", bad, a)
		}
	}
}
