package events

// tcpStateNames are the kernel's TCP states, named as in
// include/net/tcp_states.h without the TCP_ prefix.
var tcpStateNames = [...]string{
	1:  "ESTABLISHED",
	2:  "SYN_SENT",
	3:  "SYN_RECV",
	4:  "FIN_WAIT1",
	5:  "FIN_WAIT2",
	6:  "TIME_WAIT",
	7:  "CLOSE",
	8:  "CLOSE_WAIT",
	9:  "LAST_ACK",
	10: "LISTEN",
	11: "CLOSING",
	12: "NEW_SYN_RECV",
	13: "BOUND_INACTIVE",
}

// TCPStateName names a kernel TCP state. 0, which the kernel's tracepoints
// print as UNKNOWN (a reset sent without a socket), and values this table
// does not know are "UNKNOWN".
func TCPStateName(s uint8) string {
	if int(s) < len(tcpStateNames) && tcpStateNames[s] != "" {
		return tcpStateNames[s]
	}
	return "UNKNOWN"
}
