package probe

// ResetReasonPrefix is stripped from enum sk_rst_reason's names: reasons
// read as the tracepoint prints them, "NO_SOCKET" for
// SK_RST_REASON_NO_SOCKET.
const ResetReasonPrefix = "SK_RST_REASON_"

// LoadResets loads bpf/resets.c and attaches it to tcp:tcp_send_reset and
// tcp:tcp_receive_reset.
func LoadResets(opts SockTracerOptions) (*SockTracer, error) {
	return ResetsObject.load(opts, nil)
}

// ResetReasons names the kernel's reset reasons (enum sk_rst_reason) from
// its BTF.
func ResetReasons() (*EnumNames, error) {
	return KernelEnumNames("sk_rst_reason", ResetReasonPrefix)
}
