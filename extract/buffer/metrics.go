package buffer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	fsyncSeconds prometheus.Histogram
	batchSize    prometheus.Histogram
	bytesWritten prometheus.Counter
	sealed       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, b *Buffer) *metrics {
	m := &metrics{
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sendpilot_buffer_fsync_seconds",
			Help:    "Time taken by one fsync of the active segment (one group commit).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sendpilot_buffer_group_commit_records",
			Help:    "Records made durable by one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendpilot_buffer_written_bytes_total",
			Help: "Bytes appended to buffer segments.",
		}),
		sealed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendpilot_buffer_segments_sealed_total",
			Help: "Segments sealed by size, age, shutdown or an explicit seal.",
		}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.fsyncSeconds, m.batchSize, m.bytesWritten, m.sealed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendpilot_buffer_segments_pending",
			Help: "Sealed segments waiting for the loader.",
		}, func() float64 { return float64(b.sealedN.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendpilot_buffer_bad_files",
			Help: "Files recovery moved aside in the buffer directory (*.bad), kept for a person to look at.",
		}, func() float64 { return float64(b.badN.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendpilot_buffer_bytes",
			Help: "Bytes of all files in the buffer directory (sealed and active segments).",
		}, func() float64 { return float64(b.usage.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendpilot_buffer_oldest_unloaded_age_seconds",
			Help: "Age of the oldest record still in the buffer (not yet loaded); 0 when empty.",
		}, func() float64 {
			s, err := b.Stats()
			if err != nil || s.OldestPending.IsZero() {
				return 0
			}
			return time.Since(s.OldestPending).Seconds()
		}),
	)
	return m
}
