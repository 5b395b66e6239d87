package testenv

import (
	"strings"
	"sync"
)

// LogBuffer is a log sink that daemons' goroutines may write to while a
// test reads it (an slog handler's writer in in-process tests).
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
