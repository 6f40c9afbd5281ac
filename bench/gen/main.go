// Command gen writes a deterministic corpus of SendPilot events (see package bench/corpus) as NDJSON: bare
// events by default, buffer envelopes with --envelope, gzip'd when --out ends in .gz. --shape picks a mix of
// events other than the default (see corpus.Shape).
//
//	go run ./bench/gen --bytes 1GB --out bench-data/corpus.ndjson
//	go run ./bench/gen --bytes 250MB --shape wide-leads --out bench-data/corpus-wide.ndjson
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/gzip"

	"sendpilot-loader/bench/corpus"
	"sendpilot-loader/configs"
)

func main() {
	size := configs.ByteSize(100 * configs.MiB)
	flag.Var(&size, "bytes", "stop after this many bytes of NDJSON, e.g. 1GB or 100MiB")
	out := flag.String("out", "-", "output file (- for stdout; .gz compresses)")
	seed := flag.Uint64("seed", 1, "random seed: the same seed gives the same corpus")
	env := flag.Bool("envelope", false, "wrap each event in a buffer envelope, as the receiver writes it")
	shapeName := flag.String("shape", string(corpus.ShapeDefault), fmt.Sprintf("mix of events, one of %v", corpus.Shapes))
	flag.Parse()
	shape, err := corpus.ParseShape(*shapeName)
	if err == nil {
		var st corpus.Stats
		st, err = generate(*out, int64(size), corpus.NewShape(*seed, *env, shape))
		if err == nil {
			fmt.Fprintf(os.Stderr, "gen: %d events, %d leads, %d experience, %d education\n", st.Events, st.Leads, st.Experience, st.Education)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func generate(path string, size int64, g *corpus.Generator) (corpus.Stats, error) {
	var w io.Writer = os.Stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return corpus.Stats{}, fmt.Errorf("create output: %w", err)
		}
		defer f.Close()
		w = f
		if strings.HasSuffix(path, ".gz") {
			gz := gzip.NewWriter(f)
			defer gz.Close()
			w = gz
		}
	}
	st, _, err := corpus.Write(w, g, size)
	return st, err
}
