package benchkit

import (
	"fmt"
	"os"

	"sendpilot-loader/bench/corpus"
)

// WriteCorpus writes the corpus of corpus.New(seed, asEnvelope) to path (see WriteCorpusFrom).
func WriteCorpus(path string, size int64, seed uint64, asEnvelope bool) (corpus.Stats, error) {
	return WriteCorpusFrom(path, size, corpus.New(seed, asEnvelope))
}

// WriteCorpusFrom writes the lines of g to path, one event a line, until at least size bytes are written
// (nothing for size 0), and reports what it wrote. The file appears under its name only when complete.
func WriteCorpusFrom(path string, size int64, g *corpus.Generator) (corpus.Stats, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return corpus.Stats{}, fmt.Errorf("create corpus: %w", err)
	}
	defer os.Remove(tmp)
	defer f.Close()
	total, _, err := corpus.Write(f, g, size)
	if err != nil {
		return total, err
	}
	if err := f.Close(); err != nil {
		return total, fmt.Errorf("close corpus: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return total, fmt.Errorf("rename corpus: %w", err)
	}
	return total, nil
}
