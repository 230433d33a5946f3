package metrics

import (
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// goroutines returns go_goroutines from one Gather of g.
func goroutines(t *testing.T, g prometheus.Gatherer) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "go_goroutines" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no go_goroutines")
	return 0
}

// TestM_GoroutinesExcludeTheScrapesHelpers: go_goroutines counts the goroutines that exist when the
// scrape begins. client_golang gathers on helper goroutines of its own, up to four here depending on
// how the scheduler runs them, and the Go collector counts those that happen to be alive: a daemon
// whose goroutines did not change would otherwise report a number that moves between scrapes, and a
// leak check comparing two scrapes would see goroutines come and go.
func TestM_GoroutinesExcludeTheScrapesHelpers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	_, reg := newTest(t)
	g := Gatherer(reg)
	want := runtime.NumGoroutine()
	for i := range 500 {
		// The helpers of the scrape before may not have returned yet, and while goroutines come
		// and go the runtime's count can be off by one; a real scrape comes a round trip later at
		// least.
		for j := 0; j < 1000 && runtime.NumGoroutine() != want; j++ {
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(100 * time.Microsecond)
		if got := goroutines(t, g); got != float64(want) {
			t.Fatalf("scrape %d: go_goroutines %v, want %v (the goroutines before the scrape)", i, got, want)
		}
	}
}
