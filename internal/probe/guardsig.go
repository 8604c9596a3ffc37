package probe

import (
	"fmt"
	"strconv"
	"strings"
)

// SYNSignature is the options signature of a SYN as the guard stage
// computes it (guard_opts_walk in bpf/guard.h): the option kinds in order,
// the MSS value and the window scale. Its text form, like p0f's:
//
//	LAYOUT:MSS:WSCALE     e.g. MSTNW:1460:7 (Linux), -:-:- (no options)
//
// LAYOUT is one letter per option in order, at most 10: M MSS, W window
// scale, S SACK permitted, T timestamps, N NOP, E end of list, ? any other
// kind; "-" for none. A "+" after it: more than 10 options; a "!": the
// options were truncated or malformed where the walk stopped. MSS is the
// value of an MSS option of length 4, WSCALE the shift of a window scale
// option of length 3; "-" for none.
type SYNSignature uint64

const (
	sigKindBits = 30
	sigBad      = 1 << 30
	sigMore     = 1 << 31
	sigHasMSS   = 1 << 56
	sigHasWS    = 1 << 57
	sigMaxOpts  = 10
)

// sigLetters maps the stage's 3-bit kind codes (GUARD_OPT_*) to letters; 0 ends the list.
const sigLetters = "\x00ENMWST?"

// String formats s as LAYOUT:MSS:WSCALE.
func (s SYNSignature) String() string {
	var b strings.Builder
	for i := 0; i < sigMaxOpts; i++ {
		k := (uint64(s) >> (3 * i)) & 7
		if k == 0 {
			break
		}
		b.WriteByte(sigLetters[k])
	}
	if b.Len() == 0 {
		b.WriteByte('-')
	}
	if s&sigMore != 0 {
		b.WriteByte('+')
	}
	if s&sigBad != 0 {
		b.WriteByte('!')
	}
	b.WriteByte(':')
	if s&sigHasMSS != 0 {
		b.WriteString(strconv.FormatUint(uint64(s>>32)&0xffff, 10))
	} else {
		b.WriteByte('-')
	}
	b.WriteByte(':')
	if s&sigHasWS != 0 {
		b.WriteString(strconv.FormatUint(uint64(s>>48)&0xff, 10))
	} else {
		b.WriteByte('-')
	}
	return b.String()
}

// ParseSYNSignature reads the text form (see SYNSignature).
func ParseSYNSignature(text string) (SYNSignature, error) {
	parts := strings.Split(text, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("SYN signature %q: want LAYOUT:MSS:WSCALE, e.g. MSTNW:1460:7", text)
	}
	layout := parts[0]
	var s SYNSignature
	if strings.HasSuffix(layout, "!") {
		s |= sigBad
		layout = layout[:len(layout)-1]
	}
	if strings.HasSuffix(layout, "+") {
		s |= sigMore
		layout = layout[:len(layout)-1]
	}
	if layout == "-" {
		layout = ""
	}
	if len(layout) > sigMaxOpts {
		return 0, fmt.Errorf("SYN signature %q: at most %d options in the layout", text, sigMaxOpts)
	}
	if s&sigMore != 0 && len(layout) != sigMaxOpts {
		return 0, fmt.Errorf("SYN signature %q: \"+\" (more options) follows a full layout of %d", text, sigMaxOpts)
	}
	for i, c := range layout {
		k := strings.IndexRune(sigLetters[1:], c)
		if k < 0 {
			return 0, fmt.Errorf("SYN signature %q: option letter %q: one of M W S T N E ?", text, c)
		}
		s |= SYNSignature(k+1) << (3 * i)
	}
	if parts[1] != "-" {
		v, err := strconv.ParseUint(parts[1], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("SYN signature %q: MSS %q: 0 to 65535 or -", text, parts[1])
		}
		s |= sigHasMSS | SYNSignature(v)<<32
	}
	if parts[2] != "-" {
		v, err := strconv.ParseUint(parts[2], 10, 8)
		if err != nil {
			return 0, fmt.Errorf("SYN signature %q: window scale %q: 0 to 255 or -", text, parts[2])
		}
		s |= sigHasWS | SYNSignature(v)<<48
	}
	return s, nil
}
