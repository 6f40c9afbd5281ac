package bigquery

import (
	"fmt"
	"strings"

	"sendpilot-loader/transform"
)

// replaceSQL is the merge step of a Replace batch's events: one script, one transaction, that deletes the
// rows of all four tables whose event_id is one of the batch's (deduplicated) events, then merges the events
// in. The child tables' own merge steps then insert the batch's children, none of which is stored any more,
// so a lead list that shrank leaves no stale rows and no key is stored twice. Every statement holds prune, the
// partitions of the events' days (children share their event's occurred_at). Run again, the script leaves the
// same rows.
// Multi-statement transactions: https://cloud.google.com/bigquery/docs/transactions
func (w *Warehouse) replaceSQL(dedup, prune string) string {
	var s strings.Builder
	s.WriteString("BEGIN TRANSACTION;\n")
	for _, t := range transform.Tables {
		fmt.Fprintf(&s, "DELETE FROM `%s.%s` T WHERE %s AND T.event_id IN (SELECT event_id FROM `%s.%s`);\n",
			w.cfg.Dataset, t, prune, w.cfg.Dataset, dedup)
	}
	s.WriteString(w.mergeSQL(transform.TableEvents, dedup, prune))
	s.WriteString(";\nCOMMIT TRANSACTION;")
	return s.String()
}
