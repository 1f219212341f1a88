// Command compare measures Grapevine against hashicorp/memberlist on
// loopback and prints a Markdown report:
//
//	go run ./cmd/compare -n 32,64,128 -joins 5 -quiet 60s
//
// Progress goes to standard error, the report to standard output.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"grapevine/bench"
)

func main() {
	sizes := flag.String("n", "32,64,128", "cluster sizes, comma-separated")
	joins := flag.Int("joins", 5, "nodes joining each cluster, one after the other")
	quiet := flag.Duration("quiet", 60*time.Second, "steady-state window")
	settle := flag.Duration("settle", 10*time.Second, "wait after convergence before the window")
	k := flag.Int("k", 3, "bootstrap nodes per Grapevine node of the initial cluster")
	seed := flag.Uint64("seed", 1, "seed for the choice of bootstrap nodes")
	heartbeat := flag.Duration("heartbeat", 0, "Grapevine transport heartbeat (default: the transport's, as the daemon runs it)")
	only := flag.Bool("only-grapevine", false, "skip memberlist (for exploring; no comparison)")
	flag.Parse()
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			fmt.Fprintf(os.Stderr, "compare: -n: %q is not a cluster size of at least 2\n", s)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep := bench.Report{
		Command:   "cd bench && go run ./cmd/compare " + strings.Join(os.Args[1:], " "),
		Machine:   bench.ThisMachine(),
		Bootstrap: *k,
		Settle:    *settle,
		Heartbeat: *heartbeat,
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	for _, n := range ns {
		res, err := bench.Run(ctx, bench.Config{N: n, Joins: *joins, Quiet: *quiet, Settle: *settle, Bootstrap: *k, Seed: *seed, Heartbeat: *heartbeat, OnlyGrapevine: *only, Logf: logf})
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
		rep.Results = append(rep.Results, res...)
	}
	rep.Markdown(os.Stdout)
}
