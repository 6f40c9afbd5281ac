package bigquery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"google.golang.org/api/iterator"

	sqlfiles "sendpilot-loader/sql"
)

// viewLabel is the label that carries a digest of the SQL a view was created from, so that Ensure replaces a
// view only when sql/bigquery/views.sql changes: one metadata read per view otherwise.
const viewLabel = "sendpilot_sql"

// ensureViews creates or replaces the views, in file order (a view depends only on the ones before it); force
// replaces them even when their SQL is unchanged, as after a migration changed the tables they read.
func (w *Warehouse) ensureViews(ctx context.Context, force bool) error {
	views, err := sqlfiles.Views("bigquery")
	if err != nil {
		return err
	}
	ds := w.c.Dataset(w.cfg.Dataset)
	for _, v := range views {
		ddl := strings.ReplaceAll(v.SQL, "${dataset}", w.cfg.Dataset)
		sum := sha256.Sum256([]byte(ddl))
		digest := hex.EncodeToString(sum[:8])
		table := ds.Table(v.Name)
		md, err := w.tableMetadata(ctx, table)
		if err == nil && md.Labels[viewLabel] == digest && !force {
			continue
		}
		if err != nil && !isStatus(err, http.StatusNotFound) {
			return classified(fmt.Errorf("look up view %s: %w", v.Name, err), anyCall)
		}
		if err := w.run(ctx, ddl); err != nil {
			return classified(fmt.Errorf("create view %s: %w", v.Name, err), anyCall)
		}
		var u bigquery.TableMetadataToUpdate
		u.SetLabel(viewLabel, digest)
		if _, err := within(ctx, w.cfg.StepTimeout, func(ctx context.Context) (*bigquery.TableMetadata, error) { return table.Update(ctx, u, "") }); err != nil {
			return classified(fmt.Errorf("label view %s: %w", v.Name, err), anyCall)
		}
	}
	return nil
}

// run runs one statement as a query job in the dataset's location and waits for it, both under the step
// deadline.
func (w *Warehouse) run(ctx context.Context, statement string) error {
	q := w.c.Query(statement)
	q.Location = w.location
	j, err := within(ctx, w.cfg.StepTimeout, q.Run)
	if err != nil {
		return err
	}
	st, err := w.wait(ctx, j)
	if err != nil {
		return err
	}
	return st.Err()
}

// Query runs one statement with the warehouse's dataset as the default, so tables and views can be named
// without it, and returns its rows with values in sql.Result's shared forms.
func (w *Warehouse) Query(ctx context.Context, statement string) (*sqlfiles.Result, error) {
	q := w.c.Query(statement)
	q.DefaultProjectID = w.cfg.Project
	q.DefaultDatasetID = w.cfg.Dataset
	it, err := q.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("run query: %w", err)
	}
	res := &sqlfiles.Result{}
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read rows: %w", err)
		}
		out := make([]any, len(row))
		for i, v := range row {
			out[i] = shared(v)
		}
		res.Rows = append(res.Rows, out)
	}
	for _, f := range it.Schema {
		res.Columns = append(res.Columns, f.Name)
	}
	return res, nil
}

// shared puts a value read from BigQuery in the form sql.Result documents.
func shared(v bigquery.Value) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case civil.Date:
		return x.String()
	case civil.DateTime:
		return x.String()
	case civil.Time:
		return x.String()
	case *big.Rat:
		f, _ := x.Float64()
		return f
	case []byte:
		return string(x)
	case []bigquery.Value:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = shared(e)
		}
		return out
	}
	return v
}
