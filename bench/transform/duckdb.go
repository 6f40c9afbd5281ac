package main

import (
	"context"
	"database/sql"
	"encoding/json"
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
// leads.lead leaves out the lead's experience and education arrays, which become rows of their own tables;
// and leads.lead, experience.element and education.element leave out every key whose typed column holds the
// value as sent (restOf), so both sides write the same, much smaller, JSON. On 68 MB and 250 MB prefixes of
// the 1 GB bench corpus, and on 250 MB of the old-names and wide-leads shapes, its four files hold exactly
// the rows of ours, value for value and in the same order: every column of every row, joined on the row's
// position in the file, compared with IS DISTINCT FROM; the JSON columns are equal as text, not only after
// json() reformats both. TestDuckDBPlanMatchesTransform checks the same on a small corpus and on leads whose
// keys come in other spellings and types.
//
// Plan kept: read_ndjson directly in each of the four COPY statements. Every COPY reads the whole input, but
// declares the data column as only the STRUCT it needs, so the reader parses each line straight into it: the
// events COPY reads data as JSON (its text is a column) and json_transforms it once; the leads COPY reads
// data.leads as JSON[] (each element's text is the lead column) and json_transforms each lead once; the
// experience and education COPYs read data.leads[].experience (or education) as JSON[] and json_transform
// each element once. Arrays a COPY does not need are skipped by the reader, never turned into text. To leave
// typed values out of a lead or element, its COPY also takes the JSON type of every key in one json_type call
// (one more parse of the object) and applies one json_merge_patch that names only the keys to drop.
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
// Differences from transform.Files, none of which changes a row count and none of which occurs in the bench
// corpus (every lead and element JSON of ours is {} on it, so no key there is kept for any reason below):
//   - received_at and signature come from buffer envelopes; the corpus has bare events, so they are NULL.
//   - extra (top-level keys other than the known ones) is NULL: the corpus has none, and rebuilding it would
//     need the whole line as JSON a second time.
//   - repairs is always empty: the plan repairs nothing (see the last item), and ours repairs nothing in the
//     corpus.
//   - A key given in two spellings takes the first in a fixed order, not the first in the JSON text; the JSON
//     column then leaves out that spelling and keeps the other.
//   - An integer column takes whatever json_transform casts (true is 1, 1.5 is 2), where ours reads only whole
//     numbers and strings holding them and else tries the next spelling, which then is left out of the JSON.
//   - A JSON integer written -0 is left out (json_type says BIGINT, and its text reads back as 0), where ours
//     keeps it as not spelled as the integer.
//   - A key given twice in one object is left out twice; ours leaves out the first only.
//   - Text is never cut: text over 1 MiB (ours cuts it and keeps the whole value in the JSON) is stored whole
//     and left out of the JSON, and so are skills over 1 MiB in all.
//   - Timestamps are strings cast with try_cast; Unix-epoch numbers are not read.
//   - lead_count is json_array_length, which is 0 rather than NULL when data.leads is not an array, and
//     json_merge_patch drops data.leads even when it is not an array.
//   - JSON is written as DuckDB formats it: a number such as 5e2 becomes 500.0.
//   - A line that is not a JSON object, or whose data does not fit the declared STRUCT (a lead that is not an
//     object, or an experience or education that is neither an array nor null, in the child COPYs), fails the
//     run instead of going to quarantine.

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

// keyKind says how a typed column reads its keys, and so when a JSON column may leave a key out.
type keyKind int

const (
	textKey   keyKind = iota // VARCHAR; left out when the key holds a JSON string (text is never cut here)
	intKey                   // BIGINT; left out when the key holds a JSON integer
	skillsKey                // VARCHAR[]; left out when the key holds an array of strings only
)

// typedColumn is one typed column of leads, experience or education: its name and the key spellings it is
// read from, in the order coalesce tries them. These lists are the only place the plan names lead, experience
// and education keys: the json_transform shapes, the column expressions and the keys the JSON columns leave
// out are all generated from them.
type typedColumn struct {
	name string
	kind keyKind
	keys []string
}

// leadColumns are the typed columns of leads read from a lead object, in table order.
var leadColumns = []typedColumn{
	{"lead_id", textKey, []string{"id", "leadId", "lead_id"}},
	{"linkedin_identifier", textKey, []string{"linkedin_identifier", "linkedinIdentifier"}},
	{"linkedin_url", textKey, []string{"linkedin_url", "linkedinUrl"}},
	{"first_name", textKey, []string{"first_name", "firstName"}},
	{"last_name", textKey, []string{"last_name", "lastName"}},
	{"full_name", textKey, []string{"full_name", "fullName", "name"}},
	{"headline", textKey, []string{"headline"}},
	{"summary", textKey, []string{"summary", "about"}},
	{"location", textKey, []string{"location"}},
	{"city", textKey, []string{"city"}},
	{"country", textKey, []string{"country"}},
	{"profile_picture_url", textKey, []string{"profile_picture_url", "profilePictureUrl"}},
	{"company", textKey, []string{"company", "company_name", "companyName"}},
	{"job_position", textKey, []string{"job_position", "jobPosition"}},
	{"job_title", textKey, []string{"job_title", "jobTitle", "title"}},
	{"industry", textKey, []string{"industry"}},
	{"seniority", textKey, []string{"seniority"}},
	{"company_linkedin_url", textKey, []string{"company_linkedin_url", "companyLinkedinUrl"}},
	{"website", textKey, []string{"website"}},
	{"employees", textKey, []string{"employees", "company_size", "companySize"}},
	{"email", textKey, []string{"email"}},
	{"phone", textKey, []string{"phone"}},
	{"connections", intKey, []string{"connections", "connectionCount", "connection_count"}},
	{"followers", intKey, []string{"followers", "followerCount", "follower_count"}},
	{"skills", skillsKey, []string{"skills"}},
}

// leadArrays are the lead keys whose arrays become rows of their own tables, left out of leads.lead.
var leadArrays = []string{"experience", "education"}

// experienceColumns are the typed columns of experience read from an element, in table order.
var experienceColumns = []typedColumn{
	{"title", textKey, []string{"title", "position", "job_title"}},
	{"company", textKey, []string{"company", "company_name", "companyName"}},
	{"duration", textKey, []string{"duration"}},
	{"location", textKey, []string{"location"}},
	{"start_date", textKey, []string{"start_date", "startDate", "start"}},
	{"end_date", textKey, []string{"end_date", "endDate", "end"}},
	{"description", textKey, []string{"description"}},
}

// educationColumns are the typed columns of education read from an element, in table order.
var educationColumns = []typedColumn{
	{"school", textKey, []string{"school", "school_name", "schoolName", "institution"}},
	{"degree", textKey, []string{"degree", "degree_name"}},
	{"field_of_study", textKey, []string{"field_of_study", "fieldOfStudy", "field"}},
	{"start_date", textKey, []string{"start_date", "startDate", "start"}},
	{"end_date", textKey, []string{"end_date", "endDate", "end"}},
}

// shapeOf returns the json_transform structure that reads every key of cols, plus each of arrays as a list
// (only its length is used). skills is read as its JSON text, so that its element types can be checked on
// that small text rather than on the whole object.
func shapeOf(cols []typedColumn, arrays []string) string {
	var b strings.Builder
	b.WriteString("{")
	add := func(key, typ string) {
		if b.Len() > 1 {
			b.WriteString(", ")
		}
		b.WriteString(jsonString(key) + ": " + typ)
	}
	for _, c := range cols {
		typ := map[keyKind]string{textKey: `"VARCHAR"`, intKey: `"BIGINT"`, skillsKey: `"JSON"`}[c.kind]
		for _, k := range c.keys {
			add(k, typ)
		}
	}
	for _, a := range arrays {
		add(a, `["NULL"]`)
	}
	return b.String() + "}"
}

// coalesceOf returns the expression of column c from the struct alias: the first spelling that is not null.
func coalesceOf(alias string, c typedColumn) string {
	if len(c.keys) == 1 {
		return alias + "." + sqlIdent(c.keys[0])
	}
	fields := make([]string, len(c.keys))
	for i, k := range c.keys {
		fields[i] = alias + "." + sqlIdent(k)
	}
	return "coalesce(" + strings.Join(fields, ", ") + ")"
}

// columnsOf returns the select list of cols, read from the struct alias.
func columnsOf(alias string, cols []typedColumn) string {
	exprs := make([]string, len(cols))
	for i, c := range cols {
		e := coalesceOf(alias, c)
		if c.kind == skillsKey {
			e = `list_filter(json_transform(` + e + `, '["VARCHAR"]'), s -> s IS NOT NULL)`
		}
		exprs[i] = e + " AS " + sqlIdent(c.name)
	}
	return strings.Join(exprs, ",\n  ")
}

// typesOf returns the expression listing the JSON type of the object obj itself (at index 1) and of each key
// of cols and of arrays (in their order, from index 2), so one parse of obj answers every test restOf makes.
func typesOf(obj string, cols []typedColumn, arrays []string) string {
	paths := []string{sqlString("$")}
	for _, k := range keysOf(cols, arrays) {
		paths = append(paths, sqlString("$."+jsonString(k)))
	}
	return "json_type(" + obj + ", [" + strings.Join(paths, ", ") + "])"
}

// keysOf lists the keys of cols, then arrays, in the order typesOf gives their types.
func keysOf(cols []typedColumn, arrays []string) []string {
	var keys []string
	for _, c := range cols {
		keys = append(keys, c.keys...)
	}
	return append(keys, arrays...)
}

// restOf returns the expression of the JSON column: obj less every key whose typed column holds its value as
// sent, and less each of arrays that is an array, as transform.Files writes it. types is typesOf's list and
// alias the json_transform struct. A key is left out when it is the spelling coalesce chose (every earlier
// spelling is null) and it holds a JSON string (text column), a JSON integer (integer column; json_type tells
// integers from other numbers) or an array of strings only (skills). The keys are removed with one merge
// patch naming them with null; an obj that is not an object is kept as it is, and a JSON null (which
// unnest gives as SQL NULL) is written as null. The result is VARCHAR.
func restOf(obj, types, alias string, cols []typedColumn, arrays []string) string {
	var drops []string
	at := 2 // index of the next key's type in types
	typeIs := func(i int, names ...string) string {
		if len(names) == 1 {
			return fmt.Sprintf("%s[%d] = %s", types, i, sqlString(names[0]))
		}
		quoted := make([]string, len(names))
		for j, n := range names {
			quoted[j] = sqlString(n)
		}
		return fmt.Sprintf("%s[%d] IN (%s)", types, i, strings.Join(quoted, ", "))
	}
	for _, c := range cols {
		for i, k := range c.keys {
			var cond []string
			switch c.kind {
			case textKey:
				cond = append(cond, typeIs(at, "VARCHAR"))
			case intKey:
				cond = append(cond, typeIs(at, "BIGINT", "UBIGINT"), alias+"."+sqlIdent(k)+" IS NOT NULL")
			case skillsKey:
				f := alias + "." + sqlIdent(k)
				cond = append(cond, typeIs(at, "ARRAY"), "list_filter(json_type("+f+", '$[*]'), t -> t <> 'VARCHAR') = []")
			}
			for _, earlier := range c.keys[:i] {
				cond = append(cond, alias+"."+sqlIdent(earlier)+" IS NULL")
			}
			drops = append(drops, "CASE WHEN "+strings.Join(cond, " AND ")+" THEN "+sqlString(jsonString(k)+":null")+" END")
			at++
		}
	}
	for _, a := range arrays {
		drops = append(drops, "CASE WHEN "+typeIs(at, "ARRAY")+" THEN "+sqlString(jsonString(a)+":null")+" END")
		at++
	}
	patch := "('{' || concat_ws(',',\n      " + strings.Join(drops, ",\n      ") + ") || '}')::JSON"
	return "coalesce(CASE WHEN " + typeIs(1, "OBJECT") + " THEN json_merge_patch(" + obj + ", " + patch + ") ELSE " + obj + " END::VARCHAR, 'null')"
}

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
  source_line,
  []::VARCHAR[] AS repairs
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
t AS (
  SELECT *, json_transform(lead, ` + sqlString(shapeOf(leadColumns, leadArrays)) + `) AS l,
    ` + typesOf("lead", leadColumns, leadArrays) + ` AS k
  FROM u
)
SELECT
  event_id,
  lead_index::BIGINT AS lead_index,
  event_type,
  occurred_at,
  job_id,
  ` + columnsOf("l", leadColumns) + `,
  len(l.experience)::BIGINT AS experience_count,
  len(l.education)::BIGINT AS education_count,
  ` + restOf("lead", "k", "l", leadColumns, leadArrays) + ` AS lead
FROM t`
}

// childQuery selects the experience or education table (list names the lead's array, cols its typed columns):
// the keys and parent columns, the typed columns and the element's JSON less what they hold.
func childQuery(input, list string, cols []typedColumn) string {
	var leadID []string
	for _, k := range leadColumns[0].keys {
		leadID = append(leadID, sqlIdent(k)+" VARCHAR")
	}
	data := `STRUCT(leads STRUCT(` + strings.Join(leadID, ", ") + `, ` + list + ` JSON[])[])`
	return `WITH src AS (` + readEvents(input, data, false) + `),
ld AS (
  SELECT event_id, occurred_at, unnest(data.leads) AS l, generate_subscripts(data.leads, 1) - 1 AS lead_index
  FROM src
),
u AS (
  SELECT event_id, lead_index, ` + coalesceOf("l", leadColumns[0]) + ` AS lead_id, occurred_at,
    unnest(l.` + list + `) AS element, generate_subscripts(l.` + list + `, 1) - 1 AS position
  FROM ld
),
t AS (
  SELECT *, json_transform(element, ` + sqlString(shapeOf(cols, nil)) + `) AS e,
    ` + typesOf("element", cols, nil) + ` AS k
  FROM u
)
SELECT
  event_id,
  lead_index::BIGINT AS lead_index,
  position::BIGINT AS position,
  lead_id,
  occurred_at,
  ` + columnsOf("e", cols) + `,
  ` + restOf("element", "k", "e", cols, nil) + ` AS element
FROM t`
}

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
		{"experience", copyTo(childQuery(input, "experience", experienceColumns), outDir, "experience")},
		{"education", copyTo(childQuery(input, "education", educationColumns), outDir, "education")},
	}
}

// copyTo wraps a query in a COPY to <outDir>/<table>.parquet.
func copyTo(query, outDir, table string) string {
	path := filepath.Join(outDir, table+".parquet")
	return "COPY (" + query + ") TO " + sqlString(path) + " (FORMAT parquet, COMPRESSION snappy)"
}

// sqlIdent quotes s as a SQL identifier.
func sqlIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
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
