package load

// Status is what an operator wants to know about the loader's side of a data directory; the buffer's side
// comes from the buffer.
type Status struct {
	// LastBatch is the most recently updated batch; Unfinished counts batches a load will resume.
	LastBatch  *Manifest
	Unfinished int
	// Paused is set while loads are paused, with the reason.
	Paused *Pause
	// Refused counts the events the warehouse refused on their own, over the batches still on record, and
	// RefusedFiles are the quarantine files that hold them.
	Refused      int
	RefusedFiles []string
}

// ReadStatus reads the loader state of a data directory without taking the load lock.
func ReadStatus(dataDir string) (Status, error) {
	var st Status
	dirs := newLayout(dataDir)
	p, err := readPause(dirs.state)
	if err != nil {
		return st, err
	}
	st.Paused = p
	ms, err := dirs.manifests()
	if err != nil {
		return st, err
	}
	for _, m := range ms {
		if !m.Done() {
			st.Unfinished++
		}
		if m.Refused > 0 {
			st.Refused += m.Refused
			st.RefusedFiles = append(st.RefusedFiles, m.RefusedFile)
		}
		if st.LastBatch == nil || m.UpdatedAt.After(st.LastBatch.UpdatedAt) {
			st.LastBatch = m
		}
	}
	return st, nil
}
