package target

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// sysfdOffset is where internal/poll.FD keeps its file descriptor, Sysfd,
// after its 16-byte fdMutex: the same in every Go release since 1.9.
const sysfdOffset = 16

// FileAt names the file or socket whose internal/poll.FD is at addr in the
// target: "fd 7 (udp 127.0.0.1:53)", "fd 3 (/var/log/app.log)"; "" if the
// FD cannot be read.
func (p *Process) FileAt(addr uint64) string {
	var b [8]byte
	if err := p.ReadMemory(addr+sysfdOffset, b[:]); err != nil {
		return ""
	}
	fd := int64(binary.LittleEndian.Uint64(b[:])) // amd64 and arm64 alike
	if fd < 0 || fd > 1<<30 {
		return "" // closed (-1), or not an FD after all
	}
	return p.fileName(int(fd))
}

// fileName says what the target's file descriptor fd is now: a socket by
// its protocol and addresses, anything else by what /proc links it to.
func (p *Process) fileName(fd int) string {
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p.PID, fd))
	if err != nil {
		return fmt.Sprintf("fd %d", fd)
	}
	if s, ok := strings.CutPrefix(link, "socket:["); ok {
		if inode, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
			if name := p.socket(inode); name != "" {
				link = name
			}
		}
	}
	return fmt.Sprintf("fd %d (%s)", fd, link)
}

// socket finds an IP socket by its inode in the tables of the target's
// network namespace: "udp 127.0.0.1:53", "tcp 10.0.0.1:443 to
// 10.0.0.2:51234". Others (unix sockets) are "".
func (p *Process) socket(inode uint64) string {
	for _, proto := range []string{"tcp", "udp", "tcp6", "udp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", p.PID, proto))
		if err != nil {
			continue
		}
		name := findSocket(bufio.NewScanner(f), strings.TrimSuffix(proto, "6"), inode)
		f.Close()
		if name != "" {
			return name
		}
	}
	return ""
}

// findSocket reads a /proc/net/{tcp,udp}[6] table for the socket with
// inode: "  sl  local_address rem_address   st … uid  timeout inode".
func findSocket(sc *bufio.Scanner, proto string, inode uint64) string {
	want := strconv.FormatUint(inode, 10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[9] != want {
			continue
		}
		local, ok1 := parseAddr(f[1])
		remote, ok2 := parseAddr(f[2])
		if !ok1 {
			return ""
		}
		name := proto + " " + local.String()
		if ok2 && remote.Port != 0 {
			name += " to " + remote.String()
		}
		return name
	}
	return ""
}

// parseAddr parses the kernel's "0100007F:0035": the address in hex, as
// 32-bit words in the host's byte order, and the port in hex.
func parseAddr(s string) (*net.TCPAddr, bool) {
	a, p, ok := strings.Cut(s, ":")
	b, err := hex.DecodeString(a)
	port, err2 := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || err2 != nil || len(b)%4 != 0 || len(b) == 0 {
		return nil, false
	}
	for i := 0; i < len(b); i += 4 { // little-endian words (amd64, arm64)
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return &net.TCPAddr{IP: net.IP(b), Port: int(port)}, true
}
