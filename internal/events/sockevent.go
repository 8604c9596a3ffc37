package events

import "net/netip"

// Ends makes the local and the remote end of a connection from the
// address block every socket-path record carries (struct sock_addrs in
// bpf/sock_common.h); the BPF side always puts this host's end first.
func Ends(family uint8, local, remote *[16]byte, lport, rport uint16) (l, r netip.AddrPort) {
	return netip.AddrPortFrom(Addr(family, *local), lport), netip.AddrPortFrom(Addr(family, *remote), rport)
}
