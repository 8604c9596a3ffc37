package diag

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/conn"
)

// dumpRetries bounds the re-reads of a dump the kernel marked interrupted
// (the socket tables changed while it was read).
const dumpRetries = 3

// Sockets dumps every TCP socket of one namespace, IPv4 and IPv6, with
// TCP_INFO where the kernel gives it (not for TIME_WAIT and request
// sockets). A dump still interrupted after a few tries is used as it is,
// and said so in interrupted.
func Sockets(ns Namespace) (samples []conn.Sample, interrupted bool, err error) {
	h, err := netns.GetFromPath(ns.Path)
	if err != nil {
		return nil, false, fmt.Errorf("open network namespace %s: %w", ns.Path, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h, unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, false, fmt.Errorf("open sock_diag in network namespace %s: %w", ns.Path, err)
	}
	defer nl.Close()
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		var resp []*netlink.InetDiagTCPInfoResp
		for try := 0; ; try++ {
			resp, err = nl.SocketDiagTCPInfo(family)
			if errors.Is(err, netlink.ErrDumpInterrupted) && try < dumpRetries {
				continue
			}
			break
		}
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			interrupted = true
		} else if err != nil {
			return nil, false, fmt.Errorf("sock_diag dump in network namespace %s: %w", ns.Path, err)
		}
		for _, r := range resp {
			if s, ok := sample(ns.Inode, r); ok {
				samples = append(samples, s)
			}
		}
	}
	return samples, interrupted, nil
}

func sample(netns uint64, r *netlink.InetDiagTCPInfoResp) (conn.Sample, bool) {
	m := r.InetDiagMsg
	if m == nil {
		return conn.Sample{}, false
	}
	s := conn.Sample{
		Key: conn.Key{NetNS: netns,
			Local:  netip.AddrPortFrom(addr(m.ID.Source), m.ID.SourcePort),
			Remote: netip.AddrPortFrom(addr(m.ID.Destination), m.ID.DestinationPort)},
		State: m.State, Inode: m.INode, UID: m.UID, RQueue: m.RQueue, WQueue: m.WQueue,
	}
	if r.TCPInfo != nil {
		s.Info = info(r.TCPInfo)
	}
	return s, true
}

// addr is ip as IPv4 when it is IPv4 or v4-mapped.
func addr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

// info copies the library's TCP_INFO. It parses the struct up to the
// length the kernel sent and leaves later fields 0: every field read here
// exists since Linux 5.4 (tcpi_snd_wnd), older than tcplens's 5.8.
func info(t *netlink.TCPInfo) *conn.TCPInfo {
	return &conn.TCPInfo{
		State: t.State, CAState: t.Ca_state, Retransmits: t.Retransmits, Probes: t.Probes, Backoff: t.Backoff,
		DeliveryRateAppLimited: t.Delivery_rate_app_limited&1 != 0,
		RTO:                    t.Rto, ATO: t.Ato, SndMSS: t.Snd_mss, RcvMSS: t.Rcv_mss,
		Unacked: t.Unacked, Sacked: t.Sacked, Lost: t.Lost, Retrans: t.Retrans,
		LastDataSentMS: t.Last_data_sent, LastAckRecvMS: t.Last_ack_recv, LastDataRecvMS: t.Last_data_recv,
		PMTU: t.Pmtu, RcvSSThresh: t.Rcv_ssthresh, RTT: t.Rtt, RTTVar: t.Rttvar,
		SndSSThresh: t.Snd_ssthresh, SndCwnd: t.Snd_cwnd, AdvMSS: t.Advmss, Reordering: t.Reordering,
		RcvRTT: t.Rcv_rtt, RcvSpace: t.Rcv_space, TotalRetrans: t.Total_retrans,
		PacingRate: t.Pacing_rate, MaxPacingRate: t.Max_pacing_rate,
		BytesAcked: t.Bytes_acked, BytesReceived: t.Bytes_received,
		SegsOut: t.Segs_out, SegsIn: t.Segs_in, NotsentBytes: t.Notsent_bytes, MinRTT: t.Min_rtt,
		DataSegsIn: t.Data_segs_in, DataSegsOut: t.Data_segs_out, DeliveryRate: t.Delivery_rate,
		BusyTime: t.Busy_time, RwndLimited: t.Rwnd_limited, SndbufLimited: t.Sndbuf_limited,
		Delivered: t.Delivered, DeliveredCE: t.Delivered_ce, BytesSent: t.Bytes_sent, BytesRetrans: t.Bytes_retrans,
		DSACKDups: t.Dsack_dups, ReordSeen: t.Reord_seen, RcvOOOPack: t.Rcv_ooopack, SndWnd: t.Snd_wnd,
	}
}
