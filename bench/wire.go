package bench

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// TCPBytes is what the kernel counted on the TCP sockets of process pid
// (bytes_sent plus bytes_received of each established socket, from
// `ss -tinp`, so TCP payload: libp2p's Noise and yamux framing included),
// leaving out sockets whose local port is one of skipPorts (the local API).
// Sockets closed meanwhile are not counted, so compare two readings of
// long-lived connections only.
func TCPBytes(pid int, skipPorts ...int) (int64, error) {
	out, err := exec.Command("ss", "-tinpH", "state", "established").Output()
	if err != nil {
		return 0, fmt.Errorf("count TCP bytes with ss (iproute2): %w", err)
	}
	owner := fmt.Sprintf("pid=%d,", pid)
	var total int64
	lines := strings.Split(string(out), "\n")
	for i := 0; i+1 < len(lines); i++ {
		l := lines[i]
		if !strings.Contains(l, owner) || skipped(l, skipPorts) {
			continue
		}
		for _, f := range strings.Fields(lines[i+1]) {
			k, v, ok := strings.Cut(f, ":")
			if ok && (k == "bytes_sent" || k == "bytes_received") {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("ss printed %q: %w", f, err)
				}
				total += n
			}
		}
		i++
	}
	return total, nil
}

// skipped reports whether the socket line's local address (the third
// field: Recv-Q, Send-Q, local, peer) has one of ports.
func skipped(line string, ports []int) bool {
	f := strings.Fields(line)
	if len(f) < 3 {
		return true
	}
	i := strings.LastIndexByte(f[2], ':')
	p, err := strconv.Atoi(f[2][i+1:])
	if err != nil {
		return true
	}
	for _, s := range ports {
		if p == s {
			return true
		}
	}
	return false
}
