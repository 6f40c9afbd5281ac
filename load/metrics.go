package load

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	batches  *prometheus.CounterVec
	rows     *prometheus.CounterVec
	duration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendpilot_load_batches_total",
			Help: "Load runs by outcome: loaded, rejected (isolated), failed (left for the next run), idle (nothing pending).",
		}, []string{"outcome"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendpilot_load_rows_inserted_total",
			Help: "Rows new to the warehouse, by table (rows whose key was already there are not counted).",
		}, []string{"table"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sendpilot_load_run_seconds",
			Help:    "Duration of one load run (resume, transform, load, archive).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
	}
	for _, o := range []string{"loaded", "rejected", "failed", "idle"} {
		m.batches.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.batches, m.rows, m.duration)
	}
	return m
}
