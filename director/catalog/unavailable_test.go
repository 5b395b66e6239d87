package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestUnavailable: a broken or refused connection is "the catalog is
// unavailable"; a server's answer, our typed refusals and a cancelled
// request are not.
func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{dbErr("reading volume", io.ErrUnexpectedEOF), true},
		{dbErr("reading volume", fmt.Errorf("read: %w", syscall.ECONNRESET)), true},
		{dbErr("reading volume", fmt.Errorf("dial: %w", syscall.ECONNREFUSED)), true},
		{&UnreachableError{Err: errors.New("no route")}, true},
		{dbErr("inserting", &pgconn.PgError{Code: "23505", Message: "duplicate key"}), false},
		{notFound("volume", "TW0001L6"), false},
		{dbErr("reading volume", context.Canceled), false},
		{nil, false},
	} {
		if got := Unavailable(c.err); got != c.want {
			t.Errorf("Unavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
