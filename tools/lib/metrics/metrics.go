// Package metrics serves a daemon's Prometheus metrics (metrics_listen in
// director.toml, storaged.toml and filed.toml) over plain HTTP, text
// exposition format, at /metrics.
//
// Each daemon builds its own collectors on the Registry it gets from
// NewRegistry (Go runtime and process collectors included). Labels carry
// names (job, client, pool, volume, drive) and, where a key must be
// named, its fingerprint — never key material.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every Tapeward metric.
const Namespace = "tapeward"

// NewRegistry returns a registry with the Go runtime and process
// collectors registered.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Serve listens on addr and serves reg at /metrics until ctx ends. It
// returns the address it listens on (addr may have port 0) once the
// listener is open; serving goes on in the background.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "listen", ln.Addr().String(), "error", err)
		}
	}()
	log.Info("serving metrics", "listen", ln.Addr().String(), "path", "/metrics")
	return ln.Addr().String(), nil
}
