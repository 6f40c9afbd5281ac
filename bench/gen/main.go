// Command gen writes a deterministic corpus of SendPilot events (see package bench/corpus) as NDJSON: bare
// events by default, buffer envelopes with --envelope, gzip'd when --out ends in .gz.
//
//	go run ./bench/gen --bytes 1GB --out bench-data/corpus.ndjson
package main

import (
	"bufio"
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
	flag.Parse()
	st, err := generate(*out, int64(size), *seed, *env)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gen: %d events, %d leads, %d experience, %d education\n", st.Events, st.Leads, st.Experience, st.Education)
}

func generate(path string, size int64, seed uint64, env bool) (corpus.Stats, error) {
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
	bw := bufio.NewWriterSize(w, 1<<20)
	g := corpus.New(seed, env)
	var total corpus.Stats
	var written int64
	var line []byte
	for written < size {
		var st corpus.Stats
		line, st = g.Next(line[:0])
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return total, fmt.Errorf("write corpus: %w", err)
		}
		written += int64(len(line))
		total.Events += st.Events
		total.Leads += st.Leads
		total.Experience += st.Experience
		total.Education += st.Education
	}
	if err := bw.Flush(); err != nil {
		return total, fmt.Errorf("write corpus: %w", err)
	}
	return total, nil
}
