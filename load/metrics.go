package load

import (
	"github.com/prometheus/client_golang/prometheus"

	"sendpilot-loader/transform"
)

type metrics struct {
	batches  *prometheus.CounterVec
	rows     *prometheus.CounterVec
	read     *prometheus.CounterVec
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
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendpilot_load_warehouse_bytes_read_total",
			Help: "Bytes the warehouse's merges read, by table, as its job statistics report them (BigQuery totalBytesProcessed); DuckDB does not report them and leaves it at 0.",
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
	for _, t := range transform.Tables {
		m.read.WithLabelValues(t)
	}
	if reg != nil {
		reg.MustRegister(m.batches, m.rows, m.read, m.duration, m.refused, m.paused)
	}
	return m
}

// countBytesRead adds a load's LoadResult.BytesRead to the bytes-read counter; a -1 (the warehouse's
// statistics did not say) adds nothing.
func (m *metrics) countBytesRead(bytesRead map[string]int64) {
	for t, n := range bytesRead {
		if n > 0 {
			m.read.WithLabelValues(t).Add(float64(n))
		}
	}
}
