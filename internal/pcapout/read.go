package pcapout

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gopacket/gopacket/pcapgo"
)

// ErrNotCapture: the file is missing, or neither pcapng nor pcap (bad
// input, where an error inside a good file is a failure).
var ErrNotCapture = errors.New("not a readable pcapng or pcap file")

// pcapng's section header block type, the first 4 bytes of such a file.
var ngMagic = []byte{0x0a, 0x0d, 0x0d, 0x0a}

// ReadFile calls fn for each packet of a pcapng file (tcplens's own, or
// tcpdump's) or a classic pcap file; name is the packet's interface name
// where the file has one.
func ReadFile(path string, fn func(p Packet, name string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read capture file: %w (%w)", err, ErrNotCapture)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	head, err := br.Peek(4)
	if err != nil {
		return fmt.Errorf("read capture file %s: too short to be pcap or pcapng (%w)", path, ErrNotCapture)
	}
	if !bytes.Equal(head, ngMagic) {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			return fmt.Errorf("read capture file %s: %w: %v", path, ErrNotCapture, err)
		}
		for {
			data, ci, err := r.ReadPacketData()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read capture file %s: %w", path, err)
			}
			if err := fn(Packet{Time: ci.Timestamp, OrigLen: ci.Length, Data: data}, ""); err != nil {
				return err
			}
		}
	}
	r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		return fmt.Errorf("read capture file %s: %w: %v", path, ErrNotCapture, err)
	}
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read capture file %s: %w", path, err)
		}
		p := Packet{Time: ci.Timestamp, Interface: ci.InterfaceIndex, OrigLen: ci.Length, Data: data}
		if opts.Flags != nil {
			switch opts.Flags.Direction {
			case pcapgo.NgEpbFlagDirectionInbound:
				p.Dir = DirIn
			case pcapgo.NgEpbFlagDirectionOutbound:
				p.Dir = DirOut
			}
		}
		if len(opts.Comments) > 0 {
			p.Comment = opts.Comments[0]
		}
		name := ""
		if ifc, err := r.Interface(ci.InterfaceIndex); err == nil {
			name = ifc.Name
		}
		if err := fn(p, name); err != nil {
			return err
		}
	}
}
