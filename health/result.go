package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Reason says why a probe failed. The zero value, ReasonOK, means it did not.
type Reason uint8

const (
	// ReasonOK: the probe succeeded.
	ReasonOK Reason = iota
	// ReasonStatus: an HTTP response came back with a status outside the expected ranges.
	ReasonStatus
	// ReasonBody: the HTTP response body did not contain the expected substring.
	ReasonBody
	// ReasonTimeout: no answer within the probe's timeout.
	ReasonTimeout
	// ReasonRefused: the connection was refused (nothing listens on the port).
	ReasonRefused
	// ReasonReset: the peer reset or closed the connection before a full answer.
	ReasonReset
	// ReasonError: any other failure (bad address, DNS, TLS, ...).
	ReasonError
	// ReasonCanceled: the caller's context ended during the probe. This is a quiet
	// shutdown, not a failure: the Tracker and the Scheduler ignore such results.
	ReasonCanceled
)

var reasonNames = [...]string{
	ReasonOK:       "ok",
	ReasonStatus:   "status",
	ReasonBody:     "body",
	ReasonTimeout:  "timeout",
	ReasonRefused:  "refused",
	ReasonReset:    "reset",
	ReasonError:    "error",
	ReasonCanceled: "canceled",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Result is the outcome of one probe.
type Result struct {
	OK     bool
	Reason Reason
	// Status is the HTTP status code when a response arrived, else 0.
	Status int
	// Err describes the failure; nil when OK.
	Err error
	// Start is when the probe began; Duration how long it took.
	Start    time.Time
	Duration time.Duration
	// Due is when the Scheduler wanted the probe to start (Start-Due is the
	// scheduling lag). Zero for probes not run by a Scheduler.
	Due time.Time
}

// End is when the probe finished.
func (r Result) End() time.Time { return r.Start.Add(r.Duration) }

func (r Result) String() string {
	if r.OK {
		return fmt.Sprintf("ok in %s", r.Duration.Round(time.Microsecond))
	}
	if r.Err == nil {
		return r.Reason.String()
	}
	return fmt.Sprintf("%s: %v", r.Reason, r.Err)
}

// Checker probes one target once. Check must honour ctx, bound itself by its
// own timeout, and report a cancelled ctx as ReasonCanceled. It must be safe
// for concurrent use; the Scheduler never runs two checks of one target at once.
type Checker interface {
	Check(ctx context.Context) Result
}

// CheckFunc adapts a function to a Checker: nil is a success, an error a
// failure classified like the built-in probes (timeout, refused, reset, other).
// The function must honour ctx; CheckFunc adds no timeout of its own.
type CheckFunc func(ctx context.Context) error

// Check runs f.
func (f CheckFunc) Check(ctx context.Context) Result {
	start := time.Now()
	err := f(ctx)
	if err == nil {
		return Result{OK: true, Start: start, Duration: time.Since(start)}
	}
	return Result{Reason: classify(ctx, err), Err: err, Start: start, Duration: time.Since(start)}
}

// classify maps a probe error to a Reason. parent is the caller's context:
// when it is done, the probe was cancelled, whatever the error says.
func classify(parent context.Context, err error) Reason {
	var nerr net.Error
	switch {
	case parent.Err() != nil:
		return ReasonCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonTimeout
	case errors.As(err, &nerr) && nerr.Timeout():
		return ReasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonReset
	default:
		return ReasonError
	}
}
