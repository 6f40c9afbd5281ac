package benchkit

import (
	"bufio"
	"fmt"
	"os"

	"sendpilot-loader/bench/corpus"
)

// WriteCorpus writes the corpus of corpus.New(seed, asEnvelope) to path, one event a line, until at least size
// bytes are written (nothing for size 0), and reports what it wrote. The file appears under its name only when
// complete.
func WriteCorpus(path string, size int64, seed uint64, asEnvelope bool) (corpus.Stats, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return corpus.Stats{}, fmt.Errorf("create corpus: %w", err)
	}
	defer os.Remove(tmp)
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	g := corpus.New(seed, asEnvelope)
	var total corpus.Stats
	var line []byte
	for written := int64(0); written < size; written += int64(len(line)) {
		var st corpus.Stats
		line, st = g.Next(line[:0])
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return total, fmt.Errorf("write corpus: %w", err)
		}
		total.Events += st.Events
		total.Leads += st.Leads
		total.Experience += st.Experience
		total.Education += st.Education
	}
	if err := w.Flush(); err != nil {
		return total, fmt.Errorf("write corpus: %w", err)
	}
	if err := f.Close(); err != nil {
		return total, fmt.Errorf("close corpus: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return total, fmt.Errorf("rename corpus: %w", err)
	}
	return total, nil
}
