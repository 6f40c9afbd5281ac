package load

// Buffer is the disk buffer as the loader sees it. extract/buffer implements it; the loader never creates,
// moves or deletes a buffer file itself.
type Buffer interface {
	// Seal makes the records received so far loadable, as far as this process can: the writer seals its
	// active segment; a reader seals what a stopped writer left.
	Seal() error
	// Pending returns the paths of the sealed segments, oldest first. They never change; the loader reads
	// them (through the transform) and names them in manifests by their base names.
	Pending() ([]string, error)
	// Archive retires a segment whose records the warehouse has committed: it is kept in the archive and
	// leaves the buffer. A segment already retired is not an error.
	Archive(name string) error
	// MoveAside retires a segment without loading it, into dir, for a person to look at.
	MoveAside(name, dir string) error
}
