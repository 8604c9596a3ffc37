package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// LinkEvent is a network device that appeared or went away.
type LinkEvent struct {
	Name  string
	Index int
	Gone  bool // RTM_DELLINK: deleted, or moved to another network namespace
}

// LinkWatcher follows the network devices of one network namespace through
// rtnetlink link notifications (RTNLGRP_LINK).
type LinkWatcher struct {
	events chan LinkEvent
	done   chan struct{}
	errMu  sync.Mutex
	err    error
}

// WatchLinks subscribes to link notifications in the network namespace of
// the calling thread: tcplens never moves a thread to another namespace,
// so that is the namespace of the whole process, the one whose interfaces
// it attached to. Entering a namespace (WatchLinksIn) would need
// CAP_SYS_ADMIN, which the packet path does not need otherwise.
func WatchLinks() (*LinkWatcher, error) { return WatchLinksIn(nil) }

// WatchLinksIn subscribes to link notifications in network namespace ns
// (nil: the calling thread's). The socket is bound to its namespace when
// it is made, so the goroutine that reads it may run on any thread.
func WatchLinksIn(ns *netns.NsHandle) (*LinkWatcher, error) {
	updates := make(chan netlink.LinkUpdate, 64)
	w := &LinkWatcher{events: make(chan LinkEvent, 64), done: make(chan struct{})}
	err := netlink.LinkSubscribeWithOptions(updates, w.done, netlink.LinkSubscribeOptions{
		Namespace: ns,
		ErrorCallback: func(err error) {
			w.errMu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.errMu.Unlock()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watch interfaces: subscribe to rtnetlink link notifications: %w", explainNetlink(err))
	}
	go func() {
		defer close(w.events)
		for u := range updates {
			ev := LinkEvent{Name: u.Attrs().Name, Index: int(u.Index), Gone: u.Header.Type == unix.RTM_DELLINK}
			select {
			case w.events <- ev:
			case <-w.done:
				return
			}
		}
	}()
	return w, nil
}

// Events delivers link changes in the order the kernel sent them. It is
// closed when the watcher is closed or its socket fails (see Err).
func (w *LinkWatcher) Events() <-chan LinkEvent { return w.events }

// Err says why Events was closed, if not by Close.
func (w *LinkWatcher) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		return errors.New("rtnetlink link notifications ended")
	}
	return w.err
}

// Close ends the subscription.
func (w *LinkWatcher) Close() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}

// ErrLinkWatch marks the end of link notifications while following
// interfaces: a removal could then go unseen, so the run ends.
var ErrLinkWatch = errors.New("watching interfaces failed")

// InterfaceGoneError says an attached interface went away.
type InterfaceGoneError struct {
	Name  string
	Index int
}

func (e *InterfaceGoneError) Error() string {
	return fmt.Sprintf("interface %s (index %d) was removed or left this network namespace", e.Name, e.Index)
}

// FollowOptions says what Follow does when an interface goes away.
type FollowOptions struct {
	// Hook is what was asked for at start; a returning interface is
	// attached with it again (so auto may choose anew).
	Hook Hook
	// Wait for an interface of the same name to come back and attach to
	// it, instead of ending the run.
	Wait bool
	// Notify is told, for people, what happened (may be nil).
	Notify func(msg string)
}

type follower struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Follow watches the attached interfaces until ctx ends or Close is called.
// It returns a context that ends with ctx, or, when an interface goes away
// and opts.Wait is false, with an *InterfaceGoneError as its cause (see
// context.Cause). With opts.Wait, the slot's counters stay and the program
// is attached again to the next interface of that name.
//
// The watcher is subscribed before Follow checks that every attached
// interface still exists, so no removal can fall between the two.
func (p *PacketPath) Follow(ctx context.Context, opts FollowOptions) (context.Context, error) {
	w, err := WatchLinks()
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancelCause(ctx)
	fctx, cancel := context.WithCancel(runCtx)
	f := &follower{cancel: cancel, done: make(chan struct{})}
	p.mu.Lock()
	p.follow = f
	p.mu.Unlock()

	gone := map[int]bool{} // slots whose interface went away
	handle := func(ev LinkEvent) error {
		for _, a := range p.Attachments() {
			slot := int(a.Slot)
			switch {
			case ev.Gone && !gone[slot] && ev.Index == a.Interface.Index:
				gone[slot] = true
				p.markGone(slot)
				gerr := &InterfaceGoneError{Name: a.Interface.Name, Index: a.Interface.Index}
				if !opts.Wait {
					return gerr
				}
				notify(opts, gerr.Error()+"; waiting for it to come back (--wait-interface)")
			case !ev.Gone && gone[slot] && ev.Name == a.Interface.Name:
				if err := p.reattach(slot, ev.Index, opts.Hook); err != nil {
					notify(opts, fmt.Sprintf("interface %s is back (index %d) but attaching failed, still waiting: %v", ev.Name, ev.Index, err))
					continue
				}
				gone[slot] = false
				na := p.Attachments()[slot]
				notify(opts, fmt.Sprintf("interface %s is back (index %d): attached with %s", ev.Name, ev.Index, na.HookText()))
			}
		}
		return nil
	}
	go func() {
		defer close(f.done)
		defer w.Close()
		// An interface removed before the subscription was made sends no
		// notification later: look for each once now.
		for _, a := range p.Attachments() {
			if _, err := netlink.LinkByIndex(a.Interface.Index); err != nil {
				var nf netlink.LinkNotFoundError
				if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
					if herr := handle(LinkEvent{Name: a.Interface.Name, Index: a.Interface.Index, Gone: true}); herr != nil {
						stop(herr)
						return
					}
					if l, err := netlink.LinkByName(a.Interface.Name); err == nil {
						handle(LinkEvent{Name: l.Attrs().Name, Index: l.Attrs().Index})
					}
				}
			}
		}
		for {
			select {
			case <-fctx.Done():
				return
			case ev, ok := <-w.Events():
				if !ok {
					stop(fmt.Errorf("%w: %v", ErrLinkWatch, w.Err()))
					return
				}
				if err := handle(ev); err != nil {
					stop(err)
					return
				}
			}
		}
	}()
	return runCtx, nil
}

func notify(opts FollowOptions, msg string) {
	if opts.Notify != nil {
		opts.Notify(msg)
	}
}

func (p *PacketPath) stopFollowing() {
	p.mu.Lock()
	f := p.follow
	p.follow = nil
	p.mu.Unlock()
	if f != nil {
		f.cancel()
		<-f.done
	}
}

// markGone releases what was attached to slot's deleted interface. The
// kernel detached it with the device: a bpf_link is left defunct and a
// netlink TC filter went with the device's qdisc.
func (p *PacketPath) markGone(slot int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := &p.Attached[slot]
	for _, c := range []io.Closer{a.closer, a.egressCloser} {
		if t, ok := c.(*tcAttachment); ok {
			t.deviceGone = true
		}
	}
	a.close()
}

// reattach attaches slot's program to the interface now at index.
func (p *PacketPath) reattach(slot, index int, hook Hook) error {
	p.mu.Lock()
	old := p.Attached[slot].Interface
	p.mu.Unlock()
	iface := Interface{Name: old.Name, Index: index, Driver: interfaceDriver(old.Name)}
	a, err := p.attach(slot, iface, hook)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.Attached[slot] = a
	p.mu.Unlock()
	return nil
}
