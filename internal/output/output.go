// Package output renders what tcplens sees: aligned text tables for people
// and JSON lines (one object per line, snake_case fields) for scripts.
package output

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Format is the -o value.
type Format string

const (
	Text Format = "text"
	JSON Format = "json"
)

// ParseFormat checks an -o value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Text, JSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown output format %q: want text or json", s)
}

// JSONLines writes one JSON object per line.
type JSONLines struct {
	w   *bufio.Writer
	enc *json.Encoder
	buf []byte // one line, reused
}

// NewJSONLines writes to w; call Flush after each batch.
func NewJSONLines(w io.Writer) *JSONLines {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &JSONLines{w: bw, enc: enc}
}

// Emit writes v as one line: through its own AppendJSON when it has one
// (pass a pointer: the socket-path records have pointer receivers, and a
// pointer to a long-lived record does not allocate), else encoding/json.
func (j *JSONLines) Emit(v any) error {
	if a, ok := v.(JSONAppender); ok && !ReflectJSON {
		// Into a scratch buffer kept across records: bufio's own free
		// space would make append allocate whenever a line straddles its
		// end.
		j.buf = append(a.AppendJSON(j.buf[:0]), '\n')
		_, err := j.w.Write(j.buf)
		return err
	}
	return j.enc.Encode(v)
}

// ReflectJSON makes Emit use encoding/json for every record: the baseline
// that the appenders' benchmark compares with. Tests only.
var ReflectJSON = false

// Flush pushes buffered lines out.
func (j *JSONLines) Flush() error { return j.w.Flush() }

// Table lays out rows in aligned columns.
type Table struct {
	tw    *tabwriter.Writer
	right bool
}

// NewTable starts a table of numbers, right-aligned, on w with the given header.
func NewTable(w io.Writer, header ...string) *Table {
	return newTable(w, tabwriter.AlignRight, header)
}

// NewTextTable starts a left-aligned table, for words rather than numbers.
func NewTextTable(w io.Writer, header ...string) *Table {
	return newTable(w, 0, header)
}

func newTable(w io.Writer, flags uint, header []string) *Table {
	t := &Table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', flags), right: flags&tabwriter.AlignRight != 0}
	if len(header) > 0 {
		t.Row(anySlice(header)...)
	}
	return t
}

// Row adds one row; values are printed with %v.
func (t *Table) Row(cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = fmt.Sprint(c)
	}
	line := strings.Join(parts, "\t")
	if t.right {
		// Right alignment needs the last cell terminated too.
		line += "\t"
	}
	fmt.Fprint(t.tw, line+"\n")
}

// Flush writes the table out.
func (t *Table) Flush() error { return t.tw.Flush() }

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
