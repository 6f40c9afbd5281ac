-- Tables of the BigQuery dataset. These statements are the schema: a test checks them against the Arrow
-- schemas in transform/schema.go column for column. JSON columns arrive as STRING in Parquet (BigQuery cannot
-- load JSON from Parquet) and are converted with PARSE_JSON when a batch is merged.
-- `${dataset}` is replaced by the configured dataset. The loader sets the same partitioning and clustering
-- through the API when it creates a table.

CREATE TABLE IF NOT EXISTS `${dataset}.events` (
  event_id               STRING NOT NULL,           -- SendPilot eventId (natural key; dedup on it)
  event_type             STRING NOT NULL,           -- canonical event name (old names mapped to new; "unknown" otherwise)
  event_type_raw         STRING NOT NULL,           -- event name exactly as sent
  occurred_at            TIMESTAMP,                 -- envelope timestamp: when the event happened
  received_at            TIMESTAMP,                 -- when our receiver stored it (null for backfilled bare events)
  workspace_id           STRING,
  lead_id                STRING,
  campaign_id            STRING,
  sender_id              STRING,
  linkedin_url           STRING,
  message                STRING,
  reply                  STRING,
  text_is_preview        BOOL,                      -- true when message/reply came from the older *Preview fields (first 100 chars)
  note                   STRING,
  sequence_step          INT64,
  previous_status        STRING,
  new_status             STRING,
  changed_by             STRING,
  campaign_name          STRING,
  total_leads            INT64,
  started_at             TIMESTAMP,
  paused_at              TIMESTAMP,
  paused_by              STRING,
  resumed_at             TIMESTAMP,
  resumed_by             STRING,
  finished_at            TIMESTAMP,
  accepted_at            TIMESTAMP,
  job_id                 STRING,                    -- lead extractor campaign_id or lead database search_id
  job_name               STRING,
  job_type               STRING,
  job_mode               STRING,
  job_started_at         TIMESTAMP,
  job_completed_at       TIMESTAMP,
  duration_ms            INT64,
  requested_limit        INT64,
  total_leads_found      INT64,
  total_leads_extracted  INT64,
  total_leads_enriched   INT64,
  credits_extraction     FLOAT64,
  credits_enrichment     FLOAT64,
  credits_total          FLOAT64,
  results_url            STRING,
  lead_count             INT64,                     -- number of elements of data.leads
  signature              STRING,                    -- signature verdict recorded by the receiver
  data                   JSON,                      -- the data object, less the leads array (leads are rows of leads)
  extra                  JSON,                      -- top-level keys other than eventId/eventType/timestamp/workspaceId/data, and an unreadable timestamp
  source_file            STRING NOT NULL,           -- lineage: the buffer segment or file the event was read from
  source_line            INT64 NOT NULL,            -- lineage: line number in source_file
  repairs                ARRAY<STRING>              -- what the transform repaired to make the event storable (docs/bad-values.md); [] when nothing
)
PARTITION BY DATE(occurred_at)
CLUSTER BY event_type, campaign_id;

CREATE TABLE IF NOT EXISTS `${dataset}.leads` (
  event_id               STRING NOT NULL,           -- SendPilot eventId (natural key; dedup on it)
  lead_index             INT64 NOT NULL,            -- position of the lead in data.leads (natural key with event_id)
  event_type             STRING NOT NULL,           -- canonical event name (old names mapped to new; "unknown" otherwise)
  occurred_at            TIMESTAMP,                 -- envelope timestamp: when the event happened
  job_id                 STRING,                    -- lead extractor campaign_id or lead database search_id
  lead_id                STRING,
  linkedin_identifier    STRING,
  linkedin_url           STRING,
  first_name             STRING,
  last_name              STRING,
  full_name              STRING,
  headline               STRING,
  summary                STRING,
  location               STRING,
  city                   STRING,
  country                STRING,
  profile_picture_url    STRING,
  company                STRING,
  job_position           STRING,
  job_title              STRING,
  industry               STRING,
  seniority              STRING,
  company_linkedin_url   STRING,
  website                STRING,
  employees              STRING,                    -- company size range, e.g. "51-200" (a string by design)
  email                  STRING,
  phone                  STRING,
  connections            INT64,
  followers              INT64,
  skills                 ARRAY<STRING>,             -- the lead's skills
  experience_count       INT64,
  education_count        INT64,
  lead                   JSON                       -- the lead object, less its experience and education arrays
)
PARTITION BY DATE(occurred_at)
CLUSTER BY event_type, job_id;

CREATE TABLE IF NOT EXISTS `${dataset}.experience` (
  event_id               STRING NOT NULL,           -- SendPilot eventId (natural key; dedup on it)
  lead_index             INT64 NOT NULL,            -- position of the lead in data.leads (natural key with event_id)
  position               INT64 NOT NULL,            -- position in the lead's array (natural key with event_id, lead_index)
  lead_id                STRING,
  occurred_at            TIMESTAMP,                 -- envelope timestamp: when the event happened
  title                  STRING,
  company                STRING,
  duration               STRING,
  location               STRING,
  start_date             STRING,
  end_date               STRING,
  description            STRING,
  element                JSON                       -- the array element as sent
)
PARTITION BY DATE(occurred_at)
CLUSTER BY lead_id;

CREATE TABLE IF NOT EXISTS `${dataset}.education` (
  event_id               STRING NOT NULL,           -- SendPilot eventId (natural key; dedup on it)
  lead_index             INT64 NOT NULL,            -- position of the lead in data.leads (natural key with event_id)
  position               INT64 NOT NULL,            -- position in the lead's array (natural key with event_id, lead_index)
  lead_id                STRING,
  occurred_at            TIMESTAMP,                 -- envelope timestamp: when the event happened
  school                 STRING,
  degree                 STRING,
  field_of_study         STRING,
  start_date             STRING,
  end_date               STRING,
  element                JSON                       -- the array element as sent
)
PARTITION BY DATE(occurred_at)
CLUSTER BY lead_id;

