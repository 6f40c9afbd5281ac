package emulatortest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"

	bq "cloud.google.com/go/bigquery"
	"google.golang.org/api/option"
)

// schemaProxy sits between the warehouse and the emulator and makes up for two things emulator v0.8.1 does
// not do that real BigQuery does, so that an upgrade can be tested end to end:
//
//   - CREATE OR REPLACE VIEW over an existing view fails with 409 in the emulator; BigQuery replaces the view
//     (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-definition-language#create_view_statement).
//     The proxy deletes the view just before forwarding the statement.
//   - tables.patch changes only the emulator's metadata (internal/metadata/table.go Patch), not the table's
//     storage, so an appended column cannot be written; BigQuery adds the column to the table, NULL in the
//     rows already there (https://cloud.google.com/bigquery/docs/managing-table-schemas#add_columns). The
//     proxy rebuilds the emulator's table with the appended columns, NULL, before forwarding the patch.
//
// Everything else goes to the emulator unchanged.
type schemaProxy struct {
	direct []option.ClientOption // the emulator itself
}

var (
	replaceView = regexp.MustCompile("CREATE OR REPLACE VIEW `([^.`]+)\\.([^`]+)`")
	tablePath   = regexp.MustCompile(`/projects/[^/]+/datasets/([^/]+)/tables/([^/?]+)$`)
)

func (p *schemaProxy) start(t *testing.T, target string) []option.ClientOption {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bq.NewClient(context.Background(), project, p.direct...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		ctx := r.Context()
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/jobs") && !strings.Contains(r.URL.Path, "/upload/"):
			if m := replaceView.FindSubmatch(body); m != nil {
				c.Dataset(string(m[1])).Table(string(m[2])).Delete(ctx) // absent the first time: nothing to delete
			}
		case (r.Method == http.MethodPatch || r.Method == http.MethodPut) && tablePath.MatchString(r.URL.Path):
			m := tablePath.FindStringSubmatch(r.URL.Path)
			if err := p.addColumns(ctx, c, m[1], m[2], body); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return []option.ClientOption{option.WithEndpoint(srv.URL), option.WithoutAuthentication()}
}

// addColumns rebuilds table with the columns the patch appends to its schema, NULL in every row.
func (p *schemaProxy) addColumns(ctx context.Context, c *bq.Client, dataset, table string, patch []byte) error {
	var req struct {
		Schema *struct {
			Fields []struct{ Name, Type, Mode string } `json:"fields"`
		} `json:"schema"`
	}
	if err := json.Unmarshal(patch, &req); err != nil || req.Schema == nil {
		return err
	}
	md, err := c.Dataset(dataset).Table(table).Metadata(ctx)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, f := range md.Schema {
		have[f.Name] = true
	}
	var added []string
	for _, f := range req.Schema.Fields {
		if !have[f.Name] {
			typ := f.Type
			switch typ {
			case "INTEGER":
				typ = "INT64"
			case "FLOAT":
				typ = "FLOAT64"
			case "BOOLEAN":
				typ = "BOOL"
			}
			if f.Mode == "REPEATED" { // BigQuery reads a column added as REPEATED as empty arrays
				added = append(added, "ARRAY<"+typ+">[] AS "+f.Name)
				continue
			}
			added = append(added, "CAST(NULL AS "+typ+") AS "+f.Name)
		}
	}
	if len(added) == 0 {
		return nil
	}
	run := func(q string) error { return runQuery(ctx, c, q) }
	tmp := "`" + dataset + "._widen_" + table + "`"
	full := "`" + dataset + "." + table + "`"
	if err := run("CREATE TABLE " + tmp + " AS SELECT *, " + strings.Join(added, ", ") + " FROM " + full); err != nil {
		return err
	}
	if err := c.Dataset(dataset).Table(table).Delete(ctx); err != nil {
		return err
	}
	if err := run("CREATE TABLE " + full + " PARTITION BY DATE(occurred_at) AS SELECT * FROM " + tmp); err != nil {
		return err
	}
	return c.Dataset(dataset).Table("_widen_" + table).Delete(ctx)
}

// runQuery runs one statement on the emulator and waits for it.
func runQuery(ctx context.Context, c *bq.Client, q string) error {
	j, err := c.Query(q).Run(ctx)
	if err != nil {
		return err
	}
	st, err := j.Wait(ctx)
	if err != nil {
		return err
	}
	return st.Err()
}
