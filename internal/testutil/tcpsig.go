package testutil

import (
	"strconv"
	"strings"

	"github.com/google/gopacket/layers"
)

// TCPOptionsSignature formats TCP options as gopacket holds them, p0f-like,
// the way `syn --by signature` and `guard --drop-syn-signature` write
// signatures: LAYOUT:MSS:WSCALE (see the README). Tests use it as an oracle
// that shares no code with the BPF walk or its Go text form. Options after
// an end-of-list are not read (gopacket stops decoding there too); more
// than 10 options end the layout with '+'.
func TCPOptionsSignature(opts []layers.TCPOption) string {
	var layout strings.Builder
	mss, ws := "-", "-"
	for i, o := range opts {
		if i == 10 {
			layout.WriteByte('+')
			break
		}
		switch o.OptionType {
		case layers.TCPOptionKindEndList:
			layout.WriteByte('E')
		case layers.TCPOptionKindNop:
			layout.WriteByte('N')
		case layers.TCPOptionKindMSS:
			layout.WriteByte('M')
			if len(o.OptionData) == 2 {
				mss = strconv.Itoa(int(o.OptionData[0])<<8 | int(o.OptionData[1]))
			}
		case layers.TCPOptionKindWindowScale:
			layout.WriteByte('W')
			if len(o.OptionData) == 1 {
				ws = strconv.Itoa(int(o.OptionData[0]))
			}
		case layers.TCPOptionKindSACKPermitted:
			layout.WriteByte('S')
		case layers.TCPOptionKindTimestamps:
			layout.WriteByte('T')
		default:
			layout.WriteByte('?')
		}
		if o.OptionType == layers.TCPOptionKindEndList {
			break
		}
	}
	l := layout.String()
	if l == "" {
		l = "-"
	}
	return l + ":" + mss + ":" + ws
}
