package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/inpud/cairn/model"
)

// storeCollector exports the record store's counts as Prometheus gauges,
// read when scraped so they are never stale.
type storeCollector struct {
	st interface {
		Counts() (map[model.Kind]int, error)
		Head() uint64
	}
	records *prometheus.Desc
	head    *prometheus.Desc
}

func newStoreCollector(st interface {
	Counts() (map[model.Kind]int, error)
	Head() uint64
}) *storeCollector {
	return &storeCollector{
		st:      st,
		records: prometheus.NewDesc("cairn_records", "Current records held (deleted ones excluded), by kind.", []string{"kind"}, nil),
		head:    prometheus.NewDesc("cairn_feed_head", "Sequence number of the latest entry in the local change feed.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.head
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	if counts, err := c.st.Counts(); err == nil {
		for _, k := range model.Kinds {
			ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(counts[k]), string(k))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.head, prometheus.CounterValue, float64(c.st.Head()))
}
