package integration

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestSynBySignature runs `tcplens syn --by signature` on B while A opens
// real connections to B (IPv4 and IPv6: the kernel's own SYNs, whatever
// options this kernel sends) and writes bare SYNs (no options) onto the
// veth itself. Two oracles, neither tcplens: tcpdump on B's veth, whose
// capture gopacket decodes and this test formats into signatures itself
// (sigOfOptions), and the kernels' counters: A's ActiveOpens and SYN
// retransmissions for the real SYNs, the socket's count for the bare ones.
// The bare SYNs must show as -:-:- with exactly the count sent, the real
// ones under the kernel's signatures with exactly the SYNs A sent.
func TestSynBySignature(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	run := runSynSignatures(t, "--interval", "300ms")
	sum, res, captured, realSYNs, sent := run.sum, run.res, run.captured, run.realSYNs, run.sent
	checkCounts(t, sum, map[string]uint64{"syn": realSYNs + uint64(sent), "by_signature.untracked": 0,
		"tuples": 0, "sources": 0})

	// The summary's totals.
	totals := sigTotals(t, sum)
	if fmt.Sprint(totals) != fmt.Sprint(captured) {
		t.Errorf("summary by signature %v, tcpdump's capture %v", totals, captured)
	}
	t.Logf("signatures: %v", totals)
	if totals["-:-:-"] != uint64(sent) {
		t.Errorf("-:-:- counted %d, the test sent %d bare SYNs", totals["-:-:-"], sent)
	}

	// The interval records add up to the same totals, with shares that
	// add up to 1 per interval.
	perInterval := map[string]uint64{}
	shares := map[string]float64{}
	for _, r := range res.Records(t) {
		switch r.Type() {
		case "syn_signature":
			perInterval[r.String(t, "signature")] += r.Uint(t, "syn")
			share, err := strconv.ParseFloat(fmt.Sprint(r["share"]), 64)
			if err != nil || share <= 0 || share > 1 {
				t.Errorf("share %v in %v", r["share"], r)
			}
			shares[r.String(t, "time")] += share
		case "syn_interval":
			if r.Uint(t, "untracked_signatures") != 0 {
				t.Errorf("untracked signatures in %v", r)
			}
		}
	}
	if fmt.Sprint(perInterval) != fmt.Sprint(totals) {
		t.Errorf("syn_signature records sum to %v, the summary says %v", perInterval, totals)
	}
	for ts, s := range shares {
		if s < 0.999 || s > 1.001 {
			t.Errorf("interval %s: shares add up to %f", ts, s)
		}
	}
}

// TestSynBySignatureTableFull: one signature per interval, and one
// interval for the whole test. The first SYN B receives is one of A's IPv4
// connects (they come first), so its signature takes the one entry and
// every other SYN is counted as untracked, exactly: the capture says how
// many of each.
func TestSynBySignatureTableFull(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	run := runSynSignatures(t, "--interval", "1h", "--max-signatures", "1")
	totals := sigTotals(t, run.sum)
	if len(totals) != 1 {
		t.Fatalf("signatures %v, want one", totals)
	}
	var kept string
	for sig := range totals {
		kept = sig
	}
	if totals[kept] != run.captured4[kept] {
		t.Errorf("%s counted %d, tcpdump saw %d IPv4 SYNs with it", kept, totals[kept], run.captured4[kept])
	}
	all := run.realSYNs + uint64(run.sent)
	checkCounts(t, run.sum, map[string]uint64{"syn": all, "by_signature.untracked": all - totals[kept]})
	var untracked uint64
	for _, r := range run.res.Records(t) {
		if r.Type() == "syn_interval" {
			untracked += r.Uint(t, "untracked_signatures")
		}
	}
	if untracked != all-totals[kept] {
		t.Errorf("syn_interval records: %d untracked, want %d", untracked, all-totals[kept])
	}
}

// sigTotals reads the summary's by_signature list.
func sigTotals(t *testing.T, sum testnet.Record) map[string]uint64 {
	t.Helper()
	totals := map[string]uint64{}
	bs, _ := sum["by_signature"].(map[string]any)
	list, ok := bs["signatures"].([]any)
	if !ok {
		t.Fatalf("no by_signature.signatures in %v", sum)
	}
	for _, e := range list {
		m := testnet.Record(e.(map[string]any))
		totals[m.String(t, "signature")] += m.Uint(t, "syn")
	}
	return totals
}

type synSigRun struct {
	sum                 testnet.Record
	res                 testnet.Result
	captured, captured4 map[string]uint64 // SYNs to B per signature in tcpdump's capture; IPv4 only
	realSYNs            uint64            // SYNs A's stack sent (ActiveOpens + SYN retransmissions)
	sent                int               // bare SYNs
}

// runSynSignatures runs `tcplens syn --by signature` with args on B and
// tcpdump beside it, while A connects to B (IPv4 first, then IPv6) and then
// writes bare SYNs (IPv4 and IPv6), and checks the capture against the
// kernels' counters.
func runSynSignatures(t *testing.T, args ...string) synSigRun {
	t.Helper()
	const conns, bare = 6, 25
	p := testnet.NewPair(t)
	srv4 := p.B.Listen(t, testnet.IPv4, 0)
	srv6 := p.B.Listen(t, testnet.IPv6, 0)
	tl := p.B.StartTcplens(t, append([]string{"syn", "--by", "signature", "-i", p.B.Link, "-o", "json", "--hook", "tc", "--top", "0"}, args...)...)
	dump := startTcpdump(t, p.B)

	beforeA, beforeB := snmp(t, p.A), snmp(t, p.B)
	testnet.CloseConns(t, p.A.OpenConns(t, srv4.Addr, conns))
	testnet.CloseConns(t, p.A.OpenConns(t, srv6.Addr, conns))
	sent := 0
	for _, fam := range testnet.Families {
		n, err := sendBareSYNs(p.A, p.B, fam, bare)
		if err != nil {
			t.Fatalf("bare SYNs %v: %v", fam, err)
		}
		sent += n
	}
	if sent != 2*bare {
		t.Fatalf("the packet socket took %d bare SYNs, want %d", sent, 2*bare)
	}
	testnet.WaitFor(t, 5*time.Second, "B's connections closed", func() bool {
		return p.B.CountSockets(testnet.StateLastAck) == 0
	})
	afterA := waitSettled(t, p.A)
	afterB := waitSettled(t, p.B)
	realSYNs := synsSent(t, beforeA, afterA)
	if realSYNs < 2*conns {
		t.Fatalf("A sent %d SYNs for %d connections", realSYNs, 2*conns)
	}
	// Every TCP segment on the veth: what both stacks sent, and the bare SYNs.
	segs := snmpDelta(t, beforeA, afterA, "Tcp:OutSegs") + snmpDelta(t, beforeB, afterB, "Tcp:OutSegs") + uint64(sent)
	dump.stop(t, p.B, segs)

	res := tl.Stop()
	if res.ExitCode != 0 {
		t.Fatalf("tcplens syn exited with %d; stderr: %s", res.ExitCode, res.Stderr)
	}

	// The capture's SYNs to B, per signature.
	captured, captured4 := captureSignatures(t, dump.file, p.B)
	if captured["-:-:-"] != uint64(sent) {
		t.Errorf("tcpdump saw %d bare SYNs, the test sent %d", captured["-:-:-"], sent)
	}
	var capturedReal uint64
	for sig, n := range captured {
		if sig != "-:-:-" {
			capturedReal += n
		}
	}
	if capturedReal != realSYNs {
		t.Errorf("tcpdump saw %d SYNs with options, A's counters say it sent %d: %v", capturedReal, realSYNs, captured)
	}
	return synSigRun{sum: res.Summary(t, ""), res: res, captured: captured, captured4: captured4, realSYNs: realSYNs, sent: sent}
}

// sendBareSYNs writes n SYNs without options from ns's own address of fam
// (distinct source ports) to a closed port of to, through a packet socket
// on ns's veth, and returns how many the socket took. B answers each with
// a RST, which A's stack ignores.
func sendBareSYNs(from, to *testnet.NS, fam testnet.Family, n int) (int, error) {
	dstMAC, err := linkMAC(to)
	if err != nil {
		return 0, err
	}
	sent := 0
	err = from.Do(func() error {
		ifc, err := net.InterfaceByName(from.Link)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
			return err
		}
		src, dst := net.IP(from.Addr(fam).AsSlice()), net.IP(to.Addr(fam).AsSlice())
		for i := 0; i < n; i++ {
			eth := &layers.Ethernet{SrcMAC: ifc.HardwareAddr, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
			tcp := &layers.TCP{SrcPort: layers.TCPPort(20000 + i), DstPort: floodDport, Seq: uint32(i + 1), SYN: true, Window: 1024}
			var ip gopacket.NetworkLayer
			if fam == testnet.IPv4 {
				ip = &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
			} else {
				eth.EthernetType = layers.EthernetTypeIPv6
				ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
			}
			if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
				return err
			}
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
				eth, ip.(gopacket.SerializableLayer), tcp); err != nil {
				return err
			}
			if _, err := unix.Write(fd, buf.Bytes()); err != nil {
				return fmt.Errorf("write SYN %d: %w", i, err)
			}
			sent++
		}
		return nil
	})
	return sent, err
}

// captureSignatures decodes the pcap file and counts the SYNs without ACK
// sent to ns's addresses, per signature in the text form tcplens uses:
// all of them, and the IPv4 ones.
func captureSignatures(t *testing.T, file string, to *testnet.NS) (all, v4 map[string]uint64) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	mine := map[netip.Addr]bool{to.Addr(testnet.IPv4): true, to.Addr(testnet.IPv6): true}
	all, v4 = map[string]uint64{}, map[string]uint64{}
	src := gopacket.NewPacketSource(r, r.LinkType())
	for pkt := range src.Packets() {
		tl, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || !tl.SYN || tl.ACK || pkt.NetworkLayer() == nil {
			continue
		}
		dst, _ := netip.AddrFromSlice(pkt.NetworkLayer().NetworkFlow().Dst().Raw())
		if !mine[dst.Unmap()] {
			continue
		}
		all[testutil.TCPOptionsSignature(tl.Options)]++
		if dst.Unmap().Is4() {
			v4[testutil.TCPOptionsSignature(tl.Options)]++
		}
	}
	return all, v4
}
