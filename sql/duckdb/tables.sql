-- Tables of the local DuckDB warehouse. These statements are the schema: a test checks them against the
-- Arrow schemas in transform/schema.go column for column. JSON columns hold JSON text in Parquet and are JSON here.
-- The natural keys (events: event_id; leads: event_id, lead_index; experience and education: event_id,
-- lead_index, position) are unique: the loader inserts only keys not yet present, in one transaction per batch.

CREATE TABLE IF NOT EXISTS events (
  event_id               VARCHAR NOT NULL,          -- SendPilot eventId (natural key; dedup on it)
  event_type             VARCHAR NOT NULL,          -- canonical event name (old names mapped to new; "unknown" otherwise)
  event_type_raw         VARCHAR NOT NULL,          -- event name exactly as sent
  occurred_at            TIMESTAMPTZ,               -- envelope timestamp: when the event happened
  received_at            TIMESTAMPTZ,               -- when our receiver stored it (null for backfilled bare events)
  workspace_id           VARCHAR,
  lead_id                VARCHAR,
  campaign_id            VARCHAR,
  sender_id              VARCHAR,
  linkedin_url           VARCHAR,
  message                VARCHAR,
  reply                  VARCHAR,
  text_is_preview        BOOLEAN,                   -- true when message/reply came from the older *Preview fields (first 100 chars)
  note                   VARCHAR,
  sequence_step          BIGINT,
  previous_status        VARCHAR,
  new_status             VARCHAR,
  changed_by             VARCHAR,
  campaign_name          VARCHAR,
  total_leads            BIGINT,
  started_at             TIMESTAMPTZ,
  paused_at              TIMESTAMPTZ,
  paused_by              VARCHAR,
  resumed_at             TIMESTAMPTZ,
  resumed_by             VARCHAR,
  finished_at            TIMESTAMPTZ,
  accepted_at            TIMESTAMPTZ,
  job_id                 VARCHAR,                   -- lead extractor campaign_id or lead database search_id
  job_name               VARCHAR,
  job_type               VARCHAR,
  job_mode               VARCHAR,
  job_started_at         TIMESTAMPTZ,
  job_completed_at       TIMESTAMPTZ,
  duration_ms            BIGINT,
  requested_limit        BIGINT,
  total_leads_found      BIGINT,
  total_leads_extracted  BIGINT,
  total_leads_enriched   BIGINT,
  credits_extraction     DOUBLE,
  credits_enrichment     DOUBLE,
  credits_total          DOUBLE,
  results_url            VARCHAR,
  lead_count             BIGINT,                    -- number of elements of data.leads
  signature              VARCHAR,                   -- signature verdict recorded by the receiver
  data                   JSON,                      -- the data object, less the leads array (leads are rows of leads)
  extra                  JSON,                      -- top-level keys other than eventId/eventType/timestamp/workspaceId/data, and an unreadable timestamp
  source_file            VARCHAR NOT NULL,          -- lineage: the buffer segment or file the event was read from
  source_line            BIGINT NOT NULL,           -- lineage: line number in source_file
  repairs                VARCHAR[]                 -- what the transform repaired to make the event storable (docs/bad-values.md); [] when nothing
);

CREATE TABLE IF NOT EXISTS leads (
  event_id               VARCHAR NOT NULL,          -- SendPilot eventId (natural key; dedup on it)
  lead_index             BIGINT NOT NULL,           -- position of the lead in data.leads (natural key with event_id)
  event_type             VARCHAR NOT NULL,          -- canonical event name (old names mapped to new; "unknown" otherwise)
  occurred_at            TIMESTAMPTZ,               -- envelope timestamp: when the event happened
  job_id                 VARCHAR,                   -- lead extractor campaign_id or lead database search_id
  lead_id                VARCHAR,
  linkedin_identifier    VARCHAR,
  linkedin_url           VARCHAR,
  first_name             VARCHAR,
  last_name              VARCHAR,
  full_name              VARCHAR,
  headline               VARCHAR,
  summary                VARCHAR,
  location               VARCHAR,
  city                   VARCHAR,
  country                VARCHAR,
  profile_picture_url    VARCHAR,
  company                VARCHAR,
  job_position           VARCHAR,
  job_title              VARCHAR,
  industry               VARCHAR,
  seniority              VARCHAR,
  company_linkedin_url   VARCHAR,
  website                VARCHAR,
  employees              VARCHAR,                   -- company size range, e.g. "51-200" (a string by design)
  email                  VARCHAR,
  phone                  VARCHAR,
  connections            BIGINT,
  followers              BIGINT,
  skills                 VARCHAR[],                 -- the lead's skills
  experience_count       BIGINT,
  education_count        BIGINT,
  lead                   JSON                      -- the lead object, less its experience and education arrays
);

CREATE TABLE IF NOT EXISTS experience (
  event_id               VARCHAR NOT NULL,          -- SendPilot eventId (natural key; dedup on it)
  lead_index             BIGINT NOT NULL,           -- position of the lead in data.leads (natural key with event_id)
  position               BIGINT NOT NULL,           -- position in the lead's array (natural key with event_id, lead_index)
  lead_id                VARCHAR,
  occurred_at            TIMESTAMPTZ,               -- envelope timestamp: when the event happened
  title                  VARCHAR,
  company                VARCHAR,
  duration               VARCHAR,
  location               VARCHAR,
  start_date             VARCHAR,
  end_date               VARCHAR,
  description            VARCHAR,
  element                JSON                      -- the array element as sent
);

CREATE TABLE IF NOT EXISTS education (
  event_id               VARCHAR NOT NULL,          -- SendPilot eventId (natural key; dedup on it)
  lead_index             BIGINT NOT NULL,           -- position of the lead in data.leads (natural key with event_id)
  position               BIGINT NOT NULL,           -- position in the lead's array (natural key with event_id, lead_index)
  lead_id                VARCHAR,
  occurred_at            TIMESTAMPTZ,               -- envelope timestamp: when the event happened
  school                 VARCHAR,
  degree                 VARCHAR,
  field_of_study         VARCHAR,
  start_date             VARCHAR,
  end_date               VARCHAR,
  element                JSON                      -- the array element as sent
);

