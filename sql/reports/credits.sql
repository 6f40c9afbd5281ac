-- Credits used per day and source (extraction, enrichment, total), newest day first.
SELECT day, source, jobs, leads_delivered, credits_extraction, credits_enrichment, credits_total
FROM credits_daily
ORDER BY day DESC, source
