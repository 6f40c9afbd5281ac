-- Views of the local DuckDB warehouse: the same names, columns and meaning as sql/bigquery/views.sql (a test
-- runs both on the same fixture and compares every row). The loader creates them, in this order, with the tables.
-- Days and weeks are UTC whatever the session's time zone; weeks start on Monday.
-- The line before each CREATE says what the view is for; sql/README.md documents every column.

-- events_latest: one row per event_id (the latest stored copy), a safety net over the loader's dedup.
CREATE OR REPLACE VIEW events_latest AS
SELECT *
FROM events
QUALIFY row_number() OVER (
  PARTITION BY event_id ORDER BY received_at DESC NULLS LAST, source_file DESC, source_line DESC) = 1;

-- lead_status_current: each lead's latest status, by event timestamp (not arrival order).
CREATE OR REPLACE VIEW lead_status_current AS
SELECT lead_id, campaign_id, linkedin_url, new_status AS status, previous_status, changed_by,
       occurred_at AS status_changed_at, event_id, status_events
FROM (
  SELECT *,
         count(*) OVER (PARTITION BY lead_id) AS status_events,
         row_number() OVER (
           PARTITION BY lead_id ORDER BY occurred_at DESC NULLS LAST, received_at DESC NULLS LAST, event_id DESC) AS rn
  FROM events_latest
  WHERE event_type = 'lead.updated' AND new_status IS NOT NULL AND lead_id IS NOT NULL
) s
WHERE rn = 1;

-- campaigns: one row per outreach campaign: its latest name and lifecycle state.
CREATE OR REPLACE VIEW campaigns AS
SELECT campaign_id,
       first(campaign_name ORDER BY occurred_at DESC NULLS LAST, event_id DESC) FILTER (WHERE campaign_name IS NOT NULL) AS campaign_name,
       first(substr(event_type, 10) ORDER BY occurred_at DESC NULLS LAST, event_id DESC) FILTER (WHERE event_type LIKE 'campaign.%') AS state,
       first(total_leads ORDER BY occurred_at DESC NULLS LAST, event_id DESC) FILTER (WHERE total_leads IS NOT NULL) AS total_leads,
       min(coalesce(started_at, occurred_at)) FILTER (WHERE event_type = 'campaign.started') AS started_at,
       max(coalesce(finished_at, occurred_at)) FILTER (WHERE event_type = 'campaign.finished') AS finished_at,
       count(*) AS events,
       max(occurred_at) AS last_event_at
FROM events_latest
WHERE campaign_id IS NOT NULL AND event_type NOT IN ('lead_extractor.job.completed', 'lead_database.search.completed')
GROUP BY campaign_id;

-- campaign_funnel: per campaign and cohort week: connection requests → accepted → messaged → replied.
CREATE OR REPLACE VIEW campaign_funnel AS
WITH per_lead AS (
  SELECT campaign_id, lead_id,
         min(occurred_at) FILTER (WHERE event_type = 'connection_request.sent') AS requested_at,
         min(coalesce(accepted_at, occurred_at)) FILTER (WHERE event_type = 'connection_request.accepted') AS accepted_at,
         min(occurred_at) FILTER (WHERE event_type = 'message.sent') AS first_message_at,
         min(occurred_at) FILTER (WHERE event_type = 'reply.received') AS first_reply_at
  FROM events_latest
  WHERE campaign_id IS NOT NULL AND lead_id IS NOT NULL
    AND event_type IN ('connection_request.sent', 'connection_request.accepted', 'message.sent', 'reply.received')
  GROUP BY campaign_id, lead_id
),
cohort AS (
  SELECT *,
         -- The week of the lead's first outreach (a connection request, or a message to a lead already connected).
         CAST(date_trunc('week', least(coalesce(requested_at, first_message_at), coalesce(first_message_at, requested_at))
                                 AT TIME ZONE 'UTC') AS DATE) AS week,
         CASE WHEN accepted_at >= requested_at
              THEN (epoch(accepted_at) - epoch(requested_at)) / 3600.0 END AS hours_to_accept,
         CASE WHEN first_reply_at >= coalesce(first_message_at, requested_at)
              THEN (epoch(first_reply_at) - epoch(coalesce(first_message_at, requested_at))) / 3600.0 END AS hours_to_reply
  FROM per_lead
  WHERE requested_at IS NOT NULL OR first_message_at IS NOT NULL
)
SELECT c.campaign_id,
       n.campaign_name,
       c.week,
       count(*) AS leads_contacted,
       count(*) FILTER (WHERE requested_at IS NOT NULL) AS requests_sent,
       count(*) FILTER (WHERE requested_at IS NOT NULL AND accepted_at IS NOT NULL) AS accepted,
       count(*) FILTER (WHERE first_message_at IS NOT NULL) AS messaged,
       count(*) FILTER (WHERE first_reply_at IS NOT NULL) AS replied,
       round(count(*) FILTER (WHERE requested_at IS NOT NULL AND accepted_at IS NOT NULL)
             / nullif(count(*) FILTER (WHERE requested_at IS NOT NULL), 0), 4) AS acceptance_rate,
       round(count(*) FILTER (WHERE first_reply_at IS NOT NULL) / count(*), 4) AS reply_rate,
       round(quantile_cont(hours_to_accept, 0.5), 2) AS median_hours_to_accept,
       round(quantile_cont(hours_to_reply, 0.5), 2) AS median_hours_to_reply
FROM cohort c
LEFT JOIN campaigns n ON n.campaign_id = c.campaign_id
GROUP BY c.campaign_id, n.campaign_name, c.week;

-- sender_daily_activity: per sender account and UTC day (LinkedIn's limits are per sender).
CREATE OR REPLACE VIEW sender_daily_activity AS
SELECT sender_id,
       CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) AS day,
       count(*) FILTER (WHERE event_type = 'connection_request.sent') AS connection_requests_sent,
       count(*) FILTER (WHERE event_type = 'connection_request.accepted') AS connections_accepted,
       count(*) FILTER (WHERE event_type = 'message.sent') AS messages_sent,
       count(*) FILTER (WHERE event_type = 'reply.received') AS replies_received,
       count(DISTINCT lead_id) AS leads_touched,
       count(DISTINCT campaign_id) AS campaigns
FROM events_latest
WHERE sender_id IS NOT NULL AND occurred_at IS NOT NULL
GROUP BY sender_id, CAST(occurred_at AT TIME ZONE 'UTC' AS DATE);

-- lead_profiles: the latest profile per LinkedIn URL across extractor jobs and database searches.
CREATE OR REPLACE VIEW lead_profiles AS
WITH lead_rows AS (
  SELECT *, lower(rtrim(linkedin_url, '/')) AS linkedin_key
  FROM leads
  WHERE linkedin_url IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY event_id, lead_index ORDER BY job_id) = 1
),
seen AS (
  SELECT linkedin_key, count(DISTINCT job_id) AS jobs_seen, min(occurred_at) AS first_seen_at
  FROM lead_rows
  GROUP BY linkedin_key
)
SELECT p.linkedin_key, linkedin_url, lead_id, full_name, first_name, last_name, headline, job_title, company,
       location, country, industry, seniority, email, phone, connections, followers,
       experience_count, education_count, job_id, event_id, lead_index,
       jobs_seen, first_seen_at, occurred_at AS last_seen_at
FROM (
  SELECT *,
         row_number() OVER (
           PARTITION BY linkedin_key ORDER BY occurred_at DESC NULLS LAST, event_id DESC, lead_index DESC) AS rn
  FROM lead_rows
) p
JOIN seen USING (linkedin_key)
WHERE rn = 1;

-- replies: every reply with its lead and campaign context (older replyPreview and newer reply unified).
CREATE OR REPLACE VIEW replies AS
SELECT e.event_id, e.occurred_at AS replied_at, e.lead_id, e.campaign_id, c.campaign_name, e.sender_id,
       e.linkedin_url, e.reply AS reply_text, e.text_is_preview AS is_preview, e.event_type_raw,
       p.full_name, p.headline, p.company, s.status AS lead_status
FROM events_latest e
LEFT JOIN campaigns c ON c.campaign_id = e.campaign_id
LEFT JOIN lead_profiles p ON p.linkedin_key = lower(rtrim(e.linkedin_url, '/'))
LEFT JOIN lead_status_current s ON s.lead_id = e.lead_id
WHERE e.event_type = 'reply.received';

-- extractor_jobs: one row per lead extractor job or lead database search (its latest event).
CREATE OR REPLACE VIEW extractor_jobs AS
SELECT CASE event_type WHEN 'lead_extractor.job.completed' THEN 'lead_extractor' ELSE 'lead_database' END AS source,
       job_id, job_name, job_type, job_mode, job_started_at, job_completed_at, duration_ms, requested_limit,
       total_leads_found, total_leads_extracted, total_leads_enriched, lead_count AS leads_delivered,
       credits_extraction, credits_enrichment, credits_total, results_url, event_id, occurred_at
FROM events_latest
WHERE event_type IN ('lead_extractor.job.completed', 'lead_database.search.completed')
QUALIFY row_number() OVER (
  PARTITION BY event_type, coalesce(job_id, event_id) ORDER BY occurred_at DESC NULLS LAST, event_id DESC) = 1;

-- credits_daily: credits and leads per UTC day (of job completion) and source.
CREATE OR REPLACE VIEW credits_daily AS
SELECT CAST(coalesce(job_completed_at, occurred_at) AT TIME ZONE 'UTC' AS DATE) AS day,
       source,
       count(*) AS jobs,
       sum(leads_delivered) AS leads_delivered,
       round(sum(credits_extraction), 4) AS credits_extraction,
       round(sum(credits_enrichment), 4) AS credits_enrichment,
       round(sum(credits_total), 4) AS credits_total
FROM extractor_jobs
GROUP BY CAST(coalesce(job_completed_at, occurred_at) AT TIME ZONE 'UTC' AS DATE), source;
