package probe

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
)

// ErrPrivileges marks failures that mean the process lacks the privileges
// to load or attach BPF programs; the CLI turns it into exit code 2.
// CheckPrivileges names the missing capabilities up front; this text is for
// the kernel's refusals that remain (a user namespace, an LSM).
var ErrPrivileges = errors.New("not permitted: needs root or the capabilities 'tcplens doctor' lists")

// ErrUnsupported marks a kernel feature that this kernel does not offer.
var ErrUnsupported = errors.New("not supported by this kernel")

func explainLoadError(what string, err error) error {
	// The verifier's refusals come as EACCES too: look for its log first,
	// or a program the verifier rejects reads as missing privileges.
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		if strings.Contains(verr.Error(), "!root") {
			// "pointer arithmetic ... prohibited for !root": the verifier
			// wants CAP_PERFMON, which the kernel did not grant here.
			return fmt.Errorf("%s: rejected by the kernel verifier for want of CAP_PERFMON: %w", what, ErrPrivileges)
		}
		// The full log is long; its last lines say why.
		return fmt.Errorf("%s: rejected by the kernel verifier: %v", what, verr)
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%s: %w", what, ErrPrivileges)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func explainAttach(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return ErrPrivileges
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("%w (%v)", ErrUnsupported, err)
	}
	return err
}
