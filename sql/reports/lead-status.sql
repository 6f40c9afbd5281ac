-- Leads per campaign and current status (latest status change by event time).
SELECT campaign_id, status, COUNT(*) AS leads
FROM lead_status_current
GROUP BY campaign_id, status
ORDER BY campaign_id, leads DESC, status
