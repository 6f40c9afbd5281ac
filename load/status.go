package load

// Status is what an operator wants to know about the loader's side of a data directory; the buffer's side
// comes from the buffer.
type Status struct {
	// LastBatch is the most recently updated batch; Unfinished counts batches a load will resume.
	LastBatch  *Manifest
	Unfinished int
}

// ReadStatus reads the loader state of a data directory without taking the load lock.
func ReadStatus(dataDir string) (Status, error) {
	var st Status
	ms, err := newLayout(dataDir).manifests()
	if err != nil {
		return st, err
	}
	for _, m := range ms {
		if !m.Done() {
			st.Unfinished++
		}
		if st.LastBatch == nil || m.UpdatedAt.After(st.LastBatch.UpdatedAt) {
			st.LastBatch = m
		}
	}
	return st, nil
}
