// nats.go's side of the NATS benchmark (Benchmarks/run-nats-bench.sh): a responder, and the
// baselines pollerd's client is measured beside. Built offline from Debian's packages:
//   GO111MODULE=off GOPATH=/usr/share/gocode go build -o natsbench natsbench.go
// Each measuring mode prints one JSON line: {"client":"nats.go","mode":…,"n":…,"secs":…,"rate":…}.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func report(mode string, n int, inflight int, start time.Time) {
	secs := time.Since(start).Seconds()
	fmt.Printf("{\"client\":\"nats.go\",\"mode\":%q,\"n\":%d,\"in_flight\":%d,\"secs\":%.3f,\"rate\":%.0f}\n",
		mode, n, inflight, secs, float64(n)/secs)
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: natsbench respond|req|pub|pubflush|jspub URL SUBJECT [N] [IN_FLIGHT|SIZE]")
		os.Exit(2)
	}
	mode, url, subject := os.Args[1], os.Args[2], os.Args[3]
	arg := func(i int, def int) int {
		if len(os.Args) > i {
			v, err := strconv.Atoi(os.Args[i])
			must(err)
			return v
		}
		return def
	}
	nc, err := nats.Connect(url)
	must(err)
	defer nc.Close()
	switch mode {
	case "respond":
		// Echoes each request's payload back; runs until killed.
		_, err := nc.QueueSubscribe(subject, "bench", func(m *nats.Msg) { m.Respond(m.Data) })
		must(err)
		must(nc.Flush())
		fmt.Println("ready")
		select {}
	case "req":
		n, inflight := arg(4, 20000), arg(5, 1)
		payload := make([]byte, 128)
		var wg sync.WaitGroup
		per := n / inflight
		start := time.Now()
		for w := 0; w < inflight; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					_, err := nc.Request(subject, payload, 5*time.Second)
					must(err)
				}
			}()
		}
		wg.Wait()
		report("req", per*inflight, inflight, start)
	case "pub", "pubflush":
		n, size := arg(4, 1000000), arg(5, 128)
		payload := make([]byte, size)
		start := time.Now()
		for i := 0; i < n; i++ {
			must(nc.Publish(subject, payload))
			if mode == "pubflush" && i%1000 == 999 {
				must(nc.Flush())
			}
		}
		must(nc.Flush())
		report(mode, n, 0, start)
	case "jspub":
		n, window := arg(4, 100000), arg(5, 256)
		js, err := nc.JetStream(nats.PublishAsyncMaxPending(window))
		must(err)
		payload := make([]byte, 256)
		start := time.Now()
		for i := 0; i < n; i++ {
			_, err := js.PublishAsync(subject, payload, nats.MsgId("k"+strconv.Itoa(i)))
			must(err)
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(60 * time.Second):
			must(fmt.Errorf("acks did not complete"))
		}
		report("jspub", n, window, start)
	default:
		must(fmt.Errorf("unknown mode %s", mode))
	}
}
