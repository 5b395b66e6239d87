package fd

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapeward/tapeward/tools/lib/metrics"
)

// Job results, the values of the "result" label of jobs_total.
const (
	ResultOK       = "ok"       // every entry stored, no warning
	ResultWarnings = "warnings" // done, with warnings (the job ends W)
	ResultError    = "error"    // failed (storage, stream, bad request)
	ResultCanceled = "canceled" // the director cancelled the call
)

// Metrics are filed's Prometheus collectors. A nil *Metrics records
// nothing (tests, benchmarks).
type Metrics struct {
	jobs        *prometheus.CounterVec
	running     prometheus.Gauge
	streamBytes prometheus.Counter
	fileBytes   prometheus.Counter
	files       prometheus.Counter
	warnings    *prometheus.CounterVec
	errors      *prometheus.CounterVec
}

// NewMetrics registers filed's collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ns, sub := metrics.Namespace, "filed"
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "jobs_total",
			Help: "Backup and restore jobs run, by result (ok, warnings (a restore: file errors), error, canceled)."}, []string{"result"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "jobs_running",
			Help: "Backup and restore jobs running now."}),
		streamBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "stream_bytes_sent_total",
			Help: "Bytes of pax stream sent to storage daemons (headers, data, padding)."}),
		fileBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "file_bytes_sent_total",
			Help: "Bytes of regular files' content sent (apparent size)."}),
		files: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "files_sent_total",
			Help: "Members (files, directories, links, specials) sent."}),
		warnings: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "warnings_total",
			Help: "Per-file warnings, by operation (open, read, changed, lstat, readdir, …; a restore's file errors as restore-digest, restore-refused, …)."}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Errors that failed a call, by stage (request, storage, walk, target (a restore's target directory), director)."}, []string{"stage"}),
	}
	reg.MustRegister(m.jobs, m.running, m.streamBytes, m.fileBytes, m.files, m.warnings, m.errors)
	return m
}

func (m *Metrics) jobDone(result string) {
	if m != nil {
		m.jobs.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) addRunning(d float64) {
	if m != nil {
		m.running.Add(d)
	}
}

func (m *Metrics) sent(streamBytes, fileBytes, files int64) {
	if m != nil {
		m.streamBytes.Add(float64(streamBytes))
		m.fileBytes.Add(float64(fileBytes))
		m.files.Add(float64(files))
	}
}

func (m *Metrics) warning(op string) {
	if m != nil {
		m.warnings.WithLabelValues(op).Inc()
	}
}

func (m *Metrics) failed(stage string) {
	if m != nil {
		m.errors.WithLabelValues(stage).Inc()
	}
}
