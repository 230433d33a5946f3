package routes

import (
	"github.com/prometheus/common/expfmt"

	"github.com/edged/edged/pkg/conn"
)

// metricsFormat is the Prometheus text exposition format (version 0.0.4).
var metricsFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

// serveMetrics answers GET /metrics in the Prometheus text format (CONTRACT M). A scrape may allocate;
// requests do not.
func (r *Router) serveMetrics(c *conn.Connection) error {
	switch c.Method() {
	case conn.MethodGet, conn.MethodHead:
	default:
		return methodNotAllowed(c, "GET, HEAD")
	}
	mfs, err := r.metrics.Gather()
	if err != nil && len(mfs) == 0 {
		return err
	}
	if err := c.SetHeader("Content-Type", string(metricsFormat)); err != nil {
		return err
	}
	if err := c.WriteHeader(200); err != nil {
		return err
	}
	enc := expfmt.NewEncoder(c, metricsFormat)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
