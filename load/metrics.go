package load

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	batches  *prometheus.CounterVec
	rows     *prometheus.CounterVec
	duration prometheus.Histogram
	refused  prometheus.Counter
	paused   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendpilot_load_batches_total",
			Help: "Load runs by outcome: loaded, rejected (moved aside), failed (left for the next run), paused (systemic error), idle (nothing pending).",
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
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendpilot_load_refused_events_total",
			Help: "Events the warehouse refused on their own, isolated from their batch and kept in quarantine/<batch>-refused.ndjson.",
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sendpilot_load_paused",
			Help: "1 while loads are paused by a problem no batch can get past (schema difference, permissions, missing dataset, quota); 0 otherwise.",
		}),
	}
	for _, o := range []string{"loaded", "rejected", "failed", "idle", "paused"} {
		m.batches.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.batches, m.rows, m.duration, m.refused, m.paused)
	}
	return m
}
