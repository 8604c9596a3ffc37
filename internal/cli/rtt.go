package cli

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() { registerSock(&rttCommand) }

var rttCommand = sockCommand{
	object:  &probe.RTTObject,
	summary: "congestion window, RTT and socket buffers per connection over time (sampled), or RTT histograms",
	flags: func(fs *pflag.FlagSet, _ *common) func(Env, *sockOut) (*sockRun, error) {
		fs.Lookup("count").Usage = "exit after `N` samples (with --histogram and --interval: N reports)"
		sample := fs.Duration("sample", probe.DefaultRTTSample, "at most one periodic sample per connection every `DURATION`, plus one per loss event, ssthresh change or --cwnd-change move")
		cwndChange := fs.Uint32("cwnd-change", probe.DefaultRTTCwndChangePct, "record a cwnd change once cwnd moved by `PCT` percent since the connection's last record (0: every change, which bulk transfers make on nearly every ACK)")
		histogram := fs.Bool("histogram", false, "print log2 histograms of srtt instead of samples (on exit, and every --interval if given)")
		fs.Lookup("interval").Usage = "with --histogram: also print the histograms every `DURATION` (else only on exit)"
		histBy := fs.String("histogram-by", "rport", "histogram per `KEY`: rport, lport, raddr, laddr (remote/local port or address) or conn (connection)")
		return func(_ Env, o *sockOut) (*sockRun, error) {
			if *sample <= 0 {
				return nil, usagef("--sample must be positive, not %s", *sample)
			}
			if *cwndChange > 100 {
				return nil, usagef("--cwnd-change %d: a percentage is 0 to 100", *cwndChange)
			}
			by, ok := conn.ParseHistBy(*histBy)
			if !ok {
				return nil, usagef("--histogram-by %q: want rport, lport, raddr, laddr or conn", *histBy)
			}
			if fs.Changed("histogram-by") && !*histogram {
				return nil, usagef("--histogram-by needs --histogram")
			}
			if fs.Changed("interval") && !*histogram {
				return nil, usagef("--interval needs --histogram: without it rtt prints samples as they come (see --sample)")
			}
			r := newRTTReport(o)
			run := &sockRun{report: r,
				load: func(opts probe.SockTracerOptions) (*probe.SockTracer, error) {
					return probe.LoadRTT(opts, probe.RTTConfig{Sample: *sample, CwndChangePct: *cwndChange})
				},
				banner: fmt.Sprintf("sampling connections every %s and on loss events, ssthresh changes and cwnd moves of %d%%", *sample, *cwndChange)}
			if *histogram {
				r.hists = conn.NewRTTHistograms(by)
				run.banner = "collecting srtt histograms per " + by.String() + " from periodic samples"
				if fs.Changed("interval") {
					run.tick = r.printHistograms
				}
				run.final = func(now time.Time) error {
					if run.tick != nil && r.hists.Len() == 0 {
						return nil
					}
					return r.printHistograms(now)
				}
			}
			return run, nil
		}
	},
}

// connKey names a connection by its ends.
type connKey struct{ local, remote netip.AddrPort }

// rttReport prints samples as they come, or collects histograms.
type rttReport struct {
	*sockOut
	hists *conn.RTTHistograms // nil: stream samples

	ev      events.RTTSample
	rec     output.RTTRecord
	samples uint64
	conns   map[connKey]struct{}
}

func newRTTReport(o *sockOut) *rttReport {
	return &rttReport{sockOut: o, conns: map[connKey]struct{}{}}
}

func (r *rttReport) record(raw []byte) error {
	if err := events.DecodeRTTSample(raw, r.clock, &r.ev); err != nil {
		return err
	}
	ev := &r.ev
	r.samples++
	if k := (connKey{ev.Local, ev.Remote}); len(r.conns) < 1<<20 {
		if _, ok := r.conns[k]; !ok {
			r.conns[k] = struct{}{}
		}
	}
	if r.hists != nil {
		// Periodic samples only: each connection then weighs by how long
		// it was watched, not by how often its cwnd moved.
		if ev.Reason&events.RTTPeriodic != 0 {
			r.hists.Add(ev.Local, ev.Remote, ev.SrttUS)
		}
		return nil
	}
	if r.json() {
		r.rec = r.rttRecord(ev)
		return r.out.Emit(&r.rec) // a field, so that the interface does not allocate
	}
	if r.table == nil {
		num := func(name string, width int, wide bool) output.Column {
			return output.Column{Name: name, Width: width, Right: true, Wide: wide}
		}
		r.table = r.style.table(r.w,
			r.style.addrCol("LADDR:LPORT"),
			r.style.addrCol("RADDR:RPORT"),
			output.Column{Name: "STATE", Width: 11, Wide: true},
			num("CWND", 6, false), num("SSTHRESH", 8, false),
			num("SRTT(ms)", 8, false), num("RTTVAR", 7, false),
			num("SND_WND", 9, true), num("RCV_WND", 9, true),
			num("UNACKED", 7, false), num("RETRANS_OUT", 0, true), num("RETRANS", 7, false),
			num("ACKED", 10, false), num("BYTES_ACKED", 12, true), num("BYTES_RECV", 12, true),
			num("WMEM", 8, true), num("RMEM", 8, true), num("SNDBUF", 8, true), num("RCVBUF", 8, true),
			output.Column{Name: "REASON", Wide: true})
	}
	u := func(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
	i := func(v int32) string { return strconv.FormatInt(int64(v), 10) }
	return r.table.Row(ev.Time, ev.Local.String(), ev.Remote.String(), events.TCPStateName(ev.State),
		u(ev.Cwnd), ssthreshText(ev.Ssthresh),
		strconv.FormatFloat(float64(ev.SrttUS)/1e3, 'f', 3, 64), strconv.FormatFloat(float64(ev.RttvarUS)/1e3, 'f', 3, 64),
		u(ev.SndWnd), u(ev.RcvWnd), u(ev.PacketsOut), u(ev.RetransOut), u(ev.TotalRetrans),
		output.Bytes(ev.BytesAcked), strconv.FormatUint(ev.BytesAcked, 10), strconv.FormatUint(ev.BytesReceived, 10),
		i(ev.WmemQueued), i(ev.RmemAlloc), i(ev.SndBuf), i(ev.RcvBuf), rttReasons[ev.Reason&rttReasonMask])
}

// infiniteSsthresh is TCP_INFINITE_SSTHRESH: no loss seen yet.
const infiniteSsthresh = 0x7fffffff

func ssthreshText(v uint32) string {
	if v >= infiniteSsthresh {
		return "-"
	}
	return fmt.Sprint(v)
}

func rttReason(r uint8) string {
	var parts []string
	if r&events.RTTPeriodic != 0 {
		parts = append(parts, "periodic")
	}
	if r&events.RTTCwnd != 0 {
		parts = append(parts, "cwnd")
	}
	if r&events.RTTSsthresh != 0 {
		parts = append(parts, "ssthresh")
	}
	if r&events.RTTLoss != 0 {
		parts = append(parts, "loss")
	}
	return strings.Join(parts, "+")
}

// rttReasonMask covers every reason bit bpf/rtt.c sets.
const rttReasonMask = 15

// rttReasons are rttReason's results, made once so records do not allocate.
var rttReasons = func() (names [rttReasonMask + 1]string) {
	for i := range names {
		names[i] = rttReason(uint8(i))
	}
	return
}()

func (r *rttReport) rttRecord(ev *events.RTTSample) output.RTTRecord {
	return output.RTTRecord{Type: "rtt", Time: timestamp(ev.Time), Conn: r.conn(ev.Local, ev.Remote),
		State: events.TCPStateName(ev.State), Reason: rttReasons[ev.Reason&rttReasonMask],
		Cwnd: ev.Cwnd, Ssthresh: ev.Ssthresh, SrttUS: ev.SrttUS, RttvarUS: ev.RttvarUS, SndWnd: ev.SndWnd, RcvWnd: ev.RcvWnd,
		PacketsOut: ev.PacketsOut, RetransOut: ev.RetransOut, TotalRetrans: ev.TotalRetrans,
		BytesAcked: ev.BytesAcked, BytesReceived: ev.BytesReceived,
		WmemQueued: ev.WmemQueued, RmemAlloc: ev.RmemAlloc, SndBuf: ev.SndBuf, RcvBuf: ev.RcvBuf}
}

// printHistograms prints every histogram collected since the start.
func (r *rttReport) printHistograms(now time.Time) error {
	for _, k := range r.hists.Keys() {
		h := r.hists.Get(k)
		first, last, ok := h.Span()
		if !ok {
			continue
		}
		if r.json() {
			rec := output.RTTHistogramRecord{Type: "rtt_histogram", Time: timestamp(now), By: r.hists.By.String(), Samples: h.Total,
				Conn: histConn(k)}
			for i := first; i <= last; i++ {
				lo, hi := conn.BucketRange(i)
				rec.Buckets = append(rec.Buckets, output.RTTBucket{LoUS: lo, HiUS: hi, Count: h.Counts[i]})
			}
			if err := r.out.Emit(&rec); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(r.w, "\n%s = %s (%s, srtt)\n", r.hists.By, histTitle(r.hists.By, k), output.Plural(h.Total, "sample"))
		writeLog2Hist(r.w, h, first, last)
	}
	if r.json() {
		return r.out.Flush()
	}
	return nil
}

// histConn is the JSON 4-tuple of a histogram key: what the key does not
// keep is empty ("") or 0.
func histConn(k conn.HistKey) output.Conn {
	var c output.Conn
	if k.Local.Addr().IsValid() {
		c.LAddr = k.Local.Addr().String()
	}
	if k.Remote.Addr().IsValid() {
		c.RAddr = k.Remote.Addr().String()
	}
	c.LPort, c.RPort = k.Local.Port(), k.Remote.Port()
	return c
}

// histTitle names a histogram's key for people.
func histTitle(by conn.HistBy, k conn.HistKey) string {
	switch by {
	case conn.ByLocalPort:
		return strconv.Itoa(int(k.Local.Port()))
	case conn.ByRemoteAddr:
		return k.Remote.Addr().String()
	case conn.ByLocalAddr:
		return k.Local.Addr().String()
	case conn.ByConnection:
		return k.Local.String() + " -> " + k.Remote.String()
	}
	return strconv.Itoa(int(k.Remote.Port()))
}

// writeLog2Hist draws a histogram as BCC's print_log2_hist does.
func writeLog2Hist(w io.Writer, h *conn.Log2Hist, first, last int) {
	const width = 40
	var max uint64
	for i := first; i <= last; i++ {
		if h.Counts[i] > max {
			max = h.Counts[i]
		}
	}
	fmt.Fprintf(w, "%21s : %-8s %s\n", "usecs", "count", "distribution")
	for i := first; i <= last; i++ {
		lo, hi := conn.BucketRange(i)
		n := h.Counts[i]
		stars := 0
		if max > 0 {
			stars = int(n * width / max)
		}
		fmt.Fprintf(w, "%10d -> %-7d : %-8d |%-40s|\n", lo, hi, n, strings.Repeat("*", stars))
	}
}

func (r *rttReport) summary(elapsed time.Duration, loss output.Loss) error {
	s := output.RTTSummary{Type: "summary", DurationSeconds: elapsed.Seconds(), Samples: r.samples,
		Connections: uint64(len(r.conns)), Loss: loss}
	if r.hists != nil {
		n := r.hists.Samples()
		s.HistogramSamples = &n
	}
	if r.json() {
		return r.emitSummary(&s)
	}
	inHists := ""
	if s.HistogramSamples != nil {
		// The histograms take periodic samples only (record); say so, or
		// the totals look as if samples went missing.
		inHists = fmt.Sprintf(", %d of them periodic and in the histograms (records made for a cwnd or ssthresh change are not)", *s.HistogramSamples)
	}
	_, err := fmt.Fprintf(r.w, "\nSummary: %.1fs: %s of %s%s; %s\n",
		s.DurationSeconds, output.Plural(s.Samples, "sample"), output.Plural(s.Connections, "connection"), inHists,
		s.Loss.Text())
	return err
}
