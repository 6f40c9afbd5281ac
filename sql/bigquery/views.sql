-- Views of the BigQuery dataset: the same names, columns and meaning as sql/duckdb/views.sql (a test runs both
-- on the same fixture and compares every row). The loader creates them, in this order, after the tables, and
-- replaces one only when its SQL here changes. `${dataset}` is replaced by the configured dataset.
-- Days and weeks are UTC; weeks start on Monday.
-- The line before each CREATE says what the view is for; sql/README.md documents every column.

-- events_latest: one row per event_id (the latest stored copy), a safety net over the loader's dedup.
CREATE OR REPLACE VIEW `${dataset}.events_latest` AS
SELECT *
FROM `${dataset}.events`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY event_id ORDER BY received_at DESC NULLS LAST, source_file DESC, source_line DESC) = 1;

-- lead_status_current: each lead's latest status, by event timestamp (not arrival order).
CREATE OR REPLACE VIEW `${dataset}.lead_status_current` AS
SELECT lead_id, campaign_id, linkedin_url, new_status AS status, previous_status, changed_by,
       occurred_at AS status_changed_at, event_id, status_events
FROM (
  SELECT *,
         COUNT(*) OVER (PARTITION BY lead_id) AS status_events,
         ROW_NUMBER() OVER (
           PARTITION BY lead_id ORDER BY occurred_at DESC NULLS LAST, received_at DESC NULLS LAST, event_id DESC) AS rn
  FROM `${dataset}.events_latest`
  WHERE event_type = 'lead.updated' AND new_status IS NOT NULL AND lead_id IS NOT NULL
)
WHERE rn = 1;

-- campaigns: one row per outreach campaign: its latest name and lifecycle state.
CREATE OR REPLACE VIEW `${dataset}.campaigns` AS
SELECT campaign_id,
       ARRAY_AGG(campaign_name IGNORE NULLS ORDER BY occurred_at DESC, event_id DESC LIMIT 1)[SAFE_OFFSET(0)] AS campaign_name,
       ARRAY_AGG(IF(event_type LIKE 'campaign.%', SUBSTR(event_type, 10), NULL) IGNORE NULLS
                 ORDER BY occurred_at DESC, event_id DESC LIMIT 1)[SAFE_OFFSET(0)] AS state,
       ARRAY_AGG(total_leads IGNORE NULLS ORDER BY occurred_at DESC, event_id DESC LIMIT 1)[SAFE_OFFSET(0)] AS total_leads,
       MIN(IF(event_type = 'campaign.started', COALESCE(started_at, occurred_at), NULL)) AS started_at,
       MAX(IF(event_type = 'campaign.finished', COALESCE(finished_at, occurred_at), NULL)) AS finished_at,
       COUNT(*) AS events,
       MAX(occurred_at) AS last_event_at
FROM `${dataset}.events_latest`
WHERE campaign_id IS NOT NULL AND event_type NOT IN ('lead_extractor.job.completed', 'lead_database.search.completed')
GROUP BY campaign_id;

-- campaign_funnel: per campaign and cohort week: connection requests → accepted → messaged → replied.
CREATE OR REPLACE VIEW `${dataset}.campaign_funnel` AS
WITH per_lead AS (
  SELECT campaign_id, lead_id,
         MIN(IF(event_type = 'connection_request.sent', occurred_at, NULL)) AS requested_at,
         MIN(IF(event_type = 'connection_request.accepted', COALESCE(accepted_at, occurred_at), NULL)) AS accepted_at,
         MIN(IF(event_type = 'message.sent', occurred_at, NULL)) AS first_message_at,
         MIN(IF(event_type = 'reply.received', occurred_at, NULL)) AS first_reply_at
  FROM `${dataset}.events_latest`
  WHERE campaign_id IS NOT NULL AND lead_id IS NOT NULL
    AND event_type IN ('connection_request.sent', 'connection_request.accepted', 'message.sent', 'reply.received')
  GROUP BY campaign_id, lead_id
),
cohort AS (
  SELECT *,
         -- The week of the lead's first outreach (a connection request, or a message to a lead already connected).
         DATE_TRUNC(DATE(LEAST(COALESCE(requested_at, first_message_at), COALESCE(first_message_at, requested_at))),
                    WEEK(MONDAY)) AS week,
         IF(accepted_at >= requested_at,
            TIMESTAMP_DIFF(accepted_at, requested_at, MICROSECOND) / 3600e6, NULL) AS hours_to_accept,
         IF(first_reply_at >= COALESCE(first_message_at, requested_at),
            TIMESTAMP_DIFF(first_reply_at, COALESCE(first_message_at, requested_at), MICROSECOND) / 3600e6, NULL) AS hours_to_reply
  FROM per_lead
  WHERE requested_at IS NOT NULL OR first_message_at IS NOT NULL
),
medians AS (
  SELECT *,
         PERCENTILE_CONT(hours_to_accept, 0.5) OVER (PARTITION BY campaign_id, week) AS median_accept,
         PERCENTILE_CONT(hours_to_reply, 0.5) OVER (PARTITION BY campaign_id, week) AS median_reply
  FROM cohort
)
SELECT m.campaign_id,
       ANY_VALUE(n.campaign_name) AS campaign_name,
       m.week,
       COUNT(*) AS leads_contacted,
       COUNTIF(requested_at IS NOT NULL) AS requests_sent,
       COUNTIF(requested_at IS NOT NULL AND m.accepted_at IS NOT NULL) AS accepted,
       COUNTIF(first_message_at IS NOT NULL) AS messaged,
       COUNTIF(first_reply_at IS NOT NULL) AS replied,
       ROUND(SAFE_DIVIDE(COUNTIF(requested_at IS NOT NULL AND m.accepted_at IS NOT NULL),
                         COUNTIF(requested_at IS NOT NULL)), 4) AS acceptance_rate,
       ROUND(COUNTIF(first_reply_at IS NOT NULL) / COUNT(*), 4) AS reply_rate,
       ROUND(ANY_VALUE(median_accept), 2) AS median_hours_to_accept,
       ROUND(ANY_VALUE(median_reply), 2) AS median_hours_to_reply
FROM medians m
LEFT JOIN `${dataset}.campaigns` n ON n.campaign_id = m.campaign_id
GROUP BY m.campaign_id, m.week;

-- sender_daily_activity: per sender account and UTC day (LinkedIn's limits are per sender).
CREATE OR REPLACE VIEW `${dataset}.sender_daily_activity` AS
SELECT sender_id,
       DATE(occurred_at) AS day,
       COUNTIF(event_type = 'connection_request.sent') AS connection_requests_sent,
       COUNTIF(event_type = 'connection_request.accepted') AS connections_accepted,
       COUNTIF(event_type = 'message.sent') AS messages_sent,
       COUNTIF(event_type = 'reply.received') AS replies_received,
       COUNT(DISTINCT lead_id) AS leads_touched,
       COUNT(DISTINCT campaign_id) AS campaigns
FROM `${dataset}.events_latest`
WHERE sender_id IS NOT NULL AND occurred_at IS NOT NULL
GROUP BY sender_id, day;

-- lead_profiles: the latest profile per LinkedIn URL across extractor jobs and database searches.
CREATE OR REPLACE VIEW `${dataset}.lead_profiles` AS
WITH lead_rows AS (
  SELECT *, LOWER(RTRIM(linkedin_url, '/')) AS linkedin_key
  FROM `${dataset}.leads`
  WHERE linkedin_url IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id, lead_index ORDER BY job_id) = 1
),
seen AS (
  SELECT linkedin_key, COUNT(DISTINCT job_id) AS jobs_seen, MIN(occurred_at) AS first_seen_at
  FROM lead_rows
  GROUP BY linkedin_key
)
SELECT p.linkedin_key, linkedin_url, lead_id, full_name, first_name, last_name, headline, job_title, company,
       location, country, industry, seniority, email, phone, connections, followers,
       experience_count, education_count, job_id, event_id, lead_index,
       jobs_seen, first_seen_at, occurred_at AS last_seen_at
FROM (
  SELECT *,
         ROW_NUMBER() OVER (
           PARTITION BY linkedin_key ORDER BY occurred_at DESC NULLS LAST, event_id DESC, lead_index DESC) AS rn
  FROM lead_rows
) p
JOIN seen USING (linkedin_key)
WHERE rn = 1;

-- replies: every reply with its lead and campaign context (older replyPreview and newer reply unified).
CREATE OR REPLACE VIEW `${dataset}.replies` AS
SELECT e.event_id, e.occurred_at AS replied_at, e.lead_id, e.campaign_id, c.campaign_name, e.sender_id,
       e.linkedin_url, e.reply AS reply_text, e.text_is_preview AS is_preview, e.event_type_raw,
       p.full_name, p.headline, p.company, s.status AS lead_status
FROM `${dataset}.events_latest` e
LEFT JOIN `${dataset}.campaigns` c ON c.campaign_id = e.campaign_id
LEFT JOIN `${dataset}.lead_profiles` p ON p.linkedin_key = LOWER(RTRIM(e.linkedin_url, '/'))
LEFT JOIN `${dataset}.lead_status_current` s ON s.lead_id = e.lead_id
WHERE e.event_type = 'reply.received';

-- extractor_jobs: one row per lead extractor job or lead database search (its latest event).
CREATE OR REPLACE VIEW `${dataset}.extractor_jobs` AS
SELECT IF(event_type = 'lead_extractor.job.completed', 'lead_extractor', 'lead_database') AS source,
       job_id, job_name, job_type, job_mode, job_started_at, job_completed_at, duration_ms, requested_limit,
       total_leads_found, total_leads_extracted, total_leads_enriched, lead_count AS leads_delivered,
       credits_extraction, credits_enrichment, credits_total, results_url, event_id, occurred_at
FROM `${dataset}.events_latest`
WHERE event_type IN ('lead_extractor.job.completed', 'lead_database.search.completed')
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY event_type, COALESCE(job_id, event_id) ORDER BY occurred_at DESC NULLS LAST, event_id DESC) = 1;

-- credits_daily: credits and leads per UTC day (of job completion) and source.
CREATE OR REPLACE VIEW `${dataset}.credits_daily` AS
SELECT DATE(COALESCE(job_completed_at, occurred_at)) AS day,
       source,
       COUNT(*) AS jobs,
       SUM(leads_delivered) AS leads_delivered,
       ROUND(SUM(credits_extraction), 4) AS credits_extraction,
       ROUND(SUM(credits_enrichment), 4) AS credits_enrichment,
       ROUND(SUM(credits_total), 4) AS credits_total
FROM `${dataset}.extractor_jobs`
GROUP BY day, source;
