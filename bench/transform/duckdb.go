package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver
)

// The DuckDB side builds the same four tables as transform.Files: the same columns in the same order, with
// the same types as far as DuckDB has them (VARCHAR for Arrow strings, BIGINT, DOUBLE, BOOLEAN, TIMESTAMPTZ
// for timestamp[us, UTC], VARCHAR[] for list<string>). Like ours, events.data leaves out data.leads and
// leads.lead leaves out the lead's experience and education, which become rows of their own tables. On
// 68 MB and 250 MB prefixes of the bench corpus its four files hold exactly the rows of ours, value for value
// and in the same order.
//
// Plan kept: read_ndjson directly in each of the four COPY statements. Every COPY reads the whole input, but
// declares the data column as only the STRUCT it needs, so the reader parses each line straight into it: the
// events COPY reads data as JSON (its text is a column) and json_transforms it once; the leads COPY reads
// data.leads as JSON[] (each element's text is the lead column) and json_transforms each lead once; the
// experience and education COPYs read data.leads[].experience (or education) as JSON[] and json_transform
// each element once. Arrays a COPY does not need are skipped by the reader, never turned into text.
//
// Plan not kept: parse once into temporary tables (event rows plus data.leads as JSON[]; then lead rows plus
// their experience and education as JSON[]), then COPY each table from those. On the 1 GB corpus with 2
// threads it took 41–54 s and 3.5 GB of peak RSS, against 33–41 s and 1.5–1.7 GB for the plan kept (two runs
// each, alternated, on a machine shared with other work): filling the temporary tables copies every JSON
// text once more into DuckDB's storage, which costs more than reading and parsing the file again from the
// page cache. Before events.data and leads.lead dropped the nested arrays the gap was the same (52–57 s
// against 44 s); two other plans were slower than the one kept too: a temporary table for the leads only
// (55 s), and direct reads where every COPY json_transforms the whole data object (62 s).
//
// Differences from transform.Files, none of which changes a row count on a corpus of bare events:
//   - received_at and signature come from buffer envelopes; the corpus has bare events, so they are NULL.
//   - extra (top-level keys other than the known ones) is NULL: the corpus has none, and rebuilding it would
//     need the whole line as JSON a second time.
//   - A key given in two spellings takes the first in a fixed order, not the first in the JSON text.
//   - Timestamps are strings cast with try_cast; Unix-epoch numbers are not read.
//   - lead_count is json_array_length, which is 0 rather than NULL when data.leads is not an array, and
//     json_merge_patch drops data.leads (lead.experience, lead.education) even when it is not an array.
//   - A line that is not a JSON object, or whose data does not fit the declared STRUCT, fails the run instead
//     of going to quarantine.

// maxObjectSize is read_ndjson's maximum_object_size: well above the longest corpus line (about 600 KB).
const maxObjectSize = 16 << 20

// eventTypeSQL canonicalises event_type_raw as transform.CanonicalEventType does. It is a simple CASE rather
// than "IN (...)": DuckDB rewrites a long IN list into a hash join, which loses the input order.
const eventTypeSQL = `CASE event_type_raw
    WHEN 'message.received' THEN 'reply.received'
    WHEN 'connection.sent' THEN 'connection_request.sent'
    WHEN 'connection.accepted' THEN 'connection_request.accepted'
    WHEN 'lead.status.changed' THEN 'lead.updated'
    WHEN 'reply.received' THEN 'reply.received'
    WHEN 'connection_request.sent' THEN 'connection_request.sent'
    WHEN 'connection_request.accepted' THEN 'connection_request.accepted'
    WHEN 'lead.updated' THEN 'lead.updated'
    WHEN 'lead.tag.updated' THEN 'lead.tag.updated'
    WHEN 'campaign.finished' THEN 'campaign.finished'
    WHEN 'lead_database.search.completed' THEN 'lead_database.search.completed'
    WHEN 'lead_extractor.job.completed' THEN 'lead_extractor.job.completed'
    WHEN 'message.sent' THEN 'message.sent'
    WHEN 'campaign.started' THEN 'campaign.started'
    WHEN 'campaign.paused' THEN 'campaign.paused'
    WHEN 'campaign.resumed' THEN 'campaign.resumed'
    ELSE 'unknown' END`

// isJobSQL tells lead extractor jobs and lead database searches, whose campaign_*/started_at/completed_at
// keys describe the job, from outreach events.
const isJobSQL = `event_type IN ('lead_extractor.job.completed', 'lead_database.search.completed')`

// dataShape is the json_transform structure of an event's data object, every key spelling flatten.go reads.
const dataShape = `{
  "leadId": "VARCHAR", "lead_id": "VARCHAR",
  "campaignId": "VARCHAR", "campaign_id": "VARCHAR", "campaignName": "VARCHAR", "campaign_name": "VARCHAR",
  "campaignType": "VARCHAR", "campaign_type": "VARCHAR", "mode": "VARCHAR",
  "searchId": "VARCHAR", "search_id": "VARCHAR", "searchName": "VARCHAR", "search_name": "VARCHAR",
  "linkedinUrl": "VARCHAR", "linkedin_url": "VARCHAR", "senderId": "VARCHAR", "sender_id": "VARCHAR",
  "message": "VARCHAR", "messagePreview": "VARCHAR", "message_preview": "VARCHAR",
  "reply": "VARCHAR", "replyPreview": "VARCHAR", "reply_preview": "VARCHAR", "note": "VARCHAR",
  "sequenceStep": "BIGINT", "sequence_step": "BIGINT",
  "previousStatus": "VARCHAR", "previous_status": "VARCHAR",
  "newStatus": "VARCHAR", "new_status": "VARCHAR", "status": "VARCHAR",
  "changedBy": "VARCHAR", "changed_by": "VARCHAR", "totalLeads": "BIGINT", "total_leads": "BIGINT",
  "startedAt": "TIMESTAMPTZ", "started_at": "TIMESTAMPTZ", "completedAt": "TIMESTAMPTZ", "completed_at": "TIMESTAMPTZ",
  "finishedAt": "TIMESTAMPTZ", "finished_at": "TIMESTAMPTZ", "pausedAt": "TIMESTAMPTZ", "paused_at": "TIMESTAMPTZ",
  "pausedBy": "VARCHAR", "paused_by": "VARCHAR", "resumedAt": "TIMESTAMPTZ", "resumed_at": "TIMESTAMPTZ",
  "resumedBy": "VARCHAR", "resumed_by": "VARCHAR", "acceptedAt": "TIMESTAMPTZ", "accepted_at": "TIMESTAMPTZ",
  "durationMs": "BIGINT", "duration_ms": "BIGINT", "requestedLimit": "BIGINT", "requested_limit": "BIGINT",
  "totalLeadsFound": "BIGINT", "total_leads_found": "BIGINT",
  "totalLeadsExtracted": "BIGINT", "total_leads_extracted": "BIGINT",
  "totalLeadsEnriched": "BIGINT", "total_leads_enriched": "BIGINT",
  "creditsUsed": "JSON", "credits_used": "JSON", "resultsUrl": "VARCHAR", "results_url": "VARCHAR"
}`

// leadShape is the json_transform structure of one element of data.leads.
const leadShape = `{
  "id": "VARCHAR", "leadId": "VARCHAR", "lead_id": "VARCHAR",
  "linkedin_identifier": "VARCHAR", "linkedinIdentifier": "VARCHAR",
  "linkedin_url": "VARCHAR", "linkedinUrl": "VARCHAR", "first_name": "VARCHAR", "firstName": "VARCHAR",
  "last_name": "VARCHAR", "lastName": "VARCHAR", "full_name": "VARCHAR", "fullName": "VARCHAR", "name": "VARCHAR",
  "headline": "VARCHAR", "summary": "VARCHAR", "about": "VARCHAR",
  "location": "VARCHAR", "city": "VARCHAR", "country": "VARCHAR",
  "profile_picture_url": "VARCHAR", "profilePictureUrl": "VARCHAR",
  "company": "VARCHAR", "company_name": "VARCHAR", "companyName": "VARCHAR",
  "job_position": "VARCHAR", "jobPosition": "VARCHAR", "job_title": "VARCHAR", "jobTitle": "VARCHAR", "title": "VARCHAR",
  "industry": "VARCHAR", "seniority": "VARCHAR", "company_linkedin_url": "VARCHAR", "companyLinkedinUrl": "VARCHAR",
  "website": "VARCHAR", "employees": "VARCHAR", "company_size": "VARCHAR", "companySize": "VARCHAR",
  "email": "VARCHAR", "phone": "VARCHAR",
  "connections": "BIGINT", "connectionCount": "BIGINT", "connection_count": "BIGINT",
  "followers": "BIGINT", "followerCount": "BIGINT", "follower_count": "BIGINT",
  "skills": ["VARCHAR"], "experience": ["NULL"], "education": ["NULL"]
}`

// experienceShape is the json_transform structure of one element of a lead's experience.
const experienceShape = `{
  "title": "VARCHAR", "position": "VARCHAR", "job_title": "VARCHAR",
  "company": "VARCHAR", "company_name": "VARCHAR", "companyName": "VARCHAR",
  "duration": "VARCHAR", "location": "VARCHAR",
  "start_date": "VARCHAR", "startDate": "VARCHAR", "start": "VARCHAR",
  "end_date": "VARCHAR", "endDate": "VARCHAR", "end": "VARCHAR", "description": "VARCHAR"
}`

// educationShape is the json_transform structure of one element of a lead's education.
const educationShape = `{
  "school": "VARCHAR", "school_name": "VARCHAR", "schoolName": "VARCHAR", "institution": "VARCHAR",
  "degree": "VARCHAR", "degree_name": "VARCHAR",
  "field_of_study": "VARCHAR", "fieldOfStudy": "VARCHAR", "field": "VARCHAR",
  "start_date": "VARCHAR", "startDate": "VARCHAR", "start": "VARCHAR",
  "end_date": "VARCHAR", "endDate": "VARCHAR", "end": "VARCHAR"
}`

// readEvents returns a query with one row per input line: event_id, event_type_raw, event_type, occurred_at,
// workspace_id and data, typed as dataType; with lineNumbers also source_line. Lines without an event ID are
// left out, as transform.Files quarantines them.
func readEvents(input, dataType string, lineNumbers bool) string {
	ordinality, sourceLine := "", ""
	if lineNumbers {
		// WITH ORDINALITY numbers the lines in file order; it costs some parallelism, so only events use it.
		ordinality, sourceLine = " WITH ORDINALITY", "ordinality::BIGINT AS source_line,"
	}
	return `SELECT *, ` + eventTypeSQL + ` AS event_type FROM (
  SELECT ` + sourceLine + `
    coalesce(eventId, event_id) AS event_id,
    coalesce(eventType, event_type, '') AS event_type_raw,
    try_cast("timestamp" AS TIMESTAMPTZ) AS occurred_at,
    coalesce(workspaceId, workspace_id) AS workspace_id,
    data
  FROM read_ndjson(` + sqlString(input) + `,
    columns = {'eventId': 'VARCHAR', 'event_id': 'VARCHAR', 'eventType': 'VARCHAR', 'event_type': 'VARCHAR',
      'timestamp': 'VARCHAR', 'workspaceId': 'VARCHAR', 'workspace_id': 'VARCHAR', 'data': ` + sqlString(dataType) + `},
    maximum_object_size = ` + fmt.Sprint(maxObjectSize) + `)` + ordinality + `
) WHERE event_id <> ''`
}

// eventsQuery selects the events table.
func eventsQuery(input string) string {
	return `WITH src AS (` + readEvents(input, "JSON", true) + `),
t AS (
  SELECT *, ` + isJobSQL + ` AS job, json_transform(data, '` + dataShape + `') AS d FROM src
),
c AS (SELECT *, coalesce(d.creditsUsed, d.credits_used) AS credits FROM t)
SELECT
  event_id,
  event_type,
  event_type_raw,
  occurred_at,
  NULL::TIMESTAMPTZ AS received_at,
  workspace_id,
  coalesce(d.leadId, d.lead_id) AS lead_id,
  CASE WHEN NOT job THEN coalesce(d.campaignId, d.campaign_id) END AS campaign_id,
  coalesce(d.senderId, d.sender_id) AS sender_id,
  coalesce(d.linkedinUrl, d.linkedin_url) AS linkedin_url,
  coalesce(d.message, d.messagePreview, d.message_preview) AS message,
  coalesce(d.reply, d.replyPreview, d.reply_preview) AS reply,
  CASE WHEN d.message IS NOT NULL OR d.reply IS NOT NULL THEN false
    WHEN coalesce(d.messagePreview, d.message_preview, d.replyPreview, d.reply_preview) IS NOT NULL THEN true
    END AS text_is_preview,
  d.note AS note,
  coalesce(d.sequenceStep, d.sequence_step) AS sequence_step,
  coalesce(d.previousStatus, d.previous_status) AS previous_status,
  coalesce(d.newStatus, d.new_status, d.status) AS new_status,
  coalesce(d.changedBy, d.changed_by) AS changed_by,
  CASE WHEN NOT job THEN coalesce(d.campaignName, d.campaign_name) END AS campaign_name,
  coalesce(d.totalLeads, d.total_leads) AS total_leads,
  CASE WHEN NOT job THEN coalesce(d.startedAt, d.started_at) END AS started_at,
  coalesce(d.pausedAt, d.paused_at) AS paused_at,
  coalesce(d.pausedBy, d.paused_by) AS paused_by,
  coalesce(d.resumedAt, d.resumed_at) AS resumed_at,
  coalesce(d.resumedBy, d.resumed_by) AS resumed_by,
  coalesce(d.finishedAt, d.finished_at,
    CASE WHEN NOT job THEN coalesce(d.completedAt, d.completed_at) END) AS finished_at,
  coalesce(d.acceptedAt, d.accepted_at) AS accepted_at,
  coalesce(CASE WHEN job THEN coalesce(d.campaignId, d.campaign_id) END, d.searchId, d.search_id) AS job_id,
  coalesce(CASE WHEN job THEN coalesce(d.campaignName, d.campaign_name) END, d.searchName, d.search_name)
    AS job_name,
  coalesce(d.campaignType, d.campaign_type) AS job_type,
  d.mode AS job_mode,
  CASE WHEN job THEN coalesce(d.startedAt, d.started_at) END AS job_started_at,
  CASE WHEN job THEN coalesce(d.completedAt, d.completed_at) END AS job_completed_at,
  coalesce(d.durationMs, d.duration_ms) AS duration_ms,
  coalesce(d.requestedLimit, d.requested_limit) AS requested_limit,
  coalesce(d.totalLeadsFound, d.total_leads_found) AS total_leads_found,
  coalesce(d.totalLeadsExtracted, d.total_leads_extracted) AS total_leads_extracted,
  coalesce(d.totalLeadsEnriched, d.total_leads_enriched) AS total_leads_enriched,
  CASE WHEN json_type(credits) = 'OBJECT' THEN try_cast(credits->>'extraction' AS DOUBLE) END
    AS credits_extraction,
  CASE WHEN json_type(credits) = 'OBJECT' THEN try_cast(credits->>'enrichment' AS DOUBLE) END
    AS credits_enrichment,
  try_cast(CASE WHEN json_type(credits) = 'OBJECT' THEN credits->>'total' ELSE credits->>'$' END AS DOUBLE)
    AS credits_total,
  coalesce(d.resultsUrl, d.results_url) AS results_url,
  json_array_length(data, '$.leads')::BIGINT AS lead_count,
  NULL::VARCHAR AS signature,
  json_merge_patch(data, '{"leads": null}')::VARCHAR AS data,
  NULL::VARCHAR AS extra,
  ` + sqlString(input) + ` AS source_file,
  source_line
FROM c`
}

// leadsData is the type the leads query reads data as: what job_id needs, and each lead as JSON.
const leadsData = `STRUCT(campaignId VARCHAR, campaign_id VARCHAR, searchId VARCHAR, search_id VARCHAR, leads JSON[])`

// leadsQuery selects the leads table.
func leadsQuery(input string) string {
	return `WITH src AS (` + readEvents(input, leadsData, false) + `),
u AS (
  SELECT event_id, event_type, occurred_at,
    coalesce(CASE WHEN ` + isJobSQL + ` THEN coalesce(data.campaignId, data.campaign_id) END,
      data.searchId, data.search_id) AS job_id,
    unnest(data.leads) AS lead, generate_subscripts(data.leads, 1) - 1 AS lead_index
  FROM src
),
t AS (SELECT *, json_transform(lead, '` + leadShape + `') AS l FROM u)
SELECT
  event_id,
  lead_index::BIGINT AS lead_index,
  event_type,
  occurred_at,
  job_id,
  coalesce(l.id, l.leadId, l.lead_id) AS lead_id,
  coalesce(l.linkedin_identifier, l.linkedinIdentifier) AS linkedin_identifier,
  coalesce(l.linkedin_url, l.linkedinUrl) AS linkedin_url,
  coalesce(l.first_name, l.firstName) AS first_name,
  coalesce(l.last_name, l.lastName) AS last_name,
  coalesce(l.full_name, l.fullName, l.name) AS full_name,
  l.headline AS headline,
  coalesce(l.summary, l.about) AS summary,
  l.location AS location,
  l.city AS city,
  l.country AS country,
  coalesce(l.profile_picture_url, l.profilePictureUrl) AS profile_picture_url,
  coalesce(l.company, l.company_name, l.companyName) AS company,
  coalesce(l.job_position, l.jobPosition) AS job_position,
  coalesce(l.job_title, l.jobTitle, l.title) AS job_title,
  l.industry AS industry,
  l.seniority AS seniority,
  coalesce(l.company_linkedin_url, l.companyLinkedinUrl) AS company_linkedin_url,
  l.website AS website,
  coalesce(l.employees, l.company_size, l.companySize) AS employees,
  l.email AS email,
  l.phone AS phone,
  coalesce(l.connections, l.connectionCount, l.connection_count) AS connections,
  coalesce(l.followers, l.followerCount, l.follower_count) AS followers,
  list_filter(l.skills, s -> s IS NOT NULL) AS skills,
  len(l.experience)::BIGINT AS experience_count,
  len(l.education)::BIGINT AS education_count,
  json_merge_patch(lead, '{"experience": null, "education": null}')::VARCHAR AS lead
FROM t`
}

// childQuery selects the experience or education table (list names the lead's array): the keys and parent
// columns, the columns of fields read from each element through shape, and the element's JSON.
func childQuery(input, list, shape, fields string) string {
	data := `STRUCT(leads STRUCT(id VARCHAR, leadId VARCHAR, lead_id VARCHAR, ` + list + ` JSON[])[])`
	return `WITH src AS (` + readEvents(input, data, false) + `),
ld AS (
  SELECT event_id, occurred_at, unnest(data.leads) AS l, generate_subscripts(data.leads, 1) - 1 AS lead_index
  FROM src
),
u AS (
  SELECT event_id, lead_index, coalesce(l.id, l.leadId, l.lead_id) AS lead_id, occurred_at,
    unnest(l.` + list + `) AS element, generate_subscripts(l.` + list + `, 1) - 1 AS position
  FROM ld
),
t AS (SELECT *, json_transform(element, '` + shape + `') AS e FROM u)
SELECT
  event_id,
  lead_index::BIGINT AS lead_index,
  position::BIGINT AS position,
  lead_id,
  occurred_at,
  ` + fields + `,
  element::VARCHAR AS element
FROM t`
}

// experienceFields are the typed columns of the experience table.
const experienceFields = `coalesce(e.title, e.position, e.job_title) AS title,
  coalesce(e.company, e.company_name, e.companyName) AS company,
  e.duration AS duration,
  e.location AS location,
  coalesce(e.start_date, e.startDate, e."start") AS start_date,
  coalesce(e.end_date, e.endDate, e."end") AS end_date,
  e.description AS description`

// educationFields are the typed columns of the education table.
const educationFields = `coalesce(e.school, e.school_name, e.schoolName, e.institution) AS school,
  coalesce(e.degree, e.degree_name) AS degree,
  coalesce(e.field_of_study, e.fieldOfStudy, e.field) AS field_of_study,
  coalesce(e.start_date, e.startDate, e."start") AS start_date,
  coalesce(e.end_date, e.endDate, e."end") AS end_date`

// statement is one SQL statement of a conversion, with a short label for progress lines.
type statement struct {
	label, sql string
}

// conversion returns the statements that write the four tables of input to outDir with threads threads.
func conversion(input, outDir string, threads int) []statement {
	return []statement{
		{"threads", fmt.Sprintf("SET threads = %d", threads)},
		{"order", "SET preserve_insertion_order = true"},
		{"time zone", "SET TimeZone = 'UTC'"},
		{"spill dir", "SET temp_directory = " + sqlString(filepath.Join(outDir, "duckdb.tmp"))},
		{"events", copyTo(eventsQuery(input), outDir, "events")},
		{"leads", copyTo(leadsQuery(input), outDir, "leads")},
		{"experience", copyTo(childQuery(input, "experience", experienceShape, experienceFields), outDir, "experience")},
		{"education", copyTo(childQuery(input, "education", educationShape, educationFields), outDir, "education")},
	}
}

// copyTo wraps a query in a COPY to <outDir>/<table>.parquet.
func copyTo(query, outDir, table string) string {
	path := filepath.Join(outDir, table+".parquet")
	return "COPY (" + query + ") TO " + sqlString(path) + " (FORMAT parquet, COMPRESSION snappy)"
}

// sqlString quotes s as a SQL string literal.
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// runDuckDB converts input into the four Parquet tables in outDir with DuckDB on threads threads, and prints
// how long each table took to stderr.
func runDuckDB(ctx context.Context, input, outDir string, threads int) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return fmt.Errorf("open duckdb: %w", err)
	}
	defer db.Close()
	// Settings belong to a connection: run everything on one.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect duckdb: %w", err)
	}
	defer conn.Close()
	for _, s := range conversion(input, outDir, threads) {
		start := time.Now()
		if _, err := conn.ExecContext(ctx, s.sql); err != nil {
			return fmt.Errorf("run duckdb %s statement: %w", s.label, err)
		}
		if strings.HasPrefix(s.sql, "COPY") {
			fmt.Fprintf(os.Stderr, "  duckdb %-10s %6.2fs\n", s.label, time.Since(start).Seconds())
		}
	}
	return nil
}

// countRows returns the number of rows of each table's Parquet file in dir, in the order of tables.
func countRows(ctx context.Context, db *sql.DB, dir string, tables []string) ([]int64, error) {
	counts := make([]int64, len(tables))
	for i, t := range tables {
		path := filepath.Join(dir, t+".parquet")
		q := "SELECT count(*) FROM read_parquet(" + sqlString(path) + ")"
		if err := db.QueryRowContext(ctx, q).Scan(&counts[i]); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", path, err)
		}
	}
	return counts, nil
}
