package output

import (
	"io"
	"sync"
)

// CheckedWriter passes writes through to w and remembers the first error,
// so that output lost to a full disk or a closed pipe ends the run with an
// error even where a caller (fmt.Fprintf to a table, say) ignores it. After
// the first error every write fails with it, and nothing more is written.
type CheckedWriter struct {
	w       io.Writer
	onError func(error)

	mu  sync.Mutex
	err error
}

// NewCheckedWriter wraps w; onError, when set, is called once, with the
// first error (to stop the run).
func NewCheckedWriter(w io.Writer, onError func(error)) *CheckedWriter {
	return &CheckedWriter{w: w, onError: onError}
}

// Underlying is the writer c passes writes to (top asks whether it is a
// terminal).
func (c *CheckedWriter) Underlying() io.Writer { return c.w }

func (c *CheckedWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		c.err = err
		if c.onError != nil {
			c.onError(err)
		}
	}
	return n, err
}

// Err is the first write error, or nil.
func (c *CheckedWriter) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
