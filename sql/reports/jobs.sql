-- Lead extractor jobs and lead database searches, newest first, with leads delivered and credits.
SELECT occurred_at, source, job_id, job_name, job_mode, leads_delivered, total_leads_found, total_leads_extracted,
       total_leads_enriched, credits_total, duration_ms
FROM extractor_jobs
ORDER BY occurred_at DESC, job_id
