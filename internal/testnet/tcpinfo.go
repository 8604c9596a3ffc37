package testnet

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// TCPInfo reads the kernel's TCP_INFO for the connection: the ground truth
// for per-connection counters such as tcpi_total_retrans.
func (c *Conn) TCPInfo() (*unix.TCPInfo, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("TCP_INFO of %s: %w", c, err)
	}
	var info *unix.TCPInfo
	var serr error
	if err := raw.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, fmt.Errorf("TCP_INFO of %s: %w", c, err)
	}
	if serr != nil {
		return nil, fmt.Errorf("TCP_INFO of %s: %w", c, serr)
	}
	return info, nil
}

// WaitAcked waits until the peer has acknowledged everything the
// connection sent (nothing unacknowledged, nothing unsent), at most
// timeout, and returns TCP_INFO as it was then.
func (c *Conn) WaitAcked(timeout time.Duration) (*unix.TCPInfo, error) {
	deadline := time.Now().Add(timeout)
	for {
		info, err := c.TCPInfo()
		if err != nil {
			return nil, err
		}
		if info.Unacked == 0 && info.Notsent_bytes == 0 {
			return info, nil
		}
		if time.Now().After(deadline) {
			return info, fmt.Errorf("%s: %d segments still unacknowledged after %s", c, info.Unacked, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SetLinger0 makes Close abort the connection with a RST (SO_LINGER 0).
func (c *Conn) SetLinger0() error {
	return c.SetLinger(0)
}
