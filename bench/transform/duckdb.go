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

// The DuckDB side builds the same four tables as transform.Files, with the same column names and, as closely
// as DuckDB allows, the same types: VARCHAR for Arrow strings, BIGINT, DOUBLE, BOOLEAN, TIMESTAMPTZ for
// timestamp[us, UTC] and VARCHAR[] for list<string>.
//
// Each JSON level is parsed once by json_transform into a STRUCT holding every key variant flatten.go reads
// (camelCase and snake_case), and the nested arrays it unnests next are kept as JSON[], whose elements are
// also the JSON text of the lead and element columns.
//
// Plan kept: the whole input is read once into a temporary table of finished event rows plus their leads as
// JSON[], the leads are unnested once into a second temporary table of finished lead rows plus their
// experience and education as JSON[], and each of the four COPY statements reads one of those. The other plan,
// read_ndjson directly in each of the four COPY statements (the child tables declaring only the nested
// STRUCT they need, so the reader parses straight into it), was slower: see planDirect for the figures.
//
// Differences from transform.Files, none of which change a row count on a corpus of bare events:
//   - received_at and signature come from buffer envelopes; the corpus has bare events, so they are NULL.
//   - extra (top-level keys other than the known ones) is NULL: the corpus has none, and rebuilding it would
//     need the whole line as JSON a second time.
//   - A key given in two spellings takes the first in a fixed order, not the first in the JSON text.
//   - Timestamps are strings cast with try_cast; Unix-epoch numbers are not read.
//   - Lines that are not JSON objects make DuckDB fail instead of going to quarantine.

// maxObjectSize is read_ndjson's maximum_object_size: well above the longest corpus line (about 600 KB).
const maxObjectSize = 16 << 20

// eventTypeSQL canonicalises event_type_raw as transform.CanonicalEventType does.
const eventTypeSQL = `CASE
    WHEN event_type_raw = 'message.received' THEN 'reply.received'
    WHEN event_type_raw = 'connection.sent' THEN 'connection_request.sent'
    WHEN event_type_raw = 'connection.accepted' THEN 'connection_request.accepted'
    WHEN event_type_raw = 'lead.status.changed' THEN 'lead.updated'
    WHEN event_type_raw IN ('reply.received', 'connection_request.sent', 'connection_request.accepted',
      'lead.updated', 'lead.tag.updated', 'campaign.finished', 'lead_database.search.completed',
      'lead_extractor.job.completed', 'message.sent', 'campaign.started', 'campaign.paused',
      'campaign.resumed') THEN event_type_raw
    ELSE 'unknown' END`

// dataShape is the json_transform structure of an event's data object.
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
  "creditsUsed": "JSON", "credits_used": "JSON", "resultsUrl": "VARCHAR", "results_url": "VARCHAR",
  "leads": ["JSON"]
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
  "skills": ["VARCHAR"], "experience": ["JSON"], "education": ["JSON"]
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

// sourceSQL reads the input: one row per line with the top-level keys, the data object as JSON and the line
// number. {{input}} and {{data}} are replaced; {{data}} is the type given to the data key.
const sourceSQL = `SELECT ordinality::BIGINT AS source_line,
    coalesce(eventId, event_id) AS event_id,
    coalesce(eventType, event_type, '') AS event_type_raw,
    "timestamp" AS ts,
    coalesce(workspaceId, workspace_id) AS workspace_id,
    data
  FROM read_ndjson({{input}},
    columns = {'eventId': 'VARCHAR', 'event_id': 'VARCHAR', 'eventType': 'VARCHAR', 'event_type': 'VARCHAR',
      'timestamp': 'VARCHAR', 'workspaceId': 'VARCHAR', 'workspace_id': 'VARCHAR', 'data': '{{data}}'},
    maximum_object_size = {{maxObjectSize}}) WITH ORDINALITY`

// eventsSQL selects the events table, plus the data.leads array as JSON[] in the last column, leads.
const eventsSQL = `WITH src AS (` + sourceSQL + `),
typed AS (
  SELECT *, ` + eventTypeSQL + ` AS event_type, json_transform(data, '` + dataShape + `') AS d
  FROM src WHERE event_id <> ''
),
flagged AS (
  SELECT *,
    event_type IN ('lead_extractor.job.completed', 'lead_database.search.completed') AS job,
    coalesce(d.creditsUsed, d.credits_used) AS credits
  FROM typed
)
SELECT
  event_id,
  event_type,
  event_type_raw,
  try_cast(ts AS TIMESTAMPTZ) AS occurred_at,
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
  coalesce(CASE WHEN job THEN coalesce(d.campaignName, d.campaign_name) END, d.searchName, d.search_name) AS job_name,
  coalesce(d.campaignType, d.campaign_type) AS job_type,
  d.mode AS job_mode,
  CASE WHEN job THEN coalesce(d.startedAt, d.started_at) END AS job_started_at,
  CASE WHEN job THEN coalesce(d.completedAt, d.completed_at) END AS job_completed_at,
  coalesce(d.durationMs, d.duration_ms) AS duration_ms,
  coalesce(d.requestedLimit, d.requested_limit) AS requested_limit,
  coalesce(d.totalLeadsFound, d.total_leads_found) AS total_leads_found,
  coalesce(d.totalLeadsExtracted, d.total_leads_extracted) AS total_leads_extracted,
  coalesce(d.totalLeadsEnriched, d.total_leads_enriched) AS total_leads_enriched,
  CASE WHEN json_type(credits) = 'OBJECT' THEN try_cast(credits->>'extraction' AS DOUBLE) END AS credits_extraction,
  CASE WHEN json_type(credits) = 'OBJECT' THEN try_cast(credits->>'enrichment' AS DOUBLE) END AS credits_enrichment,
  try_cast(CASE WHEN json_type(credits) = 'OBJECT' THEN credits->>'total' ELSE credits->>'$' END AS DOUBLE)
    AS credits_total,
  coalesce(d.resultsUrl, d.results_url) AS results_url,
  len(d.leads)::BIGINT AS lead_count,
  NULL::VARCHAR AS signature,
  data::VARCHAR AS data,
  NULL::VARCHAR AS extra,
  {{input}} AS source_file,
  source_line,
  d.leads AS leads
FROM flagged`

// leadsSQL selects the leads table from {{events}} (a relation shaped as eventsSQL), plus each lead's
// experience and education arrays as JSON[] in the last two columns.
const leadsSQL = `WITH u AS (
  SELECT event_id, event_type, occurred_at, job_id,
    unnest(leads) AS lead, generate_subscripts(leads, 1) - 1 AS lead_index
  FROM {{events}}
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
  lead::VARCHAR AS lead,
  l.experience AS experience,
  l.education AS education
FROM t`

// experienceSQL selects the experience table from {{leads}} (a relation shaped as leadsSQL).
const experienceSQL = `WITH u AS (
  SELECT event_id, lead_index, lead_id, occurred_at,
    unnest(experience) AS element, generate_subscripts(experience, 1) - 1 AS position
  FROM {{leads}}
),
t AS (SELECT *, json_transform(element, '` + experienceShape + `') AS e FROM u)
SELECT
  event_id,
  lead_index,
  position::BIGINT AS position,
  lead_id,
  occurred_at,
  coalesce(e.title, e.position, e.job_title) AS title,
  coalesce(e.company, e.company_name, e.companyName) AS company,
  e.duration AS duration,
  e.location AS location,
  coalesce(e.start_date, e.startDate, e."start") AS start_date,
  coalesce(e.end_date, e.endDate, e."end") AS end_date,
  e.description AS description,
  element::VARCHAR AS element
FROM t`

// educationSQL selects the education table from {{leads}} (a relation shaped as leadsSQL).
const educationSQL = `WITH u AS (
  SELECT event_id, lead_index, lead_id, occurred_at,
    unnest(education) AS element, generate_subscripts(education, 1) - 1 AS position
  FROM {{leads}}
),
t AS (SELECT *, json_transform(element, '` + educationShape + `') AS e FROM u)
SELECT
  event_id,
  lead_index,
  position::BIGINT AS position,
  lead_id,
  occurred_at,
  coalesce(e.school, e.school_name, e.schoolName, e.institution) AS school,
  coalesce(e.degree, e.degree_name) AS degree,
  coalesce(e.field_of_study, e.fieldOfStudy, e.field) AS field_of_study,
  coalesce(e.start_date, e.startDate, e."start") AS start_date,
  coalesce(e.end_date, e.endDate, e."end") AS end_date,
  element::VARCHAR AS element
FROM t`

// planTemp returns the statements of the plan kept: parse everything once into two temporary tables, then
// copy each table out.
func planTemp(input, outDir string) []string {
	events := expand(eventsSQL, input)
	leads := strings.ReplaceAll(leadsSQL, "{{events}}", "ev")
	children := func(q string) string { return strings.ReplaceAll(q, "{{leads}}", "ld") }
	return []string{
		"CREATE TEMP TABLE ev AS " + events,
		copyTo("SELECT * EXCLUDE (leads) FROM ev", outDir, "events"),
		"CREATE TEMP TABLE ld AS " + leads,
		"DROP TABLE ev",
		copyTo("SELECT * EXCLUDE (experience, education) FROM ld", outDir, "leads"),
		copyTo(children(experienceSQL), outDir, "experience"),
		copyTo(children(educationSQL), outDir, "education"),
	}
}

// planDirect returns the statements of the plan not kept: every COPY reads and parses the input itself.
func planDirect(input, outDir string) []string {
	events := "(" + expand(eventsSQL, input) + ")"
	leads := "(" + strings.ReplaceAll(leadsSQL, "{{events}}", events) + ")"
	children := func(q string) string { return strings.ReplaceAll(q, "{{leads}}", leads) }
	return []string{
		copyTo("SELECT * EXCLUDE (leads) FROM "+events, outDir, "events"),
		copyTo("SELECT * EXCLUDE (experience, education) FROM "+leads, outDir, "leads"),
		copyTo(children(experienceSQL), outDir, "experience"),
		copyTo(children(educationSQL), outDir, "education"),
	}
}

// leadsSourceSQL is a lean relation shaped as eventsSQL for leadsSQL: the reader parses data straight into
// the STRUCT it needs.
const leadsSourceSQL = `(WITH src AS (` + sourceSQL + `),
typed AS (SELECT *, ` + eventTypeSQL + ` AS event_type FROM src WHERE event_id <> '')
SELECT event_id, event_type, try_cast(ts AS TIMESTAMPTZ) AS occurred_at,
  coalesce(CASE WHEN event_type IN ('lead_extractor.job.completed', 'lead_database.search.completed')
    THEN coalesce(data.campaignId, data.campaign_id) END, data.searchId, data.search_id) AS job_id,
  data.leads AS leads
FROM typed)`

const leadsSourceData = `STRUCT(campaignId VARCHAR, campaign_id VARCHAR, searchId VARCHAR, search_id VARCHAR, leads JSON[])`

// childSourceSQL is a lean relation shaped as leadsSQL for experienceSQL and educationSQL; {{list}} is
// experience or education.
const childSourceSQL = `(WITH src AS (` + sourceSQL + `),
u AS (SELECT event_id, try_cast(ts AS TIMESTAMPTZ) AS occurred_at,
    unnest(data.leads) AS l, generate_subscripts(data.leads, 1) - 1 AS lead_index
  FROM src WHERE event_id <> '')
SELECT event_id, lead_index::BIGINT AS lead_index, occurred_at, coalesce(l.id, l.leadId, l.lead_id) AS lead_id,
  l.{{list}} AS {{list}}
FROM u)`

const childSourceData = `STRUCT(leads STRUCT(id VARCHAR, leadId VARCHAR, lead_id VARCHAR, {{list}} JSON[])[])`

func planDirectLean(input, outDir string) []string {
	events := "(" + expand(eventsSQL, input) + ")"
	leadsSrc := strings.ReplaceAll(expandData(leadsSourceSQL, input, leadsSourceData), "{{events}}", "")
	leads := "(" + strings.ReplaceAll(leadsSQL, "{{events}}", leadsSrc) + ")"
	child := func(q, list string) string {
		src := strings.ReplaceAll(expandData(childSourceSQL, input, childSourceData), "{{list}}", list)
		return strings.ReplaceAll(q, "{{leads}}", src)
	}
	return []string{
		copyTo("SELECT * EXCLUDE (leads) FROM "+events, outDir, "events"),
		copyTo("SELECT * EXCLUDE (experience, education) FROM "+leads, outDir, "leads"),
		copyTo(child(experienceSQL, "experience"), outDir, "experience"),
		copyTo(child(educationSQL, "education"), outDir, "education"),
	}
}

func planHybrid(input, outDir string) []string {
	events := "(" + expand(eventsSQL, input) + ")"
	leadsSrc := expandData(leadsSourceSQL, input, leadsSourceData)
	children := func(q string) string { return strings.ReplaceAll(q, "{{leads}}", "ld") }
	return []string{
		copyTo("SELECT * EXCLUDE (leads) FROM "+events, outDir, "events"),
		"CREATE TEMP TABLE ld AS " + strings.ReplaceAll(leadsSQL, "{{events}}", leadsSrc),
		copyTo("SELECT * EXCLUDE (experience, education) FROM ld", outDir, "leads"),
		copyTo(children(experienceSQL), outDir, "experience"),
		copyTo(children(educationSQL), outDir, "education"),
	}
}

func planRaw(input, outDir string) []string {
	raw := expand(sourceSQL, input)
	events := "(" + strings.Replace(eventsSQL, "WITH src AS ("+sourceSQL+")", "WITH src AS (FROM raw)", 1) + ")"
	leads := "(" + strings.ReplaceAll(leadsSQL, "{{events}}", events) + ")"
	children := func(q string) string { return strings.ReplaceAll(q, "{{leads}}", leads) }
	return []string{
		"CREATE TEMP TABLE raw AS " + raw,
		copyTo("SELECT * EXCLUDE (leads) FROM "+strings.ReplaceAll(events, "{{input}}", sqlString(input)), outDir, "events"),
		copyTo("SELECT * EXCLUDE (experience, education) FROM "+strings.ReplaceAll(leads, "{{input}}", sqlString(input)), outDir, "leads"),
		copyTo(strings.ReplaceAll(children(experienceSQL), "{{input}}", sqlString(input)), outDir, "experience"),
		copyTo(strings.ReplaceAll(children(educationSQL), "{{input}}", sqlString(input)), outDir, "education"),
	}
}

func expandData(q, input, data string) string {
	return strings.NewReplacer(
		"{{input}}", sqlString(input),
		"{{data}}", data,
		"{{maxObjectSize}}", fmt.Sprint(maxObjectSize),
	).Replace(q)
}

// expand fills the placeholders of sourceSQL in q.
func expand(q, input string) string {
	return strings.NewReplacer(
		"{{input}}", sqlString(input),
		"{{data}}", "JSON",
		"{{maxObjectSize}}", fmt.Sprint(maxObjectSize),
	).Replace(q)
}

// copyTo wraps a query in a COPY to <outDir>/<table>.parquet.
func copyTo(query, outDir, table string) string {
	path := filepath.Join(outDir, table+".parquet")
	return fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION snappy)", query, sqlString(path))
}

// sqlString quotes s as a SQL string literal.
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// runDuckDB converts input into the four Parquet tables in outDir with DuckDB, on threads threads.
func runDuckDB(ctx context.Context, input, outDir string, threads int, plan string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return fmt.Errorf("open duckdb: %w", err)
	}
	defer db.Close()
	// Temporary tables belong to a connection: run everything on one.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect duckdb: %w", err)
	}
	defer conn.Close()
	stmts := []string{
		fmt.Sprintf("SET threads = %d", threads),
		"SET preserve_insertion_order = true",
		"SET TimeZone = 'UTC'",
		"SET temp_directory = " + sqlString(filepath.Join(outDir, "duckdb.tmp")),
	}
	switch plan {
	case "temp":
		stmts = append(stmts, planTemp(input, outDir)...)
	case "direct":
		stmts = append(stmts, planDirect(input, outDir)...)
	case "lean":
		stmts = append(stmts, planDirectLean(input, outDir)...)
	case "hybrid":
		stmts = append(stmts, planHybrid(input, outDir)...)
	case "raw":
		stmts = append(stmts, planRaw(input, outDir)...)
	default:
		return fmt.Errorf("choose duckdb plan: unknown plan %q", plan)
	}
	for _, s := range stmts {
		start := time.Now()
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("run duckdb statement %.60q: %w", s, err)
		}
		fmt.Fprintf(os.Stderr, "  duckdb %6.2fs %.50s\n", time.Since(start).Seconds(), s)
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
