package sd

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapeward/tapeward/tools/lib/metrics"
)

// sdMetrics are the daemon's Prometheus collectors. Labels name drives
// and kinds of error, never keys (not even fingerprints).
type sdMetrics struct {
	keyLoads    prometheus.Counter
	keyClears   prometheus.Counter
	keyFailures *prometheus.CounterVec // op: load, clear
	jobsActive  prometheus.Gauge
	jobs        *prometheus.CounterVec // result: done, failed
	bytes       prometheus.Counter
	errors      *prometheus.CounterVec // kind
}

func newMetrics() *sdMetrics {
	ns, sub := metrics.Namespace, "storaged"
	return &sdMetrics{
		keyLoads:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "key_loads_total", Help: "Volume keys loaded into a drive and verified by read-back."}),
		keyClears:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "key_clears_total", Help: "Drive key clears (checked on the status page)."}),
		keyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "key_failures_total", Help: "Key loads or clears that failed."}, []string{"op"}),
		jobsActive:  prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "job_sessions_active", Help: "Job sessions holding a drive."}),
		jobs:        prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "job_sessions_total", Help: "Job sessions ended, by result."}, []string{"result"}),
		bytes:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "job_bytes_written_total", Help: "Job stream bytes written to tape."}),
		errors:      prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total", Help: "Errors, by kind (job, token, key)."}, []string{"kind"}),
	}
}

func (m *sdMetrics) jobStarted() { m.jobsActive.Inc() }

func (m *sdMetrics) jobEnded(err error) {
	m.jobsActive.Dec()
	if err != nil {
		m.jobs.WithLabelValues("failed").Inc()
		m.errors.WithLabelValues("job").Inc()
		return
	}
	m.jobs.WithLabelValues("done").Inc()
}

// driveStates exports each drive's state (from its published snapshot:
// never waits for a drive) as tapeward_storaged_drive_state{drive,state} 1.
type driveStates struct {
	d    *Daemon
	desc *prometheus.Desc
}

func (c driveStates) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c driveStates) Collect(ch chan<- prometheus.Metric) {
	for _, dr := range c.d.drives {
		state := StateIdle
		if s := dr.snap.Load(); s != nil && s.State != "" {
			state = s.State
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, dr.name, state)
	}
}

// Register puts the daemon's collectors on reg (storaged's metrics
// endpoint).
func (d *Daemon) Register(reg prometheus.Registerer) error {
	m := d.metrics
	for _, c := range []prometheus.Collector{m.keyLoads, m.keyClears, m.keyFailures, m.jobsActive, m.jobs, m.bytes, m.errors,
		driveStates{d: d, desc: prometheus.NewDesc(metrics.Namespace+"_storaged_drive_state", "A drive's state (the series with value 1).", []string{"drive", "state"}, nil)}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
