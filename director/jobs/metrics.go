package jobs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapeward/tapeward/tools/lib/metrics"
)

// Metrics are the runner's Prometheus collectors. Labels carry job and
// status names only.
type Metrics struct {
	Ended      *prometheus.CounterVec   // jobs ended, by status letter
	Active     *prometheus.GaugeVec     // jobs running or waiting, by state
	Duration   *prometheus.HistogramVec // seconds from start to end, by status
	Bytes      prometheus.Counter       // file bytes committed to the catalog (on tape)
	Files      prometheus.Counter       // file rows committed
	RowsCopied prometheus.Counter       // catalog rows copied (files, with COPY)
	Errors     *prometheus.CounterVec   // job errors, by where they came from
}

// NewMetrics registers the runner's collectors on reg (nil: a private
// registry, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ns := metrics.Namespace
	m := &Metrics{
		Ended: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "director", Name: "jobs_ended_total",
			Help: "Jobs ended, by status (T, W, E, f, A)."}, []string{"status"}),
		Active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "director", Name: "jobs_active",
			Help: "Jobs now running or waiting."}, []string{"state"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "director", Name: "job_duration_seconds",
			Help: "Job duration from start to end.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}, []string{"status"}),
		Bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "director", Name: "job_bytes_written_total",
			Help: "File bytes of backups written to tape and committed to the catalog."}),
		Files: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "director", Name: "job_files_written_total",
			Help: "Files (members) of backups written to tape and committed to the catalog."}),
		RowsCopied: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "director", Name: "catalog_rows_copied_total",
			Help: "File rows copied into the catalog (COPY)."}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "director", Name: "job_errors_total",
			Help: "Job failures by origin (storage, client, catalog, volume, director)."}, []string{"origin"}),
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(m.Ended, m.Active, m.Duration, m.Bytes, m.Files, m.RowsCopied, m.Errors)
	// Every series exists from the start (at 0), so rates and alerts
	// need no "absent" special case.
	for _, st := range []string{"T", "W", "E", "f", "A"} {
		m.Ended.WithLabelValues(st)
		m.Duration.WithLabelValues(st)
	}
	for _, st := range []string{"running", "waiting"} {
		m.Active.WithLabelValues(st)
	}
	for _, o := range []string{"storage", "client", "catalog", "volume", "director"} {
		m.Errors.WithLabelValues(o)
	}
	return m
}
