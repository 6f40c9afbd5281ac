package bigquery

import (
	"context"
	"fmt"
	"strconv"

	"cloud.google.com/go/bigquery"

	"sendpilot-loader/load"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

// versionLabel is the dataset label that records the schema version the dataset holds. A label costs no
// query job to read (Ensure reads the dataset's metadata anyway) and no DML to write.
const versionLabel = "sendpilot_schema_version"

// schemaFor returns the columns the warehouse writes and their schema version: cfg's, when a test stands in
// for another release, otherwise sql/bigquery/tables.sql and its newest recorded version.
func schemaFor(cfg Config) (map[string][]sqlfiles.Column, int, error) {
	if cfg.Tables != nil {
		return cfg.Tables, cfg.Version, nil
	}
	cols, err := sqlfiles.Tables("bigquery/tables.sql")
	if err != nil {
		return nil, 0, err
	}
	v, err := sqlfiles.Version("bigquery")
	return cols, v, err
}

// migrate brings the dataset's tables to the schema w writes, from the difference between w's columns and
// each table's schema as BigQuery reports it: missing nullable columns are appended and NOT NULL is relaxed
// where the schema allows NULL (both allowed by tables.update:
// https://cloud.google.com/bigquery/docs/managing-table-schemas), each update conditioned on the ETag it read,
// so two replicas migrating at once cannot undo each other (the loser gets 412 and tries again on its next
// load). Nothing changes when a difference cannot be migrated safely: migrate returns a *load.SchemaDifference
// saying what differs. Then the version is recorded in the dataset's label. It reports whether a table
// changed, so the views that read it are recreated.
func (w *Warehouse) migrate(ctx context.Context) (bool, error) {
	ds := w.c.Dataset(w.cfg.Dataset)
	dmd, err := within(ctx, w.cfg.StepTimeout, ds.Metadata)
	if err != nil {
		return false, classified(fmt.Errorf("look up dataset %s: %w", w.cfg.Dataset, err), anyCall)
	}
	recorded := 0
	if s, ok := dmd.Labels[versionLabel]; ok {
		if recorded, err = strconv.Atoi(s); err != nil {
			return false, fmt.Errorf("read label %s=%q of dataset %s: %w", versionLabel, s, w.cfg.Dataset, err)
		}
	}
	if recorded > w.version {
		return false, load.NewerSchema(w.Name(), "dataset", recorded, w.version)
	}
	type update struct {
		table  *bigquery.Table
		schema bigquery.Schema
		etag   string
	}
	var updates []update
	var problems []string
	for _, t := range transform.Tables {
		table := ds.Table(t)
		md, err := w.tableMetadata(ctx, table)
		if err != nil {
			return false, classified(fmt.Errorf("look up table %s: %w", t, err), anyCall)
		}
		m := sqlfiles.Diff("`"+w.cfg.Dataset+"."+t+"`", w.columns[t], columnsOf(md.Schema))
		problems = append(problems, m.Problems...)
		if len(m.Add) == 0 && len(m.Relax) == 0 {
			continue
		}
		relax := map[string]bool{}
		for _, c := range m.Relax {
			relax[c.Name] = true
		}
		var schema bigquery.Schema
		for _, f := range md.Schema {
			g := *f
			if relax[g.Name] {
				g.Required = false
			}
			schema = append(schema, &g)
		}
		for _, c := range m.Add {
			for _, f := range w.final[t] {
				if f.Name == c.Name {
					schema = append(schema, f)
				}
			}
		}
		updates = append(updates, update{table, schema, md.ETag})
	}
	if len(problems) > 0 {
		return false, &load.SchemaDifference{Warehouse: w.Name(), Problems: problems}
	}
	for _, u := range updates {
		err := do(ctx, w.cfg.StepTimeout, func(ctx context.Context) error {
			_, err := u.table.Update(ctx, bigquery.TableMetadataToUpdate{Schema: u.schema}, u.etag)
			return err
		})
		if err != nil {
			// A refusal is about the warehouse, never about a batch: classified as a plain call, it is
			// systemic or transient, never rejected.
			return false, classified(fmt.Errorf("migrate table %s: %w", u.table.TableID, err), anyCall)
		}
	}
	if recorded != w.version {
		var dm bigquery.DatasetMetadataToUpdate
		dm.SetLabel(versionLabel, strconv.Itoa(w.version))
		err := do(ctx, w.cfg.StepTimeout, func(ctx context.Context) error {
			_, err := ds.Update(ctx, dm, "")
			return err
		})
		if err != nil {
			return false, classified(fmt.Errorf("record schema version of dataset %s: %w", w.cfg.Dataset, err), anyCall)
		}
	}
	return len(updates) > 0, nil
}

// checkSchema migrates before a load, unless Ensure has just done it, and recreates the views when a table
// changed; a schema that changed under a running loader is caught before its batch is merged.
func (w *Warehouse) checkSchema(ctx context.Context) error {
	if w.checked {
		w.checked = false
		return nil
	}
	changed, err := w.migrate(ctx)
	if err != nil || !changed {
		return err
	}
	return w.ensureViews(ctx, true)
}

// columnsOf describes a BigQuery table schema in the DDL terms of sql/bigquery/tables.sql.
func columnsOf(s bigquery.Schema) []sqlfiles.Column {
	out := make([]sqlfiles.Column, len(s))
	for i, f := range s {
		typ := string(f.Type)
		switch f.Type {
		case bigquery.IntegerFieldType:
			typ = "INT64"
		case bigquery.FloatFieldType:
			typ = "FLOAT64"
		case bigquery.BooleanFieldType:
			typ = "BOOL"
		}
		if f.Repeated {
			typ = "ARRAY<" + typ + ">"
		}
		out[i] = sqlfiles.Column{Name: f.Name, Type: typ, NotNull: f.Required}
	}
	return out
}
